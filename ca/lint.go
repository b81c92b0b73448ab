package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// lintExceptions are the zlint lints that are not run, each because a JPKI
// rule contradicts the web-PKI rule it checks. This is the only list.
var lintExceptions = map[string]string{
	// Issuer roots. DOMAIN.md fixes their names: C=JP, O=JPKI, two OUs and
	// no CN, as J-LIS's roots have; they are not TLS CAs.
	"e_ca_common_name_missing":  "the JPKI root names have no CN (DOMAIN.md)",
	"e_subj_orgunit_in_ca_cert": "the JPKI root names carry two OUs (DOMAIN.md)",

	// Signature certificate. Its extKeyUsage is unconfirmed and absent by
	// default, and zlint takes a certificate without one for a TLS server
	// certificate; JPKI is not a web PKI.
	"e_duplicate_subject_attribs":                       "the subject has two L attributes, prefecture then municipality (DOMAIN.md)",
	"e_sub_cert_locality_name_must_not_appear":          "the subject has L without O: the holder's prefecture and municipality (DOMAIN.md)",
	"e_ext_san_other_name_present":                      "the 4 facts are otherName entries of the subjectAltName (DOMAIN.md)",
	"e_subject_common_name_not_exactly_from_san":        "the CN is the issuance ID; the subjectAltName holds only the 4 facts",
	"e_dnsname_not_valid_tld":                           "the CN is the issuance ID, not a host name; zlint reads it as one only because there is no EKU",
	"e_sub_cert_eku_missing":                            "the signature certificate's EKU is unconfirmed and absent by default (DOMAIN.md)",
	"e_sub_cert_valid_time_longer_than_39_months":       "card certificates run to the 5th or 6th birthday after issuance, up to 6 years (DOMAIN.md)",
	"e_sub_cert_valid_time_longer_than_825_days":        "card certificates run to the 5th or 6th birthday after issuance, up to 6 years (DOMAIN.md)",
	"e_tls_server_cert_valid_time_longer_than_398_days": "card certificates run to the 5th or 6th birthday after issuance; they are not TLS server certificates",
	"e_server_cert_valid_time_longer_than_200_days":     "card certificates run to the 5th or 6th birthday after issuance; they are not TLS server certificates (dated lint, from 2026-03-15)",
	"e_server_cert_valid_time_longer_than_100_days":     "card certificates run to the 5th or 6th birthday after issuance; they are not TLS server certificates (dated lint, from 2027-03-15)",
	"e_server_cert_valid_time_longer_than_47_days":      "card certificates run to the 5th or 6th birthday after issuance; they are not TLS server certificates (dated lint, from 2029-03-15)",

	// CRLs. The CA/B Forum allows only some reason codes; JPKI's practice
	// statement uses certificateHold (lost card), affiliationChanged (4
	// facts changed) and cACompromise too (DOMAIN.md, lifecycle table).
	"e_cab_crl_has_valid_reason_code": "JPKI revokes with certificateHold, affiliationChanged and cACompromise (DOMAIN.md)",
}

// fermatLint is the zlint lint that LintDER runs as fermatFactors
// (ca/fermat.go) instead of through zlint: the same check, with zlint's
// number of rounds, for a small fraction of the cost. It is a replacement,
// not an exception.
const fermatLint = "e_rsa_fermat_factorization"

// lintRegistry is zlint's global registry without lintExceptions and
// fermatLint, filtered once.
var lintRegistry = sync.OnceValues(func() (lint.Registry, error) {
	names := append(slices.Sorted(maps.Keys(lintExceptions)), fermatLint)
	return lint.GlobalRegistry().Filter(lint.FilterOptions{ExcludeNames: names})
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
// does, and runs zlint v3 without lintExceptions on it. Under an issuer, it
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
