package lint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"sync"
)

// throwawayKeys are in-memory keys that sign the self-signed certificates
// SelfSigned checks, each standing in for a template's own key of its type
// and size. They are made once, on first use, and never sign anything that
// leaves the process.
var throwawayKeys = struct {
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

// throwawayKeyFor is a throwaway key of the same type as pub.
func throwawayKeyFor(pub crypto.PublicKey) (crypto.Signer, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return throwawayKeys.rsa()
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return throwawayKeys.p256()
		case elliptic.P384():
			return throwawayKeys.p384()
		}
	}
	return nil, fmt.Errorf("%w: no throwaway key for %T", ErrUnsupported, pub)
}

// SelfSigned lints a self-signed certificate template before its own key
// signs it. The template is signed by a throwaway key of its key's type and
// size (RSA, ECDSA P-256 or P-384), which then stands in as the subject
// key, so that zlint sees a certificate whose signature verifies with its
// own key, as the real one's will; then Certificate runs on it. The
// template's PublicKey field must hold the subject key. keyID is the
// caller's method for the subject key identifier: the SKI (and so the AKI)
// is recomputed with it from the throwaway key; its errors are returned
// wrapped. A template without a public key, or with a key of another type,
// is an error wrapping ErrUnsupported; the findings are as Certificate's.
func SelfSigned(tmpl *x509.Certificate, keyID func(crypto.PublicKey) ([]byte, error)) error {
	if tmpl == nil || tmpl.PublicKey == nil {
		return fmt.Errorf("%w: template without a public key", ErrUnsupported)
	}
	key, err := throwawayKeyFor(tmpl.PublicKey)
	if err != nil {
		return err
	}
	self := *tmpl
	self.PublicKey = key.Public()
	if self.SubjectKeyId, err = keyID(key.Public()); err != nil {
		return fmt.Errorf("subject key identifier of the throwaway key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &self, &self, key.Public(), key)
	if err != nil {
		return fmt.Errorf("%w: signing the lint certificate: %v", ErrFailed, err)
	}
	return Certificate(der)
}
