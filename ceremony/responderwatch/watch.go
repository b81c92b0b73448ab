// Package responderwatch keeps the delegated OCSP responders (RFC 6960
// section 4.2.2.2) current while the daemon runs. It is the policy between
// two mechanisms: ceremony.RenewResponders makes a new responder for an
// issuer whose newest one expires soon, and ocsp.Presigner.SetResponder
// makes the pre-signer sign with the responder it is given.
//
// A Watch does one or both, as the node's roles say. With a Renewer (the
// ca role) it renews the responders that expire soon; several nodes may
// renew at once, and the ceremony records one renewal. With a Presigner
// (the ocsp role) it follows the store: each issuer the pre-signer serves
// is signed for by that issuer's newest responder, whichever node made it.
// The pre-signer's issuers are fixed when it is built, so an issuer
// generation made after the start is not served until a restart; the
// Watch warns of each such issuer once. Issuers gives the pre-signer its
// responders at the start, which the Watch then follows.
//
// # Checks and concurrency
//
// New refuses a Watch that cannot work (neither a Renewer nor a
// Presigner, a Presigner without what following needs, no clock) with
// ErrInvalid. Run checks at once, then every Config.Every (DefaultEvery
// when zero), until its context ends. A check that fails is logged and
// made again at the next: Run returns only when its context ends, and
// returns nothing. A Watch is one loop, not safe for concurrent use: call
// Run once. Its dependencies are called from Run's goroutine only, those
// that do I/O (Renewer, Lister, Keys) with Run's context; the Presigner's
// SetResponder, which works in memory, must be safe to call while the
// pre-signer serves (ocsp.Presigner's is).
package responderwatch

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/ocsp"
	"github.com/jpkica/jpkica/store"
)

// DefaultEvery is the time between two checks when Config.Every is zero.
const DefaultEvery = time.Minute

// ErrInvalid reports a Watch that cannot work as configured.
var ErrInvalid = errors.New("responderwatch: invalid configuration")

// Config is how a Watch works.
type Config struct {
	// Every is the time between two checks (DefaultEvery if zero).
	Every time.Duration
}

// Renewer records a new responder for every issuer whose newest one
// expires soon after now, and returns those it recorded.
type Renewer interface {
	RenewResponders(ctx context.Context, now time.Time) ([]store.Responder, error)
}

// Presigner signs an issuer's OCSP responses with the responder it is
// given (ocsp.Presigner).
type Presigner interface {
	SetResponder(issuerID string, cert *x509.Certificate, signer crypto.Signer) error
}

// Lister lists the delegated responders of every issuer (store.Store).
type Lister interface {
	Responders(ctx context.Context) ([]store.Responder, error)
}

// Keys finds a key by its label (hsm.KeyStore).
type Keys interface {
	Signer(ctx context.Context, label string) (crypto.Signer, error)
}

var (
	_ Renewer   = Ceremony{}
	_ Presigner = (*ocsp.Presigner)(nil)
	_ Lister    = (*store.Store)(nil)
	_ Keys      = hsm.KeyStore(nil)
)

// Deps are what a Watch works with: a Renewer, a Presigner or both.
type Deps struct {
	// Renewer, if set, renews the responders (the ca role).
	Renewer Renewer
	// Presigner, if set, is made to sign with each issuer's newest
	// responder (the ocsp role). Keyring is the one it was built from
	// (Issuers), Store where the responders are listed, Keys where their
	// keys are: all three are needed with a Presigner.
	Presigner Presigner
	Keyring   *ceremony.Keyring
	Store     Lister
	Keys      Keys
	// Clock is the time the Renewer renews at.
	Clock  func() time.Time
	Logger *slog.Logger
}

// Watch renews or follows the delegated responders; see the package doc.
type Watch struct {
	every     time.Duration
	renewer   Renewer
	presigner Presigner
	store     Lister
	keys      Keys
	clock     func() time.Time
	log       *slog.Logger
	// signing is the responder ID each served issuer signs with now.
	signing map[string]string
	// unserved are the issuers in the store that the Presigner does not
	// serve (a generation made after it was built), warned about once.
	unserved map[string]bool
}

