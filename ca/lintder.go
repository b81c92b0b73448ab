package ca

import (
	"fmt"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
)

// LintDER runs the same lints as Lint on a finished certificate, such as one
// read back from the store: an error or fatal finding wraps ErrLint.
func LintDER(der []byte) error {
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: zcrypto cannot parse the certificate: %v", ErrLint, err)
	}
	reg, err := lintRegistry()
	if err != nil {
		return fmt.Errorf("lint registry: %w", err)
	}
	return lintResult(zlint.LintCertificateEx(zc, reg))
}
