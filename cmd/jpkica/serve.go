package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// roles are the parts of the daemon `serve --role` can run.
type roles struct{ ca, ocsp, crl bool }

func parseRoles(s string) (roles, error) {
	var rs roles
	for _, r := range strings.Split(s, ",") {
		switch strings.TrimSpace(r) {
		case "ca":
			rs.ca = true
		case "ocsp":
			rs.ocsp = true
		case "crl":
			rs.crl = true
		default:
			return roles{}, fmt.Errorf("%w: unknown role %q (want ca, ocsp, crl)", errUsage, strings.TrimSpace(r))
		}
	}
	return rs, nil
}

// String lists the roles as --role takes them.
func (rs roles) String() string {
	var names []string
	for _, r := range []struct {
		name string
		on   bool
	}{{"ca", rs.ca}, {"ocsp", rs.ocsp}, {"crl", rs.crl}} {
		if r.on {
			names = append(names, r.name)
		}
	}
	return strings.Join(names, ",")
}

// cmdServe runs `jpkica serve [--config FILE] [--role ca,ocsp,crl]`: it
// reads the configuration, opens the store and the key store (making the
// issuers on the first start on embedded defaults), builds the daemon for
// the roles and runs it until ctx ends.
func cmdServe(ctx context.Context, args []string, logger *slog.Logger) error {
	fs, configPath := newFlags("serve")
	roleFlag := fs.String("role", "ca,ocsp,crl", "comma-separated roles to run")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rs, err := parseRoles(*roleFlag)
	if err != nil {
		return err
	}
	d, err := open(ctx, *configPath, logger, withKeys)
	if err != nil {
		return err
	}
	defer d.Close()
	if d.cfg.Embedded() {
		if err := bootstrapEmbedded(ctx, d); err != nil {
			return fmt.Errorf("first start on embedded defaults: %w", err)
		}
	}
	if err := d.loadKeyring(ctx); err != nil {
		return err
	}
	dm, err := build(d, rs, time.Now)
	if err != nil {
		return err
	}
	return dm.run(ctx)
}
