package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jpkica/jpkica/ceremony"
)

func cmdInit(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs, configPath := newFlags("init")
	newGen := fs.Bool("new-generation", false, "add the next generation of both issuers")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	d, err := open(ctx, *configPath, logger, withKeys)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg, deps := d.keyCeremony("admin:init")
	res, err := ceremony.Run(ctx, cfg, deps, *newGen)
	if err != nil {
		return err
	}
	for _, is := range res.Issuers {
		fmt.Fprintf(stdout, "issuer %s (key %s)\n", is.ID, is.KeyRef)
	}
	for _, r := range res.Responders {
		fmt.Fprintf(stdout, "OCSP responder %s for %s, until %s\n", r.ID, r.IssuerID, r.NotAfter.Format(time.RFC3339))
	}
	if res.ClientCA != nil {
		fmt.Fprintf(stdout, "client CA %s (key %s)\n", res.ClientCA.ID, res.ClientCA.KeyRef)
	}
	return nil
}

// devClients are the client certificates written on first start on
// embedded defaults, one per role.
var devClients = []ceremony.ClientRequest{
	{Role: "counter", Municipality: "302015", Name: "dev-counter-302015"},
	{Role: "register", Name: "dev-register"},
	{Role: "lossline", Name: "dev-lossline"},
	{Role: "admin", Name: "dev-admin"},
}

// bootstrapEmbedded runs the key ceremony on the first start on embedded
// defaults and writes development client certificates under
// <data_dir>/clients/ and the issuer and responder certificates under
// <data_dir>/issuers/. Later starts find them and do nothing. The key store
// must be open.
func bootstrapEmbedded(ctx context.Context, d *deployment) error {
	cfg, st, logger := d.cfg, d.store, d.logger
	ccfg, cdeps := d.keyCeremony("system:first-start")
	_, err := ceremony.Run(ctx, ccfg, cdeps, false)
	switch {
	case errors.Is(err, ceremony.ErrInitialised):
		return nil
	case err != nil:
		return err
	}
	kr, err := ceremony.Load(ctx, st, d.keys)
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.DataDir, "clients")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, req := range devClients {
		req.Validity = cfg.Issuance.ClientValidity
		req.Actor = "system:first-start"
		c, err := ceremony.IssueClient(ctx, st, kr, req, time.Now(), rand.Reader)
		if err != nil {
			return fmt.Errorf("development client %s: %w", req.Name, err)
		}
		if err := writeClient(filepath.Join(dir, req.Name), c); err != nil {
			return err
		}
	}
	issuerDir := filepath.Join(cfg.DataDir, "issuers")
	if _, err := writeIssuerCerts(ctx, st, issuerDir); err != nil {
		return err
	}
	logger.Warn("FIRST START: issuers created in the SOFTWARE key store; development client certificates written",
		"dir", dir, "issuers", issuerDir)
	return nil
}

// writeClient writes PREFIX.crt, PREFIX.key (0600) and PREFIX-ca.crt.
func writeClient(prefix string, c ceremony.Client) error {
	for _, f := range []struct {
		suffix string
		data   []byte
		mode   os.FileMode
	}{{".crt", c.CertPEM, 0o644}, {".key", c.KeyPEM, 0o600}, {"-ca.crt", c.ChainPEM, 0o644}} {
		if err := os.WriteFile(prefix+f.suffix, f.data, f.mode); err != nil {
			return fmt.Errorf("writing %s: %w", prefix+f.suffix, err)
		}
	}
	return nil
}
