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

// openStore opens the configured store, creating the data directory for the
// embedded SQLite default.
func openStore(ctx context.Context, cfg *config.Config) (*store.Store, error) {
	if cfg.Embedded() {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
	}
	st, err := store.Open(ctx, cfg.Store.DSN)
	if err != nil {
		return nil, fmt.Errorf("opening store: %w", err)
	}
	return st, nil
}

// openKeys opens the configured key store. The PIN is read here, from the
// file or environment variable the configuration names, and handed to the
// hsm package; it is never logged.
func openKeys(ctx context.Context, cfg *config.Config, logger *slog.Logger) (hsm.KeyStore, error) {
	switch cfg.Keys.Backend {
	case "software":
		logger.Warn("SOFTWARE KEY STORE: private keys are files on disk; for development only", "dir", cfg.Keys.SoftwareDir)
		ks, err := hsm.OpenSoftware(cfg.Keys.SoftwareDir)
		if err != nil {
			return nil, fmt.Errorf("opening software key store: %w", err)
		}
		return ks, nil
	case "pkcs11":
		pin, err := cfg.PIN()
		if err != nil {
			return nil, err
		}
		p := cfg.Keys.PKCS11
		ks, err := hsm.OpenPKCS11(ctx, hsm.PKCS11Config{
			Module:         p.Module,
			TokenLabel:     p.TokenLabel,
			PIN:            pin,
			MaxSessions:    p.MaxSessions,
			AcquireTimeout: p.AcquireTimeout,
		}, logger)
		if err != nil {
			return nil, fmt.Errorf("opening PKCS#11 token %q: %w", p.TokenLabel, err)
		}
		return ks, nil
	}
	return nil, fmt.Errorf("%w: key backend %q", config.ErrInvalid, cfg.Keys.Backend)
}

// deployment is a configuration with its store and key store open.
type deployment struct {
	cfg   *config.Config
	store *store.Store
	keys  hsm.KeyStore
}

// openDeployment loads the configuration and opens the store and the key
// store it names. Close releases both.
func openDeployment(ctx context.Context, configPath string, logger *slog.Logger) (*deployment, error) {
	cfg, err := loadConfig(configPath, logger)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	keys, err := openKeys(ctx, cfg, logger)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &deployment{cfg: cfg, store: st, keys: keys}, nil
}

func (d *deployment) Close() {
	d.keys.Close()
	d.store.Close()
}

// keyring loads the signers of every issuer, responder and the client CA.
func (d *deployment) keyring(ctx context.Context) (*ceremony.Keyring, error) {
	kr, err := ceremony.Load(ctx, d.store, d.keys)
	if err != nil {
		return nil, fmt.Errorf("loading keys: %w", err)
	}
	return kr, nil
}

// openKeyring is openDeployment with the keyring loaded, for the commands
// that sign. Close the deployment when done.
func openKeyring(ctx context.Context, configPath string, logger *slog.Logger) (*deployment, *ceremony.Keyring, error) {
	d, err := openDeployment(ctx, configPath, logger)
	if err != nil {
		return nil, nil, err
	}
	kr, err := d.keyring(ctx)
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	return d, kr, nil
}

// openConfigStore loads the configuration and opens its store, for the
// commands that need no keys. The caller closes the store.
func openConfigStore(ctx context.Context, configPath string, logger *slog.Logger) (*config.Config, *store.Store, error) {
	cfg, err := loadConfig(configPath, logger)
	if err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, st, nil
}

// openLifecycle opens the configured store and the lifecycle rules over it,
// for the admin commands that need no keys. Close the store when done.
func openLifecycle(ctx context.Context, configPath string, logger *slog.Logger) (*store.Store, *ca.Lifecycle, error) {
	cfg, st, err := openConfigStore(ctx, configPath, logger)
	if err != nil {
		return nil, nil, err
	}
	lc, err := ca.NewLifecycle(ca.LifecycleConfig{RenewalWindowMonths: cfg.Issuance.RenewalWindowMonths},
		ca.LifecycleDeps{Store: st, Clock: time.Now, Rand: rand.Reader})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, lc, nil
}
