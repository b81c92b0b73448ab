package main

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/ceremony/responderwatch"
	"github.com/jpkica/jpkica/internal/config"
	"github.com/jpkica/jpkica/ocsp"
)

// ocspRole is the ocsp role of `serve` built: the pre-signer, which loads
// and follows the store, and the responder, which answers POST /ocsp and
// GET/HEAD /ocsp/{base64 request} on the status listener and, with
// listen.ocsp, on a fasthttp listener of its own.
type ocspRole struct {
	presigner *ocsp.Presigner
	responder *ocsp.Responder
	// fast serves the responder alone on fastAddr; nil without listen.ocsp.
	fast     *ocsp.FastServer
	fastAddr string
}

func newOCSPRole(d *deployment, reg prometheus.Registerer, clock func() time.Time) (*ocspRole, error) {
	p, err := newOCSPPresigner(d, reg, clock)
	if err != nil {
		return nil, err
	}
	o := &ocspRole{presigner: p, responder: ocsp.NewResponder(p, "/ocsp/"), fastAddr: d.cfg.Listen.OCSP}
	if o.fastAddr != "" {
		o.fast = o.responder.NewFastServer()
	}
	return o, nil
}

// newOCSPPresigner builds the OCSP pre-signer from the keyring
// (responderwatch.Issuers: each issuer generation signed by its newest
// delegated responder), for `serve` and `ocsp presign`.
func newOCSPPresigner(d *deployment, reg prometheus.Registerer, clock func() time.Time) (*ocsp.Presigner, error) {
	issuers, err := responderwatch.Issuers(d.keyring, clock())
	if err != nil {
		return nil, fmt.Errorf("building the OCSP pre-signer: %w", err)
	}
	p, err := ocsp.NewPresigner(ocspConfig(d.cfg), ocsp.Deps{
		Issuers: issuers, Source: d.store, Responses: d.store, Audit: d.store, Clock: clock, Rand: rand.Reader,
		Metrics: reg, Logger: d.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("building the OCSP pre-signer: %w", err)
	}
	return p, nil
}

// ocspConfig is the pre-signer's configuration from the deployment's.
func ocspConfig(cfg *config.Config) ocsp.Config {
	nonce := ocsp.NonceIgnore
	if cfg.OCSP.Nonce == "echo" {
		nonce = ocsp.NonceEcho
	}
	return ocsp.Config{
		Validity: cfg.OCSP.Validity, MaxAge: cfg.OCSP.MaxAge, Nonce: nonce, Workers: cfg.OCSP.Workers,
		Clients: cfg.StatusClients(),
	}
}
