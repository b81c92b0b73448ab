package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/config"
	"github.com/jpkica/jpkica/store"
)

// deployment is a configuration with what it names opened: the store
// always; the key store and the keyring when a command asks for them.
// Close releases what was opened.
type deployment struct {
	cfg    *config.Config
	logger *slog.Logger
	store  *store.Store
	// keys is nil until openKeys, keyring until loadKeyring.
	keys    hsm.KeyStore
	keyring *ceremony.Keyring
}

// opening is how much of a deployment a command needs.
type opening int

const (
	withStore   opening = iota // the configuration and the store
	withKeys                   // and the key store
	withKeyring                // and the keyring, loaded from both
)

// open loads the configuration at configPath (the embedded defaults for
// "") and opens what with asks for, in that order. Every command starts
// here; Close the deployment when done.
func open(ctx context.Context, configPath string, logger *slog.Logger, with opening) (*deployment, error) {
	cfg, err := loadConfig(configPath, logger)
	if err != nil {
		return nil, err
	}
	if cfg.Embedded() {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	}
	st, err := store.OpenWith(ctx, cfg.Store.DSN, store.Options{
		MaxOpenConns: cfg.Store.MaxOpenConns, MaxIdleConns: cfg.Store.MaxIdleConns,
		ConnMaxLifetime: cfg.Store.ConnMaxLifetime, ConnMaxIdleTime: cfg.Store.ConnMaxIdleTime,
	})
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	d := &deployment{cfg: cfg, logger: logger, store: st}
	if with >= withKeys {
		err = d.openKeys(ctx)
	}
	if err == nil && with >= withKeyring {
		err = d.loadKeyring(ctx)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Close closes the key store, if open, and the store.
func (d *deployment) Close() {
	if d.keys != nil {
		d.keys.Close()
	}
	d.store.Close()
}

// loadConfig reads the file, or returns the embedded defaults for "".
func loadConfig(path string, logger *slog.Logger) (*config.Config, error) {
	if path == "" {
		c, err := config.Default()
		if err != nil {
			return nil, err
		}
		logger.Warn("NO CONFIG FILE: running on embedded development defaults (SQLite and a SOFTWARE key store under " +
			c.DataDir + ", listening on 127.0.0.1); NOT FOR PRODUCTION")
		return c, nil
	}
	return config.Load(path)
}

// openKeys opens the configured key store, unless it is open. The PIN is
// read here, from the file or environment variable the configuration
// names, and handed to the hsm package; it is never logged.
func (d *deployment) openKeys(ctx context.Context) error {
	if d.keys != nil {
		return nil
	}
	cfg := d.cfg
	switch cfg.Keys.Backend {
	case "software":
		d.logger.Warn("SOFTWARE KEY STORE: private keys are files on disk; for development only", "dir", cfg.Keys.SoftwareDir)
		ks, err := hsm.OpenSoftware(cfg.Keys.SoftwareDir)
		if err != nil {
			return fmt.Errorf("opening software key store: %w", err)
		}
		d.keys = ks
		return nil
	case "pkcs11":
		pin, err := cfg.PIN()
		if err != nil {
			return err
		}
		p := cfg.Keys.PKCS11
		ks, err := hsm.OpenPKCS11(ctx, hsm.PKCS11Config{
			Module:         p.Module,
			TokenLabel:     p.TokenLabel,
			PIN:            pin,
			MaxSessions:    p.MaxSessions,
			AcquireTimeout: p.AcquireTimeout,
		}, d.logger)
		if err != nil {
			return fmt.Errorf("opening PKCS#11 token %q: %w", p.TokenLabel, err)
		}
		d.keys = ks
		return nil
	}
	return fmt.Errorf("%w: key backend %q", config.ErrInvalid, cfg.Keys.Backend)
}

// loadKeyring opens the key store if need be and loads the signers of
// every issuer, responder and the client CA.
func (d *deployment) loadKeyring(ctx context.Context) error {
	if err := d.openKeys(ctx); err != nil {
		return err
	}
	kr, err := ceremony.Load(ctx, d.store, d.keys)
	if err != nil {
		return fmt.Errorf("loading keys: %w", err)
	}
	d.keyring = kr
	return nil
}

// lifecycle is the lifecycle rules over the store, for the admin commands
// that change or read certificates without signing.
func (d *deployment) lifecycle() (*ca.Lifecycle, error) {
	return ca.NewLifecycle(ca.LifecycleConfig{RenewalWindowMonths: d.cfg.Issuance.RenewalWindowMonths},
		ca.LifecycleDeps{Store: d.store, Clock: time.Now, Rand: rand.Reader})
}

// keyCeremony is the key ceremony's configuration and dependencies on the
// deployment, for `init`, the first start and the ca role's renewal of the
// OCSP responders; actor is who the audit log names. The key store must be
// open.
func (d *deployment) keyCeremony(actor string) (ceremony.Config, ceremony.Deps) {
	cfg := d.cfg
	alg := hsm.RSA2048
	if cfg.Issuance.ResponderKey == "ecdsa-p256" {
		alg = hsm.ECDSAP256
	}
	year := 365 * 24 * time.Hour
	c := ceremony.Config{
		IssuerValidity:     time.Duration(cfg.Issuance.IssuerValidityYears) * year,
		ResponderValidity:  cfg.Issuance.ResponderValidity,
		ResponderAlgorithm: alg,
		ClientCAValidity:   time.Duration(cfg.Issuance.IssuerValidityYears) * year,
		Actor:              actor,
	}
	return c, ceremony.Deps{Store: d.store, Keys: d.keys, Clock: time.Now, Rand: rand.Reader, Logger: d.logger}
}
