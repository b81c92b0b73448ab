package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jpkica/jpkica/audit"
)

// IssuerKey is an issuer generation with its certificate and its signer.
type IssuerKey struct {
	Issuer Issuer
	Cert   *x509.Certificate
	Signer crypto.Signer
}

// AuthorityConfig holds the tunable issuance rules.
type AuthorityConfig struct {
	// RenewalWindowMonths is how long before expiry renewal opens, 1 to 12
	// months; required (DefaultRenewalWindowMonths is JPKI's).
	RenewalWindowMonths int
}

// AuthorityDeps are the parts an Authority works with.
type AuthorityDeps struct {
	Store    Store
	Profiles *Profiles
	// Issuers are the generations that issue new certificates, one per type.
	Issuers []IssuerKey
	Clock   func() time.Time
	Rand    io.Reader
	// Linter lints every certificate before the issuer key signs it
	// (package lint's Linter). Required.
	Linter Linter
	// Listener, if set, learns of every certificate whose status changed,
	// new ones included, once the change is committed (the OCSP pre-signer).
	Listener StatusListener
}

// StatusListener learns of committed status changes: new certificates,
// superseded, revoked and held ones. It must not block for long.
type StatusListener interface {
	StatusChanged(ctx context.Context, serials ...Serial)
}

// Authority issues the two card certificates under the JPKI rules. It is
// safe for concurrent use.
type Authority struct {
	store    Store
	profiles *Profiles
	issuers  map[CertType]IssuerKey
	clock    func() time.Time
	rand     io.Reader
	linter   Linter
	window   int
	listener StatusListener

	// inflight holds the idempotency keys being issued for (by client ID
	// and key), each with a channel closed when its issuance is done.
	mu       sync.Mutex
	inflight map[[2]string]chan struct{}
	waiting  atomic.Int64 // requests waiting for a claim
}

// NewAuthority checks its configuration and dependencies once.
func NewAuthority(cfg AuthorityConfig, deps AuthorityDeps) (*Authority, error) {
	if deps.Store == nil || deps.Profiles == nil || deps.Clock == nil || deps.Rand == nil || deps.Linter == nil {
		return nil, fmt.Errorf("%w: authority needs a store, profiles, a clock, a random source and a linter", ErrInvalid)
	}
	if cfg.RenewalWindowMonths < 1 {
		return nil, fmt.Errorf("%w: renewal window of %d months", ErrInvalid, cfg.RenewalWindowMonths)
	}
	a := &Authority{store: deps.Store, profiles: deps.Profiles, issuers: map[CertType]IssuerKey{},
		clock: deps.Clock, rand: deps.Rand, linter: deps.Linter, window: cfg.RenewalWindowMonths, listener: deps.Listener,
		inflight: map[[2]string]chan struct{}{}}
	for _, ik := range deps.Issuers {
		if ik.Cert == nil || ik.Signer == nil {
			return nil, fmt.Errorf("%w: issuer %s without certificate or signer", ErrInvalid, ik.Issuer.ID)
		}
		if _, dup := a.issuers[ik.Issuer.Type]; dup {
			return nil, fmt.Errorf("%w: two current issuers for %v", ErrInvalid, ik.Issuer.Type)
		}
		a.issuers[ik.Issuer.Type] = ik
	}
	return a, nil
}

// IssueRequest is one certificate for one card.
type IssueRequest struct {
	Type        CertType
	PublicKey   crypto.PublicKey // the card's key, from a CSR whose signature the caller verified
	CardID      string
	CardExpires Date
	ResidentID  string
	// Municipality is the issuing municipality's six-digit code: it names
	// the certificate's CRL partition for life.
	Municipality string
	// CallerMunicipality is the calling counter's municipality, which
	// limits what the issuance may supersede (Issuance.Plan); empty for an
	// administrator.
	CallerMunicipality string
	Facts              Facts // the 4 facts; BirthDate is needed for both types
	AdultGuardianship  bool

	// Actor is who asked, for the audit log ("counter:302015:terminal-7").
	Actor string
	// ClientID and IdempotencyKey make a retried request return the first
	// answer; RequestHash tells a retry from a different request.
	ClientID       string
	IdempotencyKey string
	RequestHash    []byte
}

