// Package ceremony is jpkica's key ceremony and key loading: it creates, in
// the configured key store, one self-signed issuer per card certificate type
// (a new generation on request), a delegated OCSP responder certificate per
// issuer (RFC 6960 section 4.2.2.2), and the client CA that signs terminal
// certificates; it loads them back as signers for the daemon (Load, a
// Keyring); it renews the delegated responders before they expire
// (RenewResponders); and it issues terminal client certificates under the
// client CA (IssueClient).
//
// Run creates what the store lacks, so that an interrupted ceremony
// completes when run again; a store that lacks nothing is ErrInitialised,
// unless a new generation is asked for. It never overwrites a key: a label
// it would create that the key store already holds stops it, with an error
// wrapping hsm.ErrKeyExists, before anything is created. Every creation is
// written to the audit log in the same transaction as its record. Several
// nodes may renew responders at once; the store records one renewal per
// responder.
package ceremony

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/lint"
	"github.com/jpkica/jpkica/store"
)

// ErrInitialised reports a ceremony run against a store that already has
// issuers, without --new-generation.
var ErrInitialised = errors.New("key ceremony already done")

// Config holds the ceremony's choices.
type Config struct {
	// IssuerValidity, ResponderValidity and ClientCAValidity are the
	// lifetimes of what the ceremony creates; all three are required.
	IssuerValidity    time.Duration
	ResponderValidity time.Duration
	ClientCAValidity  time.Duration
	// ResponderAlgorithm is the delegated OCSP responder key: RSA-2048 as
	// JPKI, or ECDSA P-256 (much cheaper to sign).
	ResponderAlgorithm hsm.Algorithm
	// Actor names who ran the ceremony in the audit log.
	Actor string
}

// Deps are what the ceremony works with.
type Deps struct {
	Store  *store.Store
	Keys   hsm.KeyStore
	Clock  func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
}

// Result lists what a ceremony created.
type Result struct {
	Issuers    []ca.Issuer
	Responders []store.Responder
	ClientCA   *ca.Issuer // nil when one existed already
}

// cardTypes are the two issuers every generation has.
var cardTypes = []ca.CertType{ca.Signature, ca.Authentication}

// Run performs the key ceremony. It creates what the store lacks: generation
// 1 of a card issuer type that has none, a delegated responder for every
// issuer without one, and the client CA; so a ceremony that was interrupted
// completes when run again. With newGeneration it also adds the next
// generation of both card issuers. A store that lacks nothing, without
// newGeneration, is ErrInitialised.
func Run(ctx context.Context, cfg Config, deps Deps, newGeneration bool) (Result, error) {
	if cfg.IssuerValidity <= 0 || cfg.ResponderValidity <= 0 || cfg.ClientCAValidity <= 0 {
		return Result{}, fmt.Errorf("%w: ceremony validities must be positive", ca.ErrInvalid)
	}
	existing, err := deps.Store.Issuers(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("listing issuers: %w", err)
	}
	responders, err := deps.Store.Responders(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("listing responders: %w", err)
	}
	hasResponder := map[string]bool{}
	for _, r := range responders {
		hasResponder[r.IssuerID] = true
	}
	gen := map[ca.CertType]int{}
	var unanswered []ca.Issuer // card issuers without a responder
	for _, is := range existing {
		gen[is.Type] = max(gen[is.Type], is.Generation)
		if is.Type != ca.Terminal && !hasResponder[is.ID] {
			unanswered = append(unanswered, is)
		}
	}
	var create []ca.CertType // card issuer types that get a new generation
	for _, t := range cardTypes {
		if newGeneration || gen[t] == 0 {
			create = append(create, t)
		}
	}
	needClientCA := gen[ca.Terminal] == 0
	if len(create) == 0 && len(unanswered) == 0 && !needClientCA {
		return Result{}, fmt.Errorf("%w: the store has its issuers; run with --new-generation to add one", ErrInitialised)
	}
	// Check every label first, so that a clash stops the ceremony before
	// anything is created.
	var labels []string
	for _, t := range create {
		labels = append(labels, issuerLabel(IssuerID(t, gen[t]+1)))
	}
	if needClientCA {
		labels = append(labels, clientCALabel)
	}
	for _, l := range labels {
		_, err := deps.Keys.Signer(ctx, l)
		switch {
		case err == nil:
			return Result{}, fmt.Errorf("%w: key %s is already in the key store but not in the store (an interrupted ceremony?); "+
				"the ceremony will not overwrite it: remove it from the key store first", hsm.ErrKeyExists, l)
		case !errors.Is(err, hsm.ErrKeyNotFound):
			return Result{}, fmt.Errorf("checking key %s: %w", l, err)
		}
	}
	var res Result
	for _, is := range unanswered {
		r, err := createResponder(ctx, cfg, deps, is, nil)
		if err != nil {
			return res, err
		}
		res.Responders = append(res.Responders, r)
	}
	for _, t := range create {
		is, err := createIssuer(ctx, cfg, deps, t, gen[t]+1)
		if err != nil {
			return res, err
		}
		res.Issuers = append(res.Issuers, is)
		r, err := createResponder(ctx, cfg, deps, is, nil)
		if err != nil {
			return res, err
		}
		res.Responders = append(res.Responders, r)
	}
	if needClientCA {
		cca, err := createClientCA(ctx, cfg, deps)
		if err != nil {
			return res, err
		}
		res.ClientCA = &cca
	}
	return res, nil
}

