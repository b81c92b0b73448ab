package hsm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
)

// Algorithm of a key to generate.
type Algorithm int

// The key algorithms a KeyStore can generate.
const (
	RSA2048 Algorithm = iota + 1
	ECDSAP256
)

// String names the algorithm.
func (a Algorithm) String() string {
	switch a {
	case RSA2048:
		return "RSA-2048"
	case ECDSAP256:
		return "ECDSA-P256"
	default:
		return fmt.Sprintf("Algorithm(%d)", int(a))
	}
}

// GenerateKeyRequest names a key pair to create.
type GenerateKeyRequest struct {
	// Label names the key in the store (CKA_LABEL in a token).
	Label string
	// Algorithm is the kind of key to make.
	Algorithm Algorithm
}

// KeyStore is implemented by *PKCS11 and *Software.
type KeyStore interface {
	// GenerateKey makes a new key pair in the store; ErrKeyExists if the label is taken.
	GenerateKey(ctx context.Context, req GenerateKeyRequest) (crypto.Signer, error)
	// Signer finds an existing key by label; ErrKeyNotFound if none.
	Signer(ctx context.Context, label string) (crypto.Signer, error)
	// Ping checks the store is usable (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

var (
	_ KeyStore = (*PKCS11)(nil)
	_ KeyStore = (*Software)(nil)
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrKeyNotFound: no key has the label.
	ErrKeyNotFound = errors.New("hsm: key not found")
	// ErrKeyExists: a key with the label is already in the store.
	ErrKeyExists = errors.New("hsm: key already exists")
	// ErrUnavailable: the store cannot be used right now (token absent,
	// module being re-initialised, no session free before the deadline,
	// store closed). Retrying later may succeed, unless the error also
	// wraps ErrLogin.
	ErrUnavailable = errors.New("hsm: key store unavailable")
	// ErrLogin: the token refused the PIN (incorrect, locked, expired).
	// The error never contains the PIN. A PKCS11 store that gets this while
	// recovering stops retrying, so that it cannot lock the token, and
	// every call then fails with ErrUnavailable and ErrLogin together: no
	// retry can succeed until an operator has fixed the PIN or the token
	// and restarted the process (Stats.LoginRefused says so meanwhile).
	ErrLogin = errors.New("hsm: token login failed")
	// ErrUnsupported: an algorithm, hash or signer option this package
	// does not implement.
	ErrUnsupported = errors.New("hsm: unsupported")
	// ErrInvalidRequest: a malformed argument (empty label, wrong digest
	// length, bad configuration).
	ErrInvalidRequest = errors.New("hsm: invalid request")
)

// digestInfoPrefixes are the DER DigestInfo headers that PKCS #1 v1.5
// (RFC 8017 section 9.2, note 1) puts in front of the digest. The token's
// CKM_RSA_PKCS mechanism pads whatever we give it, so we build DigestInfo.
var digestInfoPrefixes = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// checkDigest checks that opts names a supported hash and digest has its length.
func checkDigest(digest []byte, opts crypto.SignerOpts) (crypto.Hash, error) {
	if opts == nil {
		return 0, fmt.Errorf("%w: nil signer options", ErrInvalidRequest)
	}
	h := opts.HashFunc()
	if _, ok := digestInfoPrefixes[h]; !ok {
		return 0, fmt.Errorf("%w: hash %v", ErrUnsupported, h)
	}
	if len(digest) != h.Size() {
		return 0, fmt.Errorf("%w: digest is %d bytes, %v needs %d", ErrInvalidRequest, len(digest), h, h.Size())
	}
	return h, nil
}

// pssSaltLength resolves the salt length of opts for a PSS signature with
// hash h. Both rsa.PSSSaltLengthEqualsHash and rsa.PSSSaltLengthAuto give the
// hash length (RFC 8017 section 9.1 recommends it, and verifiers using Auto
// accept it); a positive value is used as given.
func pssSaltLength(opts *rsa.PSSOptions, h crypto.Hash) (int, error) {
	switch {
	case opts.SaltLength == rsa.PSSSaltLengthEqualsHash || opts.SaltLength == rsa.PSSSaltLengthAuto:
		return h.Size(), nil
	case opts.SaltLength > 0:
		return opts.SaltLength, nil
	default:
		return 0, fmt.Errorf("%w: PSS salt length %d", ErrInvalidRequest, opts.SaltLength)
	}
}
