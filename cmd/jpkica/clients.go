package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jpkica/jpkica/ceremony"
)

// cmdClients runs `jpkica clients issue --role ROLE [--municipality CODE]
// --name NAME --out PREFIX`: it enrols a terminal (or operator) and writes
// PREFIX.crt, PREFIX.key (0600) and PREFIX-ca.crt (the client CA, which also
// certifies the API server).
func cmdClients(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	if len(args) == 0 || args[0] != "issue" {
		return fmt.Errorf("%w: clients has one subcommand, issue", errUsage)
	}
	fs, configPath := newFlags("clients issue")
	role := fs.String("role", "", "counter, register, lossline or admin")
	municipality := fs.String("municipality", "", "six-digit local government code (required for a counter)")
	name := fs.String("name", "", "the terminal's name (subject CN)")
	out := fs.String("out", "", "path prefix of the files to write")
	validity := fs.Duration("validity", 0, "certificate lifetime (default: issuance.client_validity)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *role == "" || *name == "" || *out == "" {
		return fmt.Errorf("%w: clients issue needs --role, --name and --out", errUsage)
	}
	d, err := open(ctx, *configPath, logger, withKeyring)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg, st, kr := d.cfg, d.store, d.keyring
	v := *validity
	if v == 0 {
		v = cfg.Issuance.ClientValidity
	}
	c, err := ceremony.IssueClient(ctx, st, kr, ceremony.ClientRequest{Role: *role, Municipality: *municipality, Name: *name,
		Validity: v, Actor: "admin:cli"}, time.Now(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeClient(*out, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "client %s (%s) serial %s: %s.crt, %s.key, %s-ca.crt\n", *name, *role, c.Serial.Hex(), *out, *out, *out)
	return nil
}
