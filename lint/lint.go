package lint

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	zrsa "github.com/zmap/zcrypto/rsa"
	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	zl "github.com/zmap/zlint/v3/lint" // zlint's framework: registry, sources, results
)

var (
	// ErrFailed: the certificate or CRL failed the lints, or could not be
	// parsed to run them. The error names the lints that failed.
	ErrFailed = errors.New("failed lint")
	// ErrWeakKey: the certificate's subject key failed a key check of the
	// lint (Fermat's factorisation, zlint's e_rsa_fermat_factorization):
	// the key, not the profile, is at fault, and whoever sent it must make
	// a new one. It comes wrapped together with ErrFailed.
	ErrWeakKey = errors.New("weak subject key")
	// ErrUnsupported: SelfSigned cannot lint the template: it has no public
	// key, or a key of a type this package has no throwaway key for.
	ErrUnsupported = errors.New("cannot be linted")
)

// lintSources are the zlint lint sources that Certificate and CRL run: the
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
var lintSources = zl.SourceList{
	zl.RFC3279, zl.RFC5280, zl.RFC5480, zl.RFC5891, zl.RFC8813, zl.Community,
}

// fermatLint is the zlint lint that Certificate runs as fermatFactors
// (fermat.go) instead of through zlint: the same check, with zlint's
// number of rounds, for a small fraction of the cost. It is a replacement,
// not an exception.
const fermatLint = "e_rsa_fermat_factorization"

// lintRegistry is zlint's global registry, filtered once to lintSources
// without fermatLint.
var lintRegistry = sync.OnceValues(func() (zl.Registry, error) {
	return zl.GlobalRegistry().Filter(zl.FilterOptions{IncludeSources: lintSources, ExcludeNames: []string{fermatLint}})
})

// Certificate runs the lints of lintSources on a DER certificate: a
// TBSCertificate with a placeholder signature before the issuer key signs
// it, or a finished certificate such as one read back from the store. The
// signature is not checked. An error or fatal finding wraps ErrFailed, and
// a subject key that Fermat's method factors wraps ErrWeakKey too.
//
// It runs the registry's certificate lints itself rather than through
// zlint.LintCertificateEx, which sorts every lint name and builds a result
// map on each call, and it runs fermatLint as fermatFactors.
func Certificate(der []byte) error {
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: zcrypto cannot parse the certificate: %v", ErrFailed, err)
	}
	reg, err := lintRegistry()
	if err != nil {
		return fmt.Errorf("lint registry: %w", err)
	}
	var bad []string
	cfg := reg.GetConfiguration()
	for _, l := range reg.CertificateLints().Lints() {
		bad = appendFinding(bad, l.Name, l.Execute(zc, cfg))
	}
	weak := false
	if k, ok := zc.PublicKey.(*zrsa.PublicKey); ok && zc.PublicKeyAlgorithm == zx509.RSA {
		// The factors are the private key: they stay out of the error.
		if _, _, weak = fermatFactors(k.N, fermatRounds); weak {
			bad = appendFinding(bad, fermatLint, &zl.LintResult{Status: zl.Error,
				Details: fmt.Sprintf("Fermat's method factors the RSA modulus within %d rounds", fermatRounds)})
		}
	}
	if weak {
		return weakKeyError{fmt.Errorf("%w: %w", ErrWeakKey, failure(bad))}
	}
	return failure(bad)
}

// weakKeyError is Certificate's error for a subject key that Fermat's
// method factors. It wraps ErrWeakKey and ErrFailed, and says so through
// WeakKey, which is how package ca, which does not import this package,
// tells a weak key from other findings.
type weakKeyError struct{ err error }

func (e weakKeyError) Error() string { return e.err.Error() }
func (e weakKeyError) Unwrap() error { return e.err }

// WeakKey reports true: the subject key, not the profile, is at fault.
func (weakKeyError) WeakKey() bool { return true }

// Linter runs Certificate and SelfSigned; it is package ca's Linter, which
// the Authority and the key ceremony lint with before an issuer key signs.
// The zero value is ready to use, and safe for concurrent use.
type Linter struct{}

// Certificate is the package's Certificate.
func (Linter) Certificate(der []byte) error { return Certificate(der) }

// SelfSigned is the package's SelfSigned.
func (Linter) SelfSigned(tmpl *x509.Certificate, keyID func(crypto.PublicKey) ([]byte, error)) error {
	return SelfSigned(tmpl, keyID)
}

// CRL runs zlint's CRL lints of lintSources on a DER CRL, signed for real
// or with a throwaway key; the signature is not checked. An error or fatal
// finding wraps ErrFailed.
func CRL(der []byte) error {
	crl, err := zx509.ParseRevocationList(der)
	if err != nil {
		return fmt.Errorf("%w: zcrypto cannot parse the CRL: %v", ErrFailed, err)
	}
	reg, err := lintRegistry()
	if err != nil {
		return fmt.Errorf("lint registry: %w", err)
	}
	if err := results(zlint.LintRevocationListEx(crl, reg)); err != nil {
		return fmt.Errorf("linting CRL: %w", err)
	}
	return nil
}

// results turns error and fatal findings into an ErrFailed.
func results(rs *zlint.ResultSet) error {
	var bad []string
	for name, r := range rs.Results {
		bad = appendFinding(bad, name, r)
	}
	return failure(bad)
}

// appendFinding appends an error or fatal result as "name (details)".
func appendFinding(bad []string, name string, r *zl.LintResult) []string {
	if r.Status < zl.Error {
		return bad
	}
	if r.Details != "" {
		name += " (" + r.Details + ")"
	}
	return append(bad, name)
}

// failure is nil for no findings, else an ErrFailed naming them.
func failure(bad []string) error {
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%w: %s", ErrFailed, strings.Join(bad, ", "))
}
