package crl

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/jpkica/jpkica/ca"
)

// ErrCheck: a CRL failed a check before publication; it was not published.
// The error is a *CheckError, which names the check.
var ErrCheck = errors.New("CRL failed a pre-publication check")

// Check names a pre-publication check. Its value is the check label of
// jpkica_crl_check_failures_total and of the log line of a refused CRL.
type Check string

// The checks, in the order they run.
const (
	// CheckReadBack: the streaming parse of the written file, which verifies
	// the signature over the TBSCertList as it reads.
	CheckReadBack Check = "readback"
	// CheckContent: the CRL read back is the one asked for.
	CheckContent Check = "content"
	// CheckNumber: the CRL number is above the last published one.
	CheckNumber Check = "number"
	// CheckScope: the issuingDistributionPoint is the published one's, and a
	// delta CRL matches its base.
	CheckScope Check = "scope"
	// CheckParse: crypto/x509 parses the CRL.
	CheckParse Check = "parse"
	// CheckSignature: crypto/x509 verifies its signature.
	CheckSignature Check = "signature"
	// CheckLint: zlint passes the CRL, or a sample of it.
	CheckLint Check = "lint"
)

// CheckError is a CRL refused before publication: which CRL, the check it
// failed and why. errors.Is matches it to ErrCheck; errors.As finds it in
// the error of Generate and GenerateIssuer.
type CheckError struct {
	Scope Scope
	Check Check
	Err   error
}

func (e *CheckError) Error() string { return fmt.Sprintf("%v (%s): %v", ErrCheck, e.Check, e.Err) }

// Unwrap gives the cause, e.g. ErrMalformed for a CRL that does not read back.
func (e *CheckError) Unwrap() error { return e.Err }

// Is matches ErrCheck.
func (e *CheckError) Is(target error) bool { return target == ErrCheck }

// sampleSize is how many entries of a large CRL go into the linted sample.
const sampleSize = 1000

// check reads the written CRL back before it is published: the streaming
// parse verifies the signature against the issuer certificate over a hash
// computed while reading, and the content must be what was asked for; the
// number must be above the last published and the scope (IDP) unchanged;
// zlint runs on the CRL itself up to LintMaxBytes, and on a sample of it
// (same header and extensions, its first entries, signed by a throwaway key)
// above, because crypto/x509 and zcrypto parse a CRL whole in memory.
func (u *Updater) check(f *os.File, scope Scope, spec Spec, info Info) error {
	refuse := func(c Check, err error) error { return &CheckError{Scope: scope, Check: c, Err: err} }
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	var sample []Entry
	p, err := readBack(f, spec.Issuer, func(e Entry) error {
		sample = append(sample, e)
		return nil
	}, sampleSize)
	if err != nil {
		return refuse(CheckReadBack, err)
	}
	switch {
	case p.Number.Cmp(spec.Number) != 0, p.IDP != spec.IDP, p.OnlyUserCerts != (spec.IDP != ""),
		p.FreshestCRL != spec.FreshestCRL, !p.ThisUpdate.Equal(spec.ThisUpdate), !p.NextUpdate.Equal(spec.NextUpdate),
		(p.DeltaBase == nil) != (spec.DeltaBase == nil), p.DeltaBase != nil && p.DeltaBase.Cmp(spec.DeltaBase) != 0,
		p.Entries != info.Entries, p.Size != info.Size:
		return refuse(CheckContent, errors.New("the CRL read back differs from the one asked for"))
	}
	last, ok, err := u.dir.Last(scope)
	if err != nil {
		return err
	}
	if ok && p.Number.Cmp(last.Number) <= 0 {
		return refuse(CheckNumber, fmt.Errorf("CRL number %v is not above the published %v", p.Number, last.Number))
	}
	if ok && p.IDP != last.IDP {
		return refuse(CheckScope, fmt.Errorf("issuingDistributionPoint %q differs from the published %q", p.IDP, last.IDP))
	}
	if scope.Delta {
		base, ok, err := u.dir.Last(scope.Complete())
		if err != nil {
			return err
		}
		if !ok || base.IDP != p.IDP || p.DeltaBase.Cmp(base.Number) > 0 {
			return refuse(CheckScope, errors.New("delta CRL does not match its base"))
		}
	}
	if p.Size <= u.cfg.LintMaxBytes {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		der, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return refuse(CheckParse, fmt.Errorf("crypto/x509: %w", err))
		}
		if err := rl.CheckSignatureFrom(spec.Issuer); err != nil {
			return refuse(CheckSignature, fmt.Errorf("crypto/x509: %w", err))
		}
		if len(rl.RevokedCertificateEntries) != int(p.Entries) {
			return refuse(CheckContent, fmt.Errorf("crypto/x509 reads %d entries, not %d", len(rl.RevokedCertificateEntries), p.Entries))
		}
		if err := ca.LintCRL(der); err != nil {
			return refuse(CheckLint, err)
		}
		return nil
	}
	key, err := sampleKey()
	if err != nil {
		return err
	}
	var buf strings.Builder
	if _, err := Encode(context.Background(), spec, key, SliceSource(sample), &buf, Options{}); err != nil {
		return refuse(CheckLint, fmt.Errorf("building the lint sample: %w", err))
	}
	if err := ca.LintCRL([]byte(buf.String())); err != nil {
		return refuse(CheckLint, fmt.Errorf("sample of the first %d entries: %w", len(sample), err))
	}
	return nil
}

// sampleKey signs lint samples of large CRLs; nothing it signs leaves the
// process.
var sampleKey = sync.OnceValues(func() (crypto.Signer, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})
