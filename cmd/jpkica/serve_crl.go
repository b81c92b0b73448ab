package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/crl"
	"github.com/jpkica/jpkica/internal/config"
	"github.com/jpkica/jpkica/internal/netacl"
)

// crlRole is the crl role of `serve` built: the updater, which publishes
// on schedule, and the handler that serves what it published under prefix
// on the status listener.
type crlRole struct {
	updater *crl.Updater
	prefix  string
	handler http.Handler
	log     *slog.Logger
}

func newCRLRole(d *deployment, reg prometheus.Registerer, clock func() time.Time) (*crlRole, error) {
	prefix, err := crlPathPrefix(d.cfg.URLs.CRLBase)
	if err != nil {
		return nil, err
	}
	log := d.logger.With("role", "crl")
	u, err := crl.NewUpdater(crlConfig(d.cfg), crl.Deps{
		Store: d.store, Issuers: d.keyring.Issuers, Clock: clock, Logger: log, Metrics: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("CRL updater: %w", err)
	}
	return &crlRole{updater: u, prefix: prefix, log: log,
		handler: onlyClients(d.cfg.StatusClients(), crl.NewHandler(u.Dir(), prefix))}, nil
}

// crlConfig is the updater's configuration from the deployment's.
func crlConfig(cfg *config.Config) crl.Config {
	munis := make([]string, 0, len(cfg.Municipalities))
	for code := range cfg.Municipalities {
		munis = append(munis, code)
	}
	slices.Sort(munis)
	return crl.Config{
		BaseURL:        cfg.URLs.CRLBase,
		Dir:            cfg.Path(cfg.CRL.Dir),
		Interval:       cfg.CRL.Interval,
		Overlap:        cfg.CRL.Overlap,
		DeltaInterval:  cfg.CRL.DeltaInterval,
		DeltaDelay:     cfg.CRL.DeltaDelay,
		KeepExpired:    cfg.CRL.KeepExpired,
		Municipalities: munis,
	}
}

// crlPathPrefix is the path of urls.crl_base ("/crl").
func crlPathPrefix(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("%w: urls.crl_base: %v", config.ErrInvalid, err)
	}
	p := "/" + strings.Trim(u.Path, "/")
	if p == "/" {
		return "", fmt.Errorf("%w: urls.crl_base needs a path, e.g. http://host/crl", config.ErrInvalid)
	}
	return p, nil
}

// onlyClients answers 403 to clients outside clients (the registered
// verifiers' networks), and hands the rest to h.
func onlyClients(clients netacl.List, h http.Handler) http.Handler {
	if clients.Open() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !clients.AllowsRemote(r.RemoteAddr) {
			http.Error(w, "forbidden: revocation data is for registered verifiers", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
