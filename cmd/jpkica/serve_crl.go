package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/jpkica/jpkica/crl"
	"github.com/jpkica/jpkica/internal/netacl"
)

// mountCRL starts the crl role of `serve`: its background work runs until ctx
// ends, and its handlers go on mux (the status listener).
func mountCRL(ctx context.Context, env *serveEnv, mux *http.ServeMux) error {
	prefix, err := crlPathPrefix(env.cfg.URLs.CRLBase)
	if err != nil {
		return err
	}
	logger := env.logger.With("role", "crl")
	u, err := crl.NewUpdater(crlConfig(env.cfg), crl.Deps{
		Store: env.store, Issuers: env.keyring.Issuers, Clock: env.clock, Logger: logger, Metrics: env.metrics,
	})
	if err != nil {
		return fmt.Errorf("CRL updater: %w", err)
	}
	env.spawn(func() {
		if err := u.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error("CRL updater stopped", "err", err)
		}
	})
	mux.Handle("GET "+prefix+"/", onlyClients(env.cfg.StatusClients(), crl.NewHandler(u.Dir(), prefix)))
	logger.Info("publishing CRLs", "dir", u.Dir().Root(), "path", prefix+"/")
	return nil
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
