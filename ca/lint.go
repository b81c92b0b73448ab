package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"sync"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// lintSources are the zlint lint sources that LintDER and LintCRL run: the
// IETF standards JPKI's certificates and CRLs follow (RFC 5280 with RFC
// 3279, 5480 and 8813 for keys and signatures, and 5891 for the names it
// refers to) and zlint's community lints (encoding and structure mistakes
// that no standard names). zlint's one RFC 6960 lint is on OCSP responses,
// which are not linted here.
//
// The other sources are rulebooks of other PKIs, and are not run: the CA/B
// Forum's requirements (TLS, EV, code signing, S/MIME) and the Apple, Chrome
// and Mozilla root store policies govern the web PKI; ETSI's, the EU's
// qualified certificates; RFC 6962, Certificate Transparency. JPKI is none of
// these (DOMAIN.md): its rules contradict theirs on the subject (two L
// attributes, no O; no CN in the roots), the 4 facts as otherNames, the
// validity (up to 6 years), the signature certificate's absent extKeyUsage
// (which zlint takes for a TLS server certificate), the AKI with the
// issuer's name and serial beside its key identifier (Mozilla's
// e_mp_authority_key_identifier_correct; RFC 5280 4.2.1.1 allows it) and
// the CRL reasons (certificateHold, affiliationChanged, cACompromise).
var lintSources = lint.SourceList{
	lint.RFC3279, lint.RFC5280, lint.RFC5480, lint.RFC5891, lint.RFC8813, lint.Community,
}

// fermatLint is the zlint lint that LintDER runs as fermatFactors
// (ca/fermat.go) instead of through zlint: the same check, with zlint's
// number of rounds, for a small fraction of the cost. It is a replacement,
// not an exception.
const fermatLint = "e_rsa_fermat_factorization"

// lintRegistry is zlint's global registry, filtered once to lintSources
// without fermatLint.
var lintRegistry = sync.OnceValues(func() (lint.Registry, error) {
	return lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: lintSources, ExcludeNames: []string{fermatLint}})
})

// lintKeys are throwaway in-memory keys that sign the self-signed
// certificates Lint checks, each standing in for a template's own key of
// its type and size. They never sign anything that leaves the process.
var lintKeys = struct {
	rsa, p256, p384 func() (crypto.Signer, error)
}{
	rsa: sync.OnceValues(func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) }),
	p256: sync.OnceValues(func() (crypto.Signer, error) {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}),
	p384: sync.OnceValues(func() (crypto.Signer, error) {
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}),
}

// lintKeyFor is a throwaway key of the same type as pub.
func lintKeyFor(pub crypto.PublicKey) (crypto.Signer, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return lintKeys.rsa()
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return lintKeys.p256()
		case elliptic.P384():
			return lintKeys.p384()
		}
	}
	return nil, fmt.Errorf("%w: lint: no lint key for %T", ErrInvalid, pub)
}

// Lint checks a certificate template before the real signature, as Boulder
// does, and runs zlint v3's lints of lintSources on it. Under an issuer, it
// lints the very TBSCertificate the issuer key would sign (see buildTBS),
// with a placeholder signature. A self-signed template (issuer nil) is
// signed by a throwaway key of its own key's type and size, which then
// stands in as the subject key, so that zlint sees a certificate whose
// signature verifies with its own key, as the real root's will. The
// template's PublicKey field must hold the subject key (every template of
// this package sets it). Any error or fatal finding is an error wrapping
// ErrLint that names the lints. Safe for concurrent use.
func Lint(tmpl, issuer *x509.Certificate) error {
	if issuer == nil {
		der, err := lintSelfSigned(tmpl)
		if err != nil {
			return err
		}
		return LintDER(der)
	}
	_, err := lintedTBS(tmpl, issuer)
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

// lint runs LintDER on the TBSCertificate with a placeholder signature.
func (t tbsCertificate) lint(issuer *x509.Certificate) error {
	der, err := t.lintDER(issuer)
	if err != nil {
		return fmt.Errorf("%w: assembling the lint certificate: %v", ErrLint, err)
	}
	return LintDER(der)
}

// lintSelfSigned signs a self-signed template with a throwaway key of its
// key's type; the SKI is recomputed from the throwaway key.
func lintSelfSigned(tmpl *x509.Certificate) ([]byte, error) {
	if tmpl == nil || tmpl.PublicKey == nil {
		return nil, fmt.Errorf("%w: lint: template without a public key", ErrInvalid)
	}
	key, err := lintKeyFor(tmpl.PublicKey)
	if err != nil {
		return nil, err
	}
	self := *tmpl
	self.PublicKey = key.Public()
	if self.SubjectKeyId, err = SubjectKeyID(key.Public()); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, &self, &self, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("%w: signing the lint certificate: %v", ErrLint, err)
	}
	return der, nil
}

// lintResult turns error and fatal findings into an ErrLint.
func lintResult(rs *zlint.ResultSet) error {
	var bad []string
	for name, r := range rs.Results {
		bad = appendFinding(bad, name, r)
	}
	return lintFailure(bad)
}

// appendFinding appends an error or fatal result as "name (details)".
func appendFinding(bad []string, name string, r *lint.LintResult) []string {
	if r.Status < lint.Error {
		return bad
	}
	if r.Details != "" {
		name += " (" + r.Details + ")"
	}
	return append(bad, name)
}

// lintFailure is nil for no findings, else an ErrLint naming them.
func lintFailure(bad []string) error {
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%w: %s", ErrLint, strings.Join(bad, ", "))
}

// LintCRL runs zlint's CRL lints on a DER CRL (signed for real or with a
// throwaway key). Error and fatal findings wrap ErrLint.
func LintCRL(der []byte) error {
	crl, err := zx509.ParseRevocationList(der)
	if err != nil {
		return fmt.Errorf("%w: zcrypto cannot parse the CRL: %v", ErrLint, err)
	}
	reg, err := lintRegistry()
	if err != nil {
		return fmt.Errorf("lint registry: %w", err)
	}
	if err := lintResult(zlint.LintRevocationListEx(crl, reg)); err != nil {
		return fmt.Errorf("linting CRL: %w", err)
	}
	return nil
}
