package ca

import (
	"fmt"

	zrsa "github.com/zmap/zcrypto/rsa"
	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3/lint"
)

// LintDER runs the same lints as Lint on a finished certificate, such as one
// read back from the store: an error or fatal finding wraps ErrLint, and a
// subject key that Fermat's method factors wraps ErrWeakKey too.
//
// It runs the registry's certificate lints itself rather than through
// zlint.LintCertificateEx, which sorts every lint name and builds a result
// map on each call, and it runs fermatLint as fermatFactors.
func LintDER(der []byte) error {
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: zcrypto cannot parse the certificate: %v", ErrLint, err)
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
			bad = appendFinding(bad, fermatLint, &lint.LintResult{Status: lint.Error,
				Details: fmt.Sprintf("Fermat's method factors the RSA modulus within %d rounds", fermatRounds)})
		}
	}
	if weak {
		return fmt.Errorf("%w: %w", ErrWeakKey, lintFailure(bad))
	}
	return lintFailure(bad)
}
