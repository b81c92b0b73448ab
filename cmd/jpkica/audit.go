package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jpkica/jpkica/audit"
)

// cmdAuditVerify walks the audit chain from the first entry and names the
// first one that was changed, removed or reordered.
func cmdAuditVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs, configPath := newFlags("audit verify")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	var v audit.Verifier
	if err := st.AuditEntries(ctx, v.Next); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	fmt.Fprintf(stdout, "audit log intact: %d entries\n", v.Count())
	return nil
}
