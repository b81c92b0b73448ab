package ca

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/jpkica/jpkica/lint"
)

// Lint checks a certificate template before the real signature, as Boulder
// does, with package lint (zlint's lints of the standards JPKI follows, and
// the Fermat check of the subject key). Under an issuer, it lints the very
// TBSCertificate the issuer key would sign (see buildTBS), with a
// placeholder signature. A self-signed template (issuer nil) is linted by
// lint.SelfSigned, signed by a throwaway key whose SKI is SubjectKeyID's.
// The template's PublicKey field must hold the subject key (every template
// of this package sets it). Any error or fatal finding is an error wrapping
// ErrLint that names the lints, and a weak subject key wraps ErrWeakKey
// too; a template that cannot be linted wraps ErrInvalid. Safe for
// concurrent use.
func Lint(tmpl, issuer *x509.Certificate) error {
	if issuer == nil {
		return lintSelfSigned(tmpl)
	}
	_, err := lintedTBS(tmpl, issuer)
	return err
}

// lintSelfSigned lints a self-signed template with lint.SelfSigned; a
// template it has no throwaway key for is ErrInvalid here.
func lintSelfSigned(tmpl *x509.Certificate) error {
	err := lint.SelfSigned(tmpl, SubjectKeyID)
	if errors.Is(err, lint.ErrUnsupported) {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return err
}

// lintedTBS builds tmpl's TBSCertificate under issuer and lints it with a
// placeholder signature: what the issuer key may then sign.
func lintedTBS(tmpl, issuer *x509.Certificate) (tbsCertificate, error) {
	tbs, err := buildTBS(tmpl, issuer)
	if err != nil {
		return tbsCertificate{}, err
	}
	if err := tbs.lint(issuer); err != nil {
		return tbsCertificate{}, err
	}
	return tbs, nil
}

// lint runs lint.Certificate on the TBSCertificate with a placeholder
// signature.
func (t tbsCertificate) lint(issuer *x509.Certificate) error {
	der, err := t.lintDER(issuer)
	if err != nil {
		return fmt.Errorf("%w: assembling the lint certificate: %v", ErrLint, err)
	}
	return lint.Certificate(der)
}