// IssuerID names an issuer generation ("signature-g1").
func IssuerID(t ca.CertType, generation int) string {
	return fmt.Sprintf("%s-g%d", t, generation)
}

// Key labels in the key store.
const clientCALabel = "client-ca-terminal-g1"

func issuerLabel(issuerID string) string { return "issuer-" + issuerID }

func (cfg Config) entry(now time.Time, action audit.Action, detail []byte) audit.Entry {
	actor := cfg.Actor
	if actor == "" {
		actor = "ceremony"
	}
	return audit.Entry{Time: now, Actor: actor, Action: action, Detail: detail}
}

// root describes one self-signed CA the ceremony creates.
type root struct {
	issuer    ca.Issuer // ID, Type, Generation and KeyRef set
	algorithm hsm.Algorithm
	action    audit.Action
	template  func(serial ca.Serial, now time.Time, pub crypto.PublicKey) (*x509.Certificate, error)
}

// createRoot makes a key in the key store, self-signs its certificate and
// records it with its audit entry.
func createRoot(ctx context.Context, cfg Config, deps Deps, r root) (ca.Issuer, error) {
	is := r.issuer
	key, err := deps.Keys.GenerateKey(ctx, hsm.GenerateKeyRequest{Label: is.KeyRef, Algorithm: r.algorithm})
	if err != nil {
		return ca.Issuer{}, fmt.Errorf("generating key %s: %w", is.KeyRef, err)
	}
	now := deps.Clock().UTC().Truncate(time.Second)
	serial, err := ca.NewSerial(deps.Rand)
	if err != nil {
		return ca.Issuer{}, err
	}
	tmpl, err := r.template(serial, now, key.Public())
	if err != nil {
		return ca.Issuer{}, err
	}
	if is.CertDER, err = ca.SignCertificate(deps.Rand, lint.Linter{}, tmpl, nil, key); err != nil {
		return ca.Issuer{}, fmt.Errorf("self-signing %s: %w", is.ID, err)
	}
	is.CreatedAt = now
	detail := fmt.Appendf(nil, `{"type":%q,"generation":%d,"key":%q,"serial":%q}`, is.Type, is.Generation, is.KeyRef, serial.Hex())
	if err := deps.Store.InsertIssuer(ctx, is, cfg.entry(now, r.action, detail)); err != nil {
		return ca.Issuer{}, fmt.Errorf("recording %s: %w", is.ID, err)
	}
	deps.Logger.Info("CA created", "issuer", is.ID, "key", is.KeyRef)
	return is, nil
}

func createIssuer(ctx context.Context, cfg Config, deps Deps, t ca.CertType, generation int) (ca.Issuer, error) {
	id := IssuerID(t, generation)
	return createRoot(ctx, cfg, deps, root{
		issuer:    ca.Issuer{ID: id, Type: t, Generation: generation, KeyRef: issuerLabel(id)},
		algorithm: hsm.RSA2048,
		action:    audit.ActionIssuerCreate,
		template: func(serial ca.Serial, now time.Time, pub crypto.PublicKey) (*x509.Certificate, error) {
			return ca.IssuerTemplate(ca.IssuerTemplateRequest{Type: t, Serial: serial, NotBefore: now,
				NotAfter: now.Add(cfg.IssuerValidity), PublicKey: pub})
		},
	})
}

func createClientCA(ctx context.Context, cfg Config, deps Deps) (ca.Issuer, error) {
	return createRoot(ctx, cfg, deps, root{
		issuer:    ca.Issuer{ID: IssuerID(ca.Terminal, 1), Type: ca.Terminal, Generation: 1, KeyRef: clientCALabel},
		algorithm: hsm.ECDSAP256,
		action:    audit.ActionClientCACreate,
		template: func(serial ca.Serial, now time.Time, pub crypto.PublicKey) (*x509.Certificate, error) {
			return ca.ClientCATemplate(ca.ClientCATemplateRequest{Serial: serial, NotBefore: now,
				NotAfter: now.Add(cfg.ClientCAValidity), PublicKey: pub, Name: "jpkica client CA"})
		},
	})
}