// Issued is the answer to an issuance.
type Issued struct {
	Record Record
	Chain  [][]byte // the issuer certificate(s), DER
	// Replayed is true when the answer is an earlier issuance returned for a
	// retried idempotency key.
	Replayed bool
	// Superseded lists the card's earlier certificates this one replaced.
	Superseded []Serial
}

// Issue checks eligibility, computes the validity, builds the certificate from
// its profile, lints it, signs it with the issuer key and stores it with its
// audit entry in one transaction. A certificate that was signed but could not
// be stored is never returned. With an idempotency key, an earlier issuance
// for the same client and key is returned instead (Replayed), or ErrConflict
// if its request differed; a retry that arrives while the first is still
// under way in this process waits for it (see claim).
func (a *Authority) Issue(ctx context.Context, req IssueRequest) (Issued, error) {
	done, err := a.claim(ctx, req)
	if err != nil {
		return Issued{}, err
	}
	defer done()
	return a.issue(ctx, req)
}

// issue is Issue under the request's claim.
func (a *Authority) issue(ctx context.Context, req IssueRequest) (Issued, error) {
	if req.IdempotencyKey != "" {
		got, err := a.replay(ctx, req)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return got, err
		}
	}
	ik, ok := a.issuers[req.Type]
	if !ok {
		return Issued{}, fmt.Errorf("%w: no current issuer for %v certificates", ErrInvalid, req.Type)
	}
	if req.CardID == "" || req.ResidentID == "" {
		return Issued{}, fmt.Errorf("%w: card and resident IDs are required", ErrInvalid)
	}
	now := a.clock().UTC().Truncate(time.Second)
	if err := CheckEligibility(EligibilityRequest{Type: req.Type, BirthDate: req.Facts.BirthDate,
		IssuedAt: now, AdultGuardianship: req.AdultGuardianship}); err != nil {
		return Issued{}, err
	}
	var factsHash []byte
	if req.Type == Signature {
		if err := req.Facts.Validate(); err != nil {
			return Issued{}, err
		}
		factsHash = req.Facts.Hash()
	}
	keyHash, err := KeyHash(req.PublicKey)
	if err != nil {
		return Issued{}, err
	}
	// The rules of Plan are checked before the issuer key signs, so that a
	// refused issuance leaves no signature behind; the store checks them
	// again in its transaction.
	in := Issuance{Record: Record{Type: req.Type, CardID: req.CardID, ResidentID: req.ResidentID,
		CardExpires: req.CardExpires, KeyHash: keyHash, IssuedAt: now}, Supersede: true,
		CallerMunicipality: req.CallerMunicipality}
	st, err := a.store.IssuanceState(ctx, in.Query())
	if err != nil {
		return Issued{}, fmt.Errorf("reading card %s: %w", req.CardID, err)
	}
	if _, err := in.Plan(st); err != nil {
		return Issued{}, err
	}
	notAfter, err := NotAfter(ValidityRequest{Type: req.Type, IssuedAt: now, BirthDate: req.Facts.BirthDate,
		CardExpires: req.CardExpires, AuthExpires: authExpiry(st, req.Type), CurrentExpires: currentExpiry(st, req.Type),
		RenewalWindowMonths: a.window})
	if err != nil {
		return Issued{}, err
	}
	if notAfter.After(ik.Cert.NotAfter) {
		return Issued{}, fmt.Errorf("%w: %s expires %s, the %v certificate would run to %s", ErrIssuerExpiring,
			ik.Issuer.ID, ik.Cert.NotAfter.UTC().Format(time.RFC3339), req.Type, notAfter.Format(time.RFC3339))
	}
	serial, err := NewSerial(a.rand)
	if err != nil {
		return Issued{}, fmt.Errorf("serial: %w", err)
	}
	tmpl, err := a.profiles.Template(TemplateRequest{
		Type: req.Type, Serial: serial, NotBefore: now, NotAfter: notAfter, PublicKey: req.PublicKey,
		Facts: req.Facts, Municipality: req.Municipality, Issuer: ik.Cert, IssuerID: ik.Issuer.ID, Rand: a.rand,
	})
	if err != nil {
		return Issued{}, err
	}
	der, err := SignCertificate(a.rand, a.linter, tmpl, ik.Cert, ik.Signer)
	if err != nil {
		return Issued{}, fmt.Errorf("issuing %v certificate %s: %w", req.Type, serial, err)
	}
	rec := in.Record
	rec.Serial, rec.IssuerID, rec.AKI, rec.Municipality = serial, ik.Issuer.ID, ik.Cert.SubjectKeyId, req.Municipality
	rec.NotBefore, rec.NotAfter, rec.Status, rec.FactsHash, rec.DER = now, notAfter, Good, factsHash, der
	detail, _ := json.Marshal(map[string]any{
		"type": req.Type.String(), "issuer": ik.Issuer.ID, "card": req.CardID, "resident": req.ResidentID,
		"municipality": req.Municipality, "not_after": notAfter.Format(time.RFC3339),
	})
	in.Record, in.IdempotencyKey, in.ClientID, in.RequestHash = rec, req.IdempotencyKey, req.ClientID, req.RequestHash
	in.Audit = audit.Entry{Time: now, Actor: req.Actor, Action: audit.ActionCertificateIssue, Subject: serial.Hex(), Detail: detail}
	superseded, err := a.store.InsertCertificate(ctx, in)
	if err != nil {
		// Signed, then refused: a request with the same idempotency key was
		// stored first, by another process (claim keeps this one's own
		// retries waiting), or the register reported the resident gone.
		// The issuer key signed it, so it goes on record, discarded before
		// delivery.
		if why := discardedBecause(err); why != "" {
			if derr := a.discard(ctx, req, rec, why); derr != nil {
				return Issued{}, fmt.Errorf("storing certificate %s: %w (and recording it as discarded: %v)", serial, err, derr)
			}
		}
		if req.IdempotencyKey != "" && errors.Is(err, ErrConflict) {
			if got, rerr := a.replay(ctx, req); rerr == nil {
				return got, nil
			}
		}
		return Issued{}, fmt.Errorf("storing certificate %s: %w", serial, err)
	}
	a.notify(ctx, append([]Serial{serial}, superseded...)...)
	return Issued{Record: rec, Chain: [][]byte{ik.Cert.Raw}, Superseded: superseded}, nil
}

