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
	"math/big"
	"os"
	"strings"
	"sync"

	"github.com/jpkica/jpkica/lint"
)

// ErrCheck: a CRL failed a check before publication; it was not published.
// The error is a *CheckError, which names the check.
var ErrCheck = errors.New("CRL failed a pre-publication check")

// Check names a pre-publication check. Its value is the check label of
// jpkica_crl_check_failures_total and of the log line of a refused CRL.
type Check string

// The checks, in the order they first run.
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
	p, sample, err := checkReadBack(f, scope, spec, info)
	if err != nil {
		return err
	}
	if err := u.checkSuccession(scope, p); err != nil {
		return err
	}
	if p.Size <= u.cfg.LintMaxBytes {
		return checkWhole(f, scope, spec, p.Entries)
	}
	return checkSample(scope, spec, sample)
}

func refuse(scope Scope, c Check, err error) error {
	return &CheckError{Scope: scope, Check: c, Err: err}
}

// checkReadBack parses the file with the streaming parser, which verifies
// the signature, and compares what it reads with what was asked for. It
// returns the first entries, for the lint sample.
func checkReadBack(f *os.File, scope Scope, spec Spec, info Info) (Parsed, []Entry, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Parsed{}, nil, err
	}
	var sample []Entry
	p, err := readBack(f, spec.Issuer, func(e Entry) error {
		sample = append(sample, e)
		return nil
	}, sampleSize)
	if err != nil {
		return Parsed{}, nil, refuse(scope, CheckReadBack, err)
	}
	switch {
	case p.Number.Cmp(spec.Number) != 0, p.IDP != spec.IDP, p.OnlyUserCerts != (spec.IDP != ""),
		p.FreshestCRL != spec.FreshestCRL, !p.ThisUpdate.Equal(spec.ThisUpdate), !p.NextUpdate.Equal(spec.NextUpdate),
		(p.DeltaBase == nil) != (spec.DeltaBase == nil), p.DeltaBase != nil && p.DeltaBase.Cmp(spec.DeltaBase) != 0,
		p.Entries != info.Entries, p.Size != info.Size:
		return Parsed{}, nil, refuse(scope, CheckContent, errors.New("the CRL read back differs from the one asked for"))
	}
	return p, sample, nil
}

// checkSuccession: the CRL may follow the one last published in its scope,
// and a delta CRL fits the complete CRL it is based on.
func (u *Updater) checkSuccession(scope Scope, p Parsed) error {
	if err := checkFollows(u.dir, scope, p.Number, p.IDP); err != nil {
		return err
	}
	if scope.Delta {
		base, ok, err := u.dir.Last(scope.Complete())
		if err != nil {
			return err
		}
		if !ok || base.IDP != p.IDP || p.DeltaBase.Cmp(base.Number) > 0 {
			return refuse(scope, CheckScope, errors.New("delta CRL does not match its base"))
		}
	}
	return nil
}

// checkFollows: a CRL numbered number with issuingDistributionPoint idp may
// follow the one last published in d for scope, if any. It runs before
// publication and again under the directory lock, where another process may
// have published in between.
func checkFollows(d *Dir, scope Scope, number *big.Int, idp string) error {
	last, ok, err := d.Last(scope)
	if err != nil || !ok {
		return err
	}
	if number.Cmp(last.Number) <= 0 {
		return refuse(scope, CheckNumber, fmt.Errorf("CRL number %v is not above the published %v", number, last.Number))
	}
	if idp != last.IDP {
		return refuse(scope, CheckScope, fmt.Errorf("issuingDistributionPoint %q differs from the published %q", idp, last.IDP))
	}
	return nil
}

// checkWhole parses the whole CRL with crypto/x509, verifies its signature
// and entry count there, and lints it.
func checkWhole(f *os.File, scope Scope, spec Spec, entries int64) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	der, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return refuse(scope, CheckParse, fmt.Errorf("crypto/x509: %w", err))
	}
	if err := rl.CheckSignatureFrom(spec.Issuer); err != nil {
		return refuse(scope, CheckSignature, fmt.Errorf("crypto/x509: %w", err))
	}
	if len(rl.RevokedCertificateEntries) != int(entries) {
		return refuse(scope, CheckContent, fmt.Errorf("crypto/x509 reads %d entries, not %d", len(rl.RevokedCertificateEntries), entries))
	}
	if err := lint.CRL(der); err != nil {
		return refuse(scope, CheckLint, err)
	}
	return nil
}

// checkSample lints a CRL too large to parse whole: the same header and
// extensions with its first entries, signed by a throwaway key.
func checkSample(scope Scope, spec Spec, sample []Entry) error {
	key, err := sampleKey()
	if err != nil {
		return err
	}
	var buf strings.Builder
	if _, err := Encode(context.Background(), spec, key, SliceSource(sample), &buf, Options{}); err != nil {
		return refuse(scope, CheckLint, fmt.Errorf("building the lint sample: %w", err))
	}
	if err := lint.CRL([]byte(buf.String())); err != nil {
		return refuse(scope, CheckLint, fmt.Errorf("sample of the first %d entries: %w", len(sample), err))
	}
	return nil
}

// sampleKey signs lint samples of large CRLs; nothing it signs leaves the
// process.
var sampleKey = sync.OnceValues(func() (crypto.Signer, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})
