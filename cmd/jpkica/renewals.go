package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/jpkica/jpkica/api"
	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
)

// cmdRenewals runs `jpkica renewals --municipality CODE --on DATE [--format
// json|csv]`: the certificates of a municipality due for an expiry notice
// on DATE (their renewal window has opened and they were not renewed), in
// the same form as GET /v1/renewal-notices, whose default is JSON too (CSV
// for the mail house with --format csv, as with Accept: text/csv).
func cmdRenewals(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs, configPath := newFlags("renewals")
	municipality := fs.String("municipality", "", "six-digit local government code")
	on := fs.String("on", "", "date YYYY-MM-DD")
	format := fs.String("format", "json", "json, or csv for the mail house (the API's default is JSON too)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *municipality == "" || *on == "" || (*format != "csv" && *format != "json") {
		return fmt.Errorf("%w: renewals --municipality CODE --on DATE [--format json|csv]", errUsage)
	}
	day, err := ca.ParseDate(*on)
	if err != nil {
		return err
	}
	d, err := open(ctx, *configPath, logger, withStore)
	if err != nil {
		return err
	}
	defer d.Close()
	lc, err := d.lifecycle()
	if err != nil {
		return err
	}
	ns, err := lc.RenewalNotices(ctx, *municipality, day)
	if err != nil {
		return err
	}
	out := api.RenewalNoticesOf(ns)
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return wire.WriteRenewalCSV(stdout, out)
}
