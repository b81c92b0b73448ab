package crl

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/jpkica/jpkica/ca"
)

// sampleSize is how many entries of a large CRL go into the linted sample.
const sampleSize = 1000

// check reads the written CRL back before it is published: the streaming
// parse verifies the signature against the issuer certificate over a hash
// computed while reading, and the content must be what was asked for; the
// number must be above the last published and the scope (IDP) unchanged;
// zlint runs on the CRL itself up to LintMaxBytes, and on a sample of it
// (same header and extensions, its first entries, signed by a throwaway key)
// above, because crypto/x509 and zcrypto parse a CRL whole in memory.
func (u *Updater) check(f *os.File, scope Scope, spec Spec, info Info) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	var sample []Entry
	p, err := readBack(f, spec.Issuer, func(e Entry) error {
		sample = append(sample, e)
		return nil
	}, sampleSize)
	if err != nil {
		return "readback", fmt.Errorf("%w: %w", ErrCheck, err)
	}
	switch {
	case p.Number.Cmp(spec.Number) != 0, p.IDP != spec.IDP, p.OnlyUserCerts != (spec.IDP != ""),
		p.FreshestCRL != spec.FreshestCRL, !p.ThisUpdate.Equal(spec.ThisUpdate), !p.NextUpdate.Equal(spec.NextUpdate),
		(p.DeltaBase == nil) != (spec.DeltaBase == nil), p.DeltaBase != nil && p.DeltaBase.Cmp(spec.DeltaBase) != 0,
		p.Entries != info.Entries, p.Size != info.Size:
		return "content", fmt.Errorf("%w: the CRL read back differs from the one asked for", ErrCheck)
	}
	last, ok, err := u.dir.Last(scope)
	if err != nil {
		return "", err
	}
	if ok && p.Number.Cmp(last.Number) <= 0 {
		return "number", fmt.Errorf("%w: CRL number %v is not above the published %v", ErrCheck, p.Number, last.Number)
	}
	if ok && p.IDP != last.IDP {
		return "scope", fmt.Errorf("%w: issuingDistributionPoint %q differs from the published %q", ErrCheck, p.IDP, last.IDP)
	}
	if scope.Delta {
		base, ok, err := u.dir.Last(scope.Complete())
		if err != nil {
			return "", err
		}
		if !ok || base.IDP != p.IDP || p.DeltaBase.Cmp(base.Number) > 0 {
			return "scope", fmt.Errorf("%w: delta CRL does not match its base", ErrCheck)
		}
	}
	if p.Size <= u.cfg.LintMaxBytes {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		der, err := io.ReadAll(f)
		if err != nil {
			return "", err
		}
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return "parse", fmt.Errorf("%w: crypto/x509: %w", ErrCheck, err)
		}
		if err := rl.CheckSignatureFrom(spec.Issuer); err != nil {
			return "signature", fmt.Errorf("%w: crypto/x509: %w", ErrCheck, err)
		}
		if len(rl.RevokedCertificateEntries) != int(p.Entries) {
			return "content", fmt.Errorf("%w: crypto/x509 reads %d entries, not %d", ErrCheck, len(rl.RevokedCertificateEntries), p.Entries)
		}
		if err := ca.LintCRL(der); err != nil {
			return "lint", fmt.Errorf("%w: %w", ErrCheck, err)
		}
		return "", nil
	}
	key, err := sampleKey()
	if err != nil {
		return "", err
	}
	var buf strings.Builder
	if _, err := Encode(context.Background(), spec, key, SliceSource(sample), &buf, Options{}); err != nil {
		return "lint", fmt.Errorf("%w: building the lint sample: %w", ErrCheck, err)
	}
	if err := ca.LintCRL([]byte(buf.String())); err != nil {
		return "lint", fmt.Errorf("%w: sample of the first %d entries: %w", ErrCheck, len(sample), err)
	}
	return "", nil
}

// sampleKey signs lint samples of large CRLs; nothing it signs leaves the
// process.
var sampleKey = sync.OnceValues(func() (crypto.Signer, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})
