package ceremony

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/store"
)

// RenewResponders gives every card issuer generation that has not expired
// a new delegated OCSP responder (key and certificate, ResponderValidity
// long) when its newest one expires within renewBefore, so that responses
// never go out under an expired responder certificate. The OCSP nodes pick
// the new responder up from the store (ocsp.Presigner.SetResponder).
//
// Several nodes may run it at once: a renewal is recorded only while the
// responder it renews is still the issuer's newest, and a node that finds
// another's renewal first reports nothing for that issuer. The new key is
// labelled after the responder it renews, so nodes racing, or an attempt
// made again after a failure, use one key rather than leaving keys unused
// in the key store. It returns the responders it recorded; an error stops
// it at the issuer that failed.
func RenewResponders(ctx context.Context, cfg Config, deps Deps, renewBefore time.Duration) ([]store.Responder, error) {
	if cfg.ResponderValidity <= renewBefore {
		return nil, fmt.Errorf("%w: a responder valid for %v would be renewed at once (renewal %v before expiry)",
			ca.ErrInvalid, cfg.ResponderValidity, renewBefore)
	}
	issuers, err := deps.Store.Issuers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing issuers: %w", err)
	}
	responders, err := deps.Store.Responders(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing responders: %w", err)
	}
	newest := store.NewestResponders(responders)
	now := deps.Clock()
	var out []store.Responder
	for _, is := range issuers {
		if is.Type == ca.Terminal {
			continue
		}
		cert, err := x509.ParseCertificate(is.CertDER)
		if err != nil {
			return out, fmt.Errorf("issuer %s certificate: %w", is.ID, err)
		}
		if !cert.NotAfter.After(now) {
			continue // its certificates have expired with it
		}
		old, ok := newest[is.ID]
		if !ok || old.NotAfter.Sub(now) > renewBefore {
			continue // none yet is `init`'s to make; this one has time left
		}
		r, err := createResponder(ctx, cfg, deps, is, &old)
		if errors.Is(err, ca.ErrConflict) {
			deps.Logger.Info("ceremony: another node renewed the responder first", "issuer", is.ID, "replaced", old.ID)
			continue
		}
		if err != nil {
			return out, fmt.Errorf("renewing responder %s of %s: %w", old.ID, is.ID, err)
		}
		out = append(out, r)
	}
	return out, nil
}
