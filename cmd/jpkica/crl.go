package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
)

// cmdCRL is `jpkica crl generate [--config FILE] [--issuer ID] [--partition
// P] [--delta] [--out DIR]`: publish CRLs now, whatever the schedule says.
func cmdCRL(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	if len(args) == 0 || args[0] != "generate" {
		return fmt.Errorf("%w: crl has one subcommand, generate", errUsage)
	}
	fs, configPath := newFlags("crl generate")
	issuer := fs.String("issuer", "", "issuer ID, e.g. signature-g1 (default: every card issuer, every generation)")
	partition := fs.String("partition", "", `municipality code, or "full" (default: the full CRL and every partition)`)
	delta := fs.Bool("delta", false, "publish delta CRLs on the last complete ones instead of complete CRLs")
	out := fs.String("out", "", "publication directory (default: <data_dir>/crl)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	d, err := open(ctx, *configPath, logger, withKeyring)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg := crlConfig(d.cfg)
	if *out != "" {
		cfg.Dir = *out
	}
	lastPrint := time.Time{}
	progress := func(p crl.Progress) {
		if p.Done || time.Since(lastPrint) >= time.Second {
			lastPrint = time.Now()
			state := "encoding"
			if p.Done {
				state = "published"
			}
			fmt.Fprintf(stdout, "%s %s: %d entries, %.1fs\n", state, p.Scope, p.Entries, p.Elapsed.Seconds())
		}
	}
	u, err := crl.NewUpdater(cfg, crl.Deps{
		Store: d.store, Issuers: d.keyring.Issuers, Clock: time.Now, Logger: logger, Progress: progress,
	})
	if err != nil {
		return fmt.Errorf("CRL updater: %w", err)
	}
	ids := u.Issuers()
	if *issuer != "" {
		if !slices.Contains(ids, *issuer) {
			return fmt.Errorf("%w: unknown issuer %q (have %s)", ca.ErrNotFound, *issuer, strings.Join(ids, ", "))
		}
		ids = []string{*issuer}
	}
	var only []string
	if *partition != "" {
		only = []string{*partition}
	}
	var failed []string
	for _, id := range ids {
		ps, err := u.GenerateIssuer(ctx, id, *delta, only...)
		if errors.Is(err, crl.ErrInvalid) && len(ps) == 0 {
			return fmt.Errorf("%w: %w", errUsage, err) // a partition that is no municipality's: nothing published
		}
		for _, p := range ps {
			fmt.Fprintf(stdout, "%s number %v, %d entries, %d bytes, next update %s\n",
				u.URL(p.Scope), p.Number, p.Entries, p.Size, p.NextUpdate.Format(time.RFC3339))
		}
		if err != nil {
			logger.Error("CRL generation failed", "issuer", id, "err", err)
			failed = append(failed, id)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("CRLs of %s not (all) published; see the log", strings.Join(failed, ", "))
	}
	return nil
}