// New checks cfg and deps once.
func New(cfg Config, deps Deps) (*Watch, error) {
	if cfg.Every < 0 {
		return nil, fmt.Errorf("%w: checks every %v", ErrInvalid, cfg.Every)
	}
	if cfg.Every == 0 {
		cfg.Every = DefaultEvery
	}
	if deps.Renewer == nil && deps.Presigner == nil {
		return nil, fmt.Errorf("%w: a watch needs a renewer or a presigner", ErrInvalid)
	}
	if deps.Clock == nil {
		return nil, fmt.Errorf("%w: a watch needs a clock", ErrInvalid)
	}
	if deps.Presigner != nil && (deps.Keyring == nil || deps.Store == nil || deps.Keys == nil) {
		return nil, fmt.Errorf("%w: following responders needs the keyring, the store and the key store", ErrInvalid)
	}
	w := &Watch{every: cfg.Every, renewer: deps.Renewer, presigner: deps.Presigner, store: deps.Store, keys: deps.Keys,
		clock: deps.Clock, log: deps.Logger, signing: map[string]string{}, unserved: map[string]bool{}}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if deps.Keyring != nil {
		for id, r := range deps.Keyring.Responders {
			w.signing[id] = r.Responder.ID
		}
	}
	return w, nil
}

// Run checks at once, then every Config.Every, and returns when ctx ends.
func (w *Watch) Run(ctx context.Context) {
	t := time.NewTicker(w.every)
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
func (w *Watch) check(ctx context.Context) {
	if w.renewer != nil {
		made, err := w.renewer.RenewResponders(ctx, w.clock())
		for _, r := range made {
			w.log.Info("ocsp responder renewed", "issuer", r.IssuerID, "responder", r.ID, "not_after", r.NotAfter.Format(time.RFC3339))
		}
		if err != nil {
			w.log.Error("renewing OCSP responders; will try again", "err", err)
		}
	}
	if w.presigner != nil {
		if err := w.followNewest(ctx); err != nil {
			w.log.Error("following OCSP responders; will try again", "err", err)
		}
	}
}

// followNewest makes the Presigner sign with each issuer's newest
// responder.
func (w *Watch) followNewest(ctx context.Context) error {
	responders, err := w.store.Responders(ctx)
	if err != nil {
		return fmt.Errorf("listing responders: %w", err)
	}
	for _, r := range store.NewestResponders(responders) {
		if w.signing[r.IssuerID] == r.ID || w.unserved[r.IssuerID] {
			continue
		}
		if _, served := w.signing[r.IssuerID]; !served {
			w.unserved[r.IssuerID] = true
			w.log.Warn("an issuer in the store is not served here: restart to answer OCSP for it", "issuer", r.IssuerID)
			continue
		}
		cert, err := x509.ParseCertificate(r.CertDER)
		if err != nil {
			return fmt.Errorf("responder %s certificate: %w", r.ID, err)
		}
		key, err := w.keys.Signer(ctx, r.KeyRef)
		if err != nil {
			return fmt.Errorf("responder %s key: %w", r.ID, err)
		}
		if err := w.presigner.SetResponder(r.IssuerID, cert, key); err != nil {
			if errors.Is(err, ocsp.ErrInvalid) {
				w.log.Error("a responder in the store cannot sign for its issuer; keeping the current one",
					"issuer", r.IssuerID, "responder", r.ID, "err", err)
				w.signing[r.IssuerID] = r.ID // not again at every check
				continue
			}
			return fmt.Errorf("responder %s: %w", r.ID, err)
		}
		w.signing[r.IssuerID] = r.ID
	}
	return nil
}

// Ceremony is the Renewer of the key ceremony, ceremony.RenewResponders: a
// new responder, key and certificate, for every card issuer generation
// whose newest responder expires within RenewBefore.
type Ceremony struct {
	Config ceremony.Config
	// Deps are the ceremony's; the Watch's time replaces their Clock.
	Deps        ceremony.Deps
	RenewBefore time.Duration
}

// RenewResponders renews as of now.
func (c Ceremony) RenewResponders(ctx context.Context, now time.Time) ([]store.Responder, error) {
	deps := c.Deps
	deps.Clock = func() time.Time { return now }
	return ceremony.RenewResponders(ctx, c.Config, deps, c.RenewBefore)
}

// Issuers are a pre-signer's issuers from a keyring, which a Watch then
// follows: every card issuer generation, signed by its newest delegated
// responder, with its older responders still valid at now, whose stored
// responses the pre-signer serves until it re-signs them.
func Issuers(kr *ceremony.Keyring, now time.Time) ([]ocsp.IssuerConfig, error) {
	var issuers []ocsp.IssuerConfig
	for _, ik := range kr.Issuers {
		r, ok := kr.Responders[ik.Issuer.ID]
		if !ok {
			return nil, fmt.Errorf("issuer %s has no delegated OCSP responder", ik.Issuer.ID)
		}
		ic := ocsp.IssuerConfig{ID: ik.Issuer.ID, Cert: ik.Cert, Signer: r.Signer, ResponderCert: r.Cert}
		for _, old := range kr.Replaced[ik.Issuer.ID] {
			if old.NotAfter.After(now) {
				ic.Replaced = append(ic.Replaced, old)
			}
		}
		issuers = append(issuers, ic)
	}
	return issuers, nil
}