// discardedBecause says why the store's refusal of a signed certificate
// makes it a discarded one, or "" when the refusal is of another kind (the
// database down: nothing can be recorded then).
func discardedBecause(err error) string {
	switch {
	case errors.Is(err, ErrCardInUse), errors.Is(err, ErrCardExpiry):
		return "another issuance onto the card was stored first"
	case errors.Is(err, ErrKeyReused):
		return "another issuance of the key was stored first"
	case errors.Is(err, ErrConflict):
		return "a request with the same idempotency key was stored first"
	case errors.Is(err, ErrResidentGone):
		return "the register reported the resident deceased or removed"
	}
	return ""
}

// discard records a signed certificate that will never be handed out as
// revoked at once, reason unspecified (DOMAIN.md: discarded before
// delivery), with its audit entry, and tells the listener: what the issuer
// key signed is on the record and on the CRL.
func (a *Authority) discard(ctx context.Context, req IssueRequest, rec Record, why string) error {
	rec.Status, rec.Reason, rec.RevokedAt = Revoked, Unspecified, rec.IssuedAt
	detail, _ := json.Marshal(map[string]string{"reason": Unspecified.String(), "card": rec.CardID, "why": why})
	if _, err := a.store.InsertCertificate(ctx, Issuance{Record: rec,
		Audit: audit.Entry{Time: rec.IssuedAt, Actor: req.Actor, Action: audit.ActionCertificateDiscard, Subject: rec.Serial.Hex(), Detail: detail},
	}); err != nil {
		return err
	}
	a.notify(ctx, rec.Serial)
	return nil
}

