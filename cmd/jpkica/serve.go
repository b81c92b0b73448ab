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

// roleNames are the roles as --role names them, in its default order.
var roleNames = []string{"ca", "ocsp", "crl"}

// role is the switch of the role called name; nil for no role.
func (rs *roles) role(name string) *bool {
	switch name {
	case "ca":
		return &rs.ca
	case "ocsp":
		return &rs.ocsp
	case "crl":
		return &rs.crl
	}
	return nil
}

func parseRoles(s string) (roles, error) {
	var rs roles
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		on := rs.role(name)
		if on == nil {
			return roles{}, fmt.Errorf("%w: unknown role %q (want ca, ocsp, crl)", errUsage, name)
		}
		*on = true
	}
	return rs, nil
}

// String lists the roles as --role takes them.
func (rs roles) String() string {
	var on []string
	for _, name := range roleNames {
		if *rs.role(name) {
			on = append(on, name)
		}
	}
	return strings.Join(on, ",")
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
