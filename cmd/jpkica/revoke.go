package main

import (
	"context"
	"encoding/json"
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
	var serialArg string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		serialArg, args = args[0], args[1:]
	}
	fs, configPath := newFlags("revoke")
	reasonFlag := fs.String("reason", "", "RFC 5280 reason: keyCompromise, cessationOfOperation, ...")
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
	st, lc, err := openLifecycle(ctx, *configPath, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	rec, err := lc.Revoke(ctx, ca.RevokeRequest{Serial: serial, Reason: reason, Actor: "admin:cli"})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(api.CertificateOf(rec))
}