// claim makes this issuance the only one in this process for the client's
// idempotency key: a retry that arrives while the first is still being
// signed waits for it, then finds its certificate to replay, so the issuer
// key signs once. (Across processes the store decides: the second insert
// is a conflict, its certificate is recorded as discarded, and it replays
// the first.) A request without a key claims nothing.
// done ends the claim. An error is ctx's, while waiting.
func (a *Authority) claim(ctx context.Context, req IssueRequest) (done func(), err error) {
	if req.IdempotencyKey == "" {
		return func() {}, nil
	}
	k := [2]string{req.ClientID, req.IdempotencyKey}
	for {
		a.mu.Lock()
		busy, ok := a.inflight[k]
		if !ok {
			ch := make(chan struct{})
			a.inflight[k] = ch
			a.mu.Unlock()
			return func() {
				a.mu.Lock()
				delete(a.inflight, k)
				a.mu.Unlock()
				close(ch)
			}, nil
		}
		a.mu.Unlock()
		a.waiting.Add(1)
		select {
		case <-busy:
			a.waiting.Add(-1)
		case <-ctx.Done():
			a.waiting.Add(-1)
			return nil, fmt.Errorf("waiting for the issuance with the same idempotency key: %w", ctx.Err())
		}
	}
}

func (a *Authority) notify(ctx context.Context, serials ...Serial) {
	if a.listener != nil && len(serials) > 0 {
		a.listener.StatusChanged(ctx, serials...)
	}
}

// replay returns the certificate an idempotency key already produced, or
// ErrConflict if the key was used for a different request.
func (a *Authority) replay(ctx context.Context, req IssueRequest) (Issued, error) {
	hash, serial, err := a.store.Idempotent(ctx, req.ClientID, req.IdempotencyKey)
	if err != nil {
		return Issued{}, err
	}
	if !bytes.Equal(hash, req.RequestHash) {
		return Issued{}, fmt.Errorf("%w: idempotency key %q was used for a different request", ErrConflict, req.IdempotencyKey)
	}
	rec, err := a.store.Certificate(ctx, serial)
	if err != nil {
		return Issued{}, fmt.Errorf("replaying idempotency key: %w", err)
	}
	chain, err := a.chainFor(rec)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Record: rec, Chain: chain, Replayed: true}, nil
}

func (a *Authority) chainFor(rec Record) ([][]byte, error) {
	for _, ik := range a.issuers {
		if ik.Issuer.ID == rec.IssuerID {
			return [][]byte{ik.Cert.Raw}, nil
		}
	}
	return nil, fmt.Errorf("%w: issuer %s of certificate %s is not loaded", ErrNotFound, rec.IssuerID, rec.Serial)
}

// authExpiry is, for a signature certificate, the notAfter of the card's
// good user-authentication certificate, which caps it. Zero when there is
// none.
func authExpiry(st IssuanceState, typ CertType) time.Time {
	if typ != Signature {
		return time.Time{}
	}
	for _, r := range st.Card {
		if r.Type == Authentication && r.Status == Good {
			return r.NotAfter
		}
	}
	return time.Time{}
}

// currentExpiry is the notAfter of the resident's current live certificate
// of the type, the latest when there are several; zero when there is none.
func currentExpiry(st IssuanceState, typ CertType) time.Time {
	var latest time.Time
	for _, r := range st.Resident {
		if r.Type == typ && r.NotAfter.After(latest) {
			latest = r.NotAfter
		}
	}
	return latest
}
