package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jpkica/jpkica/api"
	"github.com/jpkica/jpkica/ca"
)

// cmdRevoke runs `jpkica revoke SERIAL --reason REASON`: an administrator's
// revocation of a card or terminal certificate, with any RFC 5280 reason
// but certificateHold (a hold is the API's /v1/cards/{id}/hold). It writes
// the store directly; OCSP nodes pick the change up by following the store.
func cmdRevoke(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs, configPath := newFlags("revoke")
	reasonFlag := fs.String("reason", "", "RFC 5280 reason: keyCompromise, cessationOfOperation, ...")
	serialArg, args := positional(fs, args)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if serialArg == "" || *reasonFlag == "" {
		return fmt.Errorf("%w: revoke SERIAL --reason REASON", errUsage)
	}
	serial, err := ca.ParseSerial(serialArg)
	if err != nil {
		return err
	}
	reason, err := ca.ParseReason(*reasonFlag)
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
	rec, err := lc.Revoke(ctx, ca.RevokeRequest{Serial: serial, Reason: reason, Actor: "admin:cli"})
	if errors.Is(err, ca.ErrNotFound) {
		return fmt.Errorf("%w: no such certificate %s", ca.ErrNotFound, serial)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(api.CertificateOf(rec))
}

// positional takes the first argument that is neither a flag of fs nor a
// flag's value out of args, wherever it stands: `revoke SERIAL --reason R`
// as the usage writes it, or `revoke --config F SERIAL --reason R`.
func positional(fs *flag.FlagSet, args []string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			rest := append(append([]string{}, args[:i]...), args[i+1:]...)
			return a, rest
		}
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				i++ // its value
			}
		}
	}
	return "", args
}
