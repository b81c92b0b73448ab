package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// cmdOCSP is `jpkica ocsp presign [--config FILE]`: sign a response for
// every live certificate whose stored response is missing, stale or untrue,
// store them, and exit. A responder that starts afterwards takes them from
// the store instead of signing at start.
func cmdOCSP(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	if len(args) == 0 || args[0] != "presign" {
		return fmt.Errorf("%w: ocsp has one subcommand, presign", errUsage)
	}
	fs, configPath := newFlags("ocsp presign")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	d, err := open(ctx, *configPath, logger, withKeyring)
	if err != nil {
		return err
	}
	defer d.Close()
	p, err := newOCSPPresigner(d, prometheus.NewRegistry(), time.Now)
	if err != nil {
		return err
	}
	start := time.Now()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	drainErr := p.Drain(ctx)
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("pre-signing: %w", err)
	}
	if drainErr != nil {
		return fmt.Errorf("pre-signing: %w", drainErr)
	}
	fmt.Fprintf(stdout, "%d OCSP responses ready in %s\n", p.Cache().Len(), time.Since(start).Round(time.Millisecond))
	return nil
}
