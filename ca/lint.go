package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
)

// Linter checks a certificate before an issuer key signs it, as Boulder
// lints before issuance. Package lint's Linter is the one jpkica runs (zlint
// with the lints of the standards JPKI follows, and the Fermat check of the
// subject key); this package does not import it, so that the JPKI rules here
// link no linter into a client that uses them.
//
// An error is a finding, or an input the linter cannot check. An error for
// a subject key the linter finds weak has a method WeakKey() bool that
// returns true.
type Linter interface {
	// Certificate lints a DER certificate: here, the TBSCertificate an
	// issuer key is to sign, with a placeholder signature.
	Certificate(der []byte) error
	// SelfSigned lints a self-signed template, signed by a throwaway key
	// of its key's type whose subject key identifier keyID computes.
	SelfSigned(tmpl *x509.Certificate, keyID func(crypto.PublicKey) ([]byte, error)) error
}

// Lint checks a certificate template with l before the real signature.
// Under an issuer, l lints the very TBSCertificate the issuer key would sign
// (see buildTBS), with a placeholder signature. A self-signed template
// (issuer nil) is linted by l.SelfSigned under a throwaway key whose SKI is
// SubjectKeyID's. The template's PublicKey field must hold the subject key
// (every template of this package sets it). A finding is an error wrapping
// ErrLint, and a weak subject key wraps ErrWeakKey too; a template that
// cannot be linted wraps ErrInvalid. Safe for concurrent use when l is.
func Lint(l Linter, tmpl, issuer *x509.Certificate) error {
	if issuer == nil {
		return lintSelfSigned(l, tmpl)
	}
	_, err := lintedTBS(l, tmpl, issuer)
	return err
}

// lintSelfSigned lints a self-signed template with l.SelfSigned. Its key
// must be one of the CA's own key types (checkServiceKey), which the
// linter has throwaway keys for.
func lintSelfSigned(l Linter, tmpl *x509.Certificate) error {
	if tmpl == nil || tmpl.PublicKey == nil {
		return fmt.Errorf("%w: a self-signed template without a public key", ErrInvalid)
	}
	if err := checkServiceKey(tmpl.PublicKey); err != nil {
		return err
	}
	return lintFailure(l.SelfSigned(tmpl, SubjectKeyID))
}

// lintedTBS builds tmpl's TBSCertificate under issuer and lints it with a
// placeholder signature: what the issuer key may then sign.
func lintedTBS(l Linter, tmpl, issuer *x509.Certificate) (tbsCertificate, error) {
	tbs, err := buildTBS(tmpl, issuer)
	if err != nil {
		return tbsCertificate{}, err
	}
	der, err := tbs.lintDER(issuer)
	if err != nil {
		return tbsCertificate{}, fmt.Errorf("%w: assembling the lint certificate: %v", ErrLint, err)
	}
	if err := lintFailure(l.Certificate(der)); err != nil {
		return tbsCertificate{}, err
	}
	return tbs, nil
}

// lintFailure makes a linter's error match ErrLint, and ErrWeakKey when it
// says WeakKey, keeping its message.
func lintFailure(err error) error {
	if err == nil {
		return nil
	}
	var wk interface{ WeakKey() bool }
	return &lintError{err: err, weakKey: errors.As(err, &wk) && wk.WeakKey()}
}

type lintError struct {
	err     error
	weakKey bool
}

func (e *lintError) Error() string { return e.err.Error() }
func (e *lintError) Unwrap() error { return e.err }

// Is matches ErrLint, and ErrWeakKey for a weak subject key.
func (e *lintError) Is(target error) bool {
	return target == ErrLint || e.weakKey && target == ErrWeakKey
}