// createResponder makes a delegated responder for is: a key in the key
// store and a certificate the issuer key signs, recorded with an audit
// entry. With replaces set, it is the renewal of that responder, recorded
// only if that is still the issuer's newest (store.ReplaceResponder).
func createResponder(ctx context.Context, cfg Config, deps Deps, is ca.Issuer, replaces *store.Responder) (store.Responder, error) {
	issuerCert, issuerKey, err := loadIssuerKey(ctx, deps.Keys, is)
	if err != nil {
		return store.Responder{}, err
	}
	now := deps.Clock().UTC().Truncate(time.Second)
	id := fmt.Sprintf("ocsp-%s-%d", is.ID, now.Unix())
	key, label, err := responderKey(ctx, cfg, deps, id, replaces)
	if err != nil {
		return store.Responder{}, err
	}
	serial, err := ca.NewSerial(deps.Rand)
	if err != nil {
		return store.Responder{}, err
	}
	notAfter := now.Add(cfg.ResponderValidity)
	tmpl, err := ca.ResponderTemplate(ca.ResponderTemplateRequest{Type: is.Type, Serial: serial, NotBefore: now,
		NotAfter: notAfter, PublicKey: key.Public(), IssuerCert: issuerCert})
	if err != nil {
		return store.Responder{}, err
	}
	der, err := ca.SignCertificate(deps.Rand, lint.Linter{}, tmpl, issuerCert, issuerKey)
	if err != nil {
		return store.Responder{}, fmt.Errorf("signing responder %s: %w", id, err)
	}
	r := store.Responder{ID: id, IssuerID: is.ID, KeyRef: label, CertDER: der, NotAfter: notAfter, CreatedAt: now}
	if replaces == nil {
		detail := fmt.Appendf(nil, `{"issuer":%q,"algorithm":%q,"serial":%q}`, is.ID, cfg.ResponderAlgorithm, serial.Hex())
		err = deps.Store.InsertResponder(ctx, r, cfg.entry(now, audit.ActionResponderCreate, detail))
	} else {
		detail := fmt.Appendf(nil, `{"issuer":%q,"algorithm":%q,"serial":%q,"replaces":%q}`, is.ID, cfg.ResponderAlgorithm,
			serial.Hex(), replaces.ID)
		err = deps.Store.ReplaceResponder(ctx, r, replaces.ID, cfg.entry(now, audit.ActionResponderRenew, detail))
	}
	if err != nil {
		return store.Responder{}, fmt.Errorf("recording responder %s: %w", id, err)
	}
	deps.Logger.Info("OCSP responder created", "responder", id, "issuer", is.ID, "not_after", notAfter.Format(time.RFC3339))
	return r, nil
}

// responderKey makes the key of a new responder: labelled id, or, for the
// renewal of replaces, labelled after the responder it renews, so that a
// renewal tried again after a failure, or by a second node at the same
// time, takes the key the first attempt made instead of leaving it unused
// in the key store. A key found under that label must be of the
// configured algorithm.
func responderKey(ctx context.Context, cfg Config, deps Deps, id string, replaces *store.Responder) (crypto.Signer, string, error) {
	label := id
	if replaces != nil {
		label = replaces.ID + "-next"
	}
	key, err := deps.Keys.GenerateKey(ctx, hsm.GenerateKeyRequest{Label: label, Algorithm: cfg.ResponderAlgorithm})
	if replaces != nil && errors.Is(err, hsm.ErrKeyExists) {
		if key, err = deps.Keys.Signer(ctx, label); err == nil && !isAlgorithm(key.Public(), cfg.ResponderAlgorithm) {
			err = fmt.Errorf("%w: key %s is in the key store but is not %v: remove it", ca.ErrInvalid, label, cfg.ResponderAlgorithm)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("responder key %s: %w", label, err)
	}
	return key, label, nil
}

// isAlgorithm reports whether pub is a key of algorithm a.
func isAlgorithm(pub crypto.PublicKey, a hsm.Algorithm) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return a == hsm.RSA2048 && k.N.BitLen() == 2048
	case *ecdsa.PublicKey:
		return a == hsm.ECDSAP256 && k.Curve == elliptic.P256()
	}
	return false
}

// loadIssuerKey parses an issuer's certificate and finds its key, checking
// that the two belong together.
func loadIssuerKey(ctx context.Context, keys hsm.KeyStore, is ca.Issuer) (*x509.Certificate, crypto.Signer, error) {
	cert, err := x509.ParseCertificate(is.CertDER)
	if err != nil {
		return nil, nil, fmt.Errorf("issuer %s certificate: %w", is.ID, err)
	}
	key, err := keys.Signer(ctx, is.KeyRef)
	if err != nil {
		return nil, nil, fmt.Errorf("issuer %s key %s: %w", is.ID, is.KeyRef, err)
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, nil, fmt.Errorf("%w: issuer %s: key %s does not match its certificate", ca.ErrInvalid, is.ID, is.KeyRef)
	}
	return cert, key, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}
