package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jpkica/jpkica/audit"
)

// cmdAuditVerify checks every chain of the audit log (store.VerifyAudit):
// it names the first entry that was changed, removed or reordered, and the
// first entry missing from a chain's end that its recorded head, a
// cross-anchor in another chain, or --anchor (heads printed by an earlier
// run and kept outside the database) names.
func cmdAuditVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs, configPath := newFlags("audit verify")
	anchorFlag := fs.String("anchor", "", "heads recorded earlier, outside the database: CHAIN:SEQ:HASH,... as audit verify prints them (SEQ:HASH for the main chain)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	anchors, err := parseAnchors(*anchorFlag)
	if err != nil {
		return err
	}
	d, err := open(ctx, *configPath, slog.New(slog.DiscardHandler), withStore)
	if err != nil {
		return err
	}
	defer d.Close()
	r, err := d.store.VerifyAudit(ctx, anchors)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	names := make([]string, len(r.Heads))
	for i, h := range r.Heads {
		names[i] = h.String()
	}
	fmt.Fprintf(stdout, "audit log intact: %d entries in %d chains, heads %s\n", r.Entries, r.Chains, strings.Join(names, ","))
	return nil
}

// parseAnchors reads --anchor: CHAIN:SEQ:HASH entries separated by commas;
// SEQ:HASH alone is an entry of the main chain.
func parseAnchors(s string) ([]audit.Anchor, error) {
	if s == "" {
		return nil, nil
	}
	var out []audit.Anchor
	for _, one := range strings.Split(s, ",") {
		a := audit.Anchor{Chain: audit.MainChain}
		parts := strings.Split(one, ":")
		if len(parts) == 3 {
			a.Chain, parts = parts[0], parts[1:]
		}
		if len(parts) != 2 || a.Chain == "" {
			return nil, fmt.Errorf("%w: --anchor wants CHAIN:SEQ:HASH as audit verify prints it", errUsage)
		}
		seq, err := strconv.ParseInt(parts[0], 10, 64)
		hash, herr := hex.DecodeString(parts[1])
		if err != nil || herr != nil || seq < 1 || len(hash) != 32 {
			return nil, fmt.Errorf("%w: --anchor wants CHAIN:SEQ:HASH as audit verify prints it", errUsage)
		}
		a.Seq, a.Hash = seq, hash
		out = append(out, a)
	}
	return out, nil
}
