package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/ocsp"
	"github.com/jpkica/jpkica/store"
)

// responderCheckEvery is how often `serve` looks at the delegated OCSP
// responders.
const responderCheckEvery = time.Minute

// responderWatch keeps the delegated OCSP responders current while `serve`
// runs. The ca role (renew) makes a new responder when the newest of an
// issuer expires within issuance.responder_renew_before
// (ceremony.RenewResponders); the ocsp role (follow) signs with the newest
// responder of each issuer it serves, whichever node made it.
type responderWatch struct {
	env           *serveEnv
	renew, follow bool
	// signing is the responder ID each served issuer signs with now.
	signing map[string]string
	// unserved are the issuers in the store that this process does not
	// serve (a generation made after it started), warned about once.
	unserved map[string]bool
}

func newResponderWatch(env *serveEnv, renew, follow bool) *responderWatch {
	w := &responderWatch{env: env, renew: renew, follow: follow, signing: map[string]string{}, unserved: map[string]bool{}}
	for id, r := range env.keyring.Responders {
		w.signing[id] = r.Responder.ID
	}
	return w
}

// run checks at once, then every responderCheckEvery until ctx ends.
func (w *responderWatch) run(ctx context.Context) {
	t := time.NewTicker(responderCheckEvery)
	defer t.Stop()
	for {
		w.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check renews and follows once; what fails is logged and tried again at
// the next check.
func (w *responderWatch) check(ctx context.Context) {
	log := w.env.logger
	if w.renew {
		cfg := ceremonyConfig(w.env.cfg, "system:ca")
		deps := ceremonyDeps(w.env.store, w.env.keys, log)
		deps.Clock = w.env.clock
		made, err := ceremony.RenewResponders(ctx, cfg, deps, w.env.cfg.Issuance.ResponderRenewBefore)
		for _, r := range made {
			log.Info("ocsp responder renewed", "issuer", r.IssuerID, "responder", r.ID, "not_after", r.NotAfter.Format(time.RFC3339))
		}
		if err != nil {
			log.Error("renewing OCSP responders; will try again", "err", err)
		}
	}
	if w.follow {
		if err := w.followNewest(ctx); err != nil {
			log.Error("following OCSP responders; will try again", "err", err)
		}
	}
}

// followNewest makes the pre-signer sign with each issuer's newest
// responder.
func (w *responderWatch) followNewest(ctx context.Context) error {
	responders, err := w.env.store.Responders(ctx)
	if err != nil {
		return fmt.Errorf("listing responders: %w", err)
	}
	for _, r := range store.NewestResponders(responders) {
		if w.signing[r.IssuerID] == r.ID || w.unserved[r.IssuerID] {
			continue
		}
		if _, served := w.signing[r.IssuerID]; !served {
			w.unserved[r.IssuerID] = true
			w.env.logger.Warn("an issuer in the store is not served here: restart to answer OCSP for it",
				"issuer", r.IssuerID)
			continue
		}
		cert, err := x509.ParseCertificate(r.CertDER)
		if err != nil {
			return fmt.Errorf("responder %s certificate: %w", r.ID, err)
		}
		key, err := w.env.keys.Signer(ctx, r.KeyRef)
		if err != nil {
			return fmt.Errorf("responder %s key: %w", r.ID, err)
		}
		if err := w.env.ocsp.SetResponder(r.IssuerID, cert, key); err != nil {
			if errors.Is(err, ocsp.ErrInvalid) {
				w.env.logger.Error("a responder in the store cannot sign for its issuer; keeping the current one",
					"issuer", r.IssuerID, "responder", r.ID, "err", err)
				w.signing[r.IssuerID] = r.ID // not again every minute
				continue
			}
			return fmt.Errorf("responder %s: %w", r.ID, err)
		}
		w.signing[r.IssuerID] = r.ID
	}
	return nil
}
