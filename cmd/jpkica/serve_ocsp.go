package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/jpkica/jpkica/ceremony/responderwatch"
	"github.com/jpkica/jpkica/ocsp"
)

// newOCSPPresigner builds the OCSP pre-signer of `serve` from the keyring
// (responderwatch.Issuers: each issuer generation signed by its newest
// delegated responder). It is the ca role's StatusListener when both roles
// run in one process.
func newOCSPPresigner(env *serveEnv) (*ocsp.Presigner, error) {
	issuers, err := responderwatch.Issuers(env.keyring, env.clock())
	if err != nil {
		return nil, err
	}
	nonce := ocsp.NonceIgnore
	if env.cfg.OCSP.Nonce == "echo" {
		nonce = ocsp.NonceEcho
	}
	return ocsp.NewPresigner(ocsp.Config{
		Validity: env.cfg.OCSP.Validity, MaxAge: env.cfg.OCSP.MaxAge, Nonce: nonce, Workers: env.cfg.OCSP.Workers,
		Clients: env.cfg.StatusClients(),
	}, ocsp.Deps{
		Issuers: issuers, Source: env.store, Responses: env.store, Audit: env.store, Clock: env.clock, Rand: rand.Reader,
		Metrics: env.metrics, Logger: env.logger,
	})
}

// mountOCSP starts the ocsp role of `serve`: the pre-signer loads and follows
// the store until ctx ends, and the responder answers POST /ocsp and
// GET/HEAD /ocsp/{base64 request}.
func mountOCSP(ctx context.Context, env *serveEnv, mux *http.ServeMux) error {
	p := env.ocsp
	// Through env.spawn: serve waits for the pre-signer (and its writes to
	// the store) before it closes the store and the key store.
	env.spawn(func() {
		if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			env.logger.Error("ocsp pre-signer stopped", "err", err)
		}
	})
	env.spawn(func() {
		select {
		case <-p.Warmed():
			env.logger.Info("ocsp: every live certificate queued for pre-signing", "cached", p.Cache().Len())
		case <-ctx.Done():
		}
	})
	h := ocsp.NewResponder(p, "/ocsp/")
	mux.Handle("/ocsp", h)
	mux.Handle("/ocsp/", h)
	// The status listener's mux would clean GET paths holding "//" (base64
	// may) and redirect them; the guard hands /ocsp paths over first.
	env.statusGuard = h.Guard
	if env.cfg.Listen.OCSP == "" {
		return nil
	}
	ln, err := net.Listen("tcp", env.cfg.Listen.OCSP)
	if err != nil {
		return fmt.Errorf("OCSP listener: %w", err)
	}
	srv := h.NewFastServer()
	env.logger.Info("serving OCSP on its own listener (fasthttp)", "addr", ln.Addr().String())
	env.spawn(func() {
		if err := srv.Serve(ln); err != nil {
			env.logger.Error("OCSP listener stopped", "err", err)
		}
	})
	env.spawn(func() {
		<-ctx.Done()
		if err := srv.ShutdownWithContext(context.WithoutCancel(ctx)); err != nil {
			env.logger.Error("shutting down the OCSP listener", "err", err)
		}
	})
	return nil
}
