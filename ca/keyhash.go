package ca

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
)

// KeyHash is the SHA-256 of a public key's DER SubjectPublicKeyInfo, as the
// certificate carries it: how the store finds every certificate of a key.
func KeyHash(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %w", ErrInvalid, err)
	}
	h := sha256.Sum256(der)
	return h[:], nil
}
