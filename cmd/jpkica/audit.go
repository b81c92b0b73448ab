package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jpkica/jpkica/audit"
)

// cmdAuditVerify walks the audit chain from the first entry and names the
// first one that was changed, removed or reordered; checks that the chain
// ends at the head the store recorded; and, with --anchor SEQ:HASH (a head
// printed by an earlier run and kept outside the database), that the chain
// still holds that entry unchanged.
func cmdAuditVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs, configPath := newFlags("audit verify")
	anchorFlag := fs.String("anchor", "", "SEQ:HASH of a head recorded earlier, outside the database")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	anchorSeq, anchorHash, err := parseAnchor(*anchorFlag)
	if err != nil {
		return err
	}
	d, err := open(ctx, *configPath, slog.New(slog.DiscardHandler), withStore)
	if err != nil {
		return err
	}
	defer d.Close()
	st := d.store
	var v audit.Verifier
	anchored := false
	err = st.AuditEntries(ctx, func(e audit.Entry) error {
		if err := v.Next(e); err != nil {
			return err
		}
		if e.Seq == anchorSeq {
			if !bytes.Equal(e.Hash, anchorHash) {
				return fmt.Errorf("%w: entry %d differs from the anchor", audit.ErrBroken, e.Seq)
			}
			anchored = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if anchorSeq > 0 && !anchored {
		return fmt.Errorf("audit log: %w: anchored entry %d is missing", audit.ErrBroken, anchorSeq)
	}
	seq, hash, err := st.AuditHead(ctx)
	if err != nil {
		return err
	}
	if err := v.CheckHead(seq, hash); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	fmt.Fprintf(stdout, "audit log intact: %d entries, head %d:%x\n", v.Count(), seq, hash)
	return nil
}

func parseAnchor(s string) (int64, []byte, error) {
	if s == "" {
		return 0, nil, nil
	}
	seqText, hashText, ok := strings.Cut(s, ":")
	seq, err := strconv.ParseInt(seqText, 10, 64)
	hash, herr := hex.DecodeString(hashText)
	if !ok || err != nil || herr != nil || seq < 1 || len(hash) != 32 {
		return 0, nil, fmt.Errorf("%w: --anchor wants SEQ:HASH as audit verify prints it", errUsage)
	}
	return seq, hash, nil
}
