package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Software is a KeyStore that keeps private keys as unencrypted PEM PKCS #8
// files ("PRIVATE KEY") in one directory.
//
// NOT FOR PRODUCTION. Anyone who can read the directory has the keys. It
// exists for development, demos and tests of code that needs a KeyStore but
// not a token. Use PKCS11 (an HSM, or SoftHSM2 at the very least) for
// issuer keys.
//
// The directory is created with mode 0700 and each key file with mode 0600;
// OpenSoftware refuses a directory that group or others can access. Files
// are named after the label, percent-escaped, with the suffix ".key.pem".
// Signers are safe for concurrent use.
type Software struct {
	dir  string
	rand io.Reader
}

const softwareSuffix = ".key.pem"

// OpenSoftware opens (creating if needed) a software key store in dir.
// It is NOT for production: see Software.
func OpenSoftware(dir string) (*Software, error) {
	if dir == "" {
		return nil, fmt.Errorf("opening software key store: %w: empty directory", ErrInvalidRequest)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening software key store: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("opening software key store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("opening software key store: %w: %s is not a directory", ErrInvalidRequest, dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("opening software key store: %w: %s has mode %v, want 0700", ErrInvalidRequest, dir, fi.Mode().Perm())
	}
	return &Software{dir: dir, rand: rand.Reader}, nil
}

func (s *Software) path(label string) (string, error) {
	if label == "" || label == "." || label == ".." {
		return "", fmt.Errorf("%w: key label %q", ErrInvalidRequest, label)
	}
	return filepath.Join(s.dir, url.PathEscape(label)+softwareSuffix), nil
}

// GenerateKey makes a key pair and writes the private key to its file.
func (s *Software) GenerateKey(ctx context.Context, req GenerateKeyRequest) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("generating key %q: %w", req.Label, err)
	}
	path, err := s.path(req.Label)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("generating key %q: %w", req.Label, ErrKeyExists)
	}
	var key crypto.Signer
	switch req.Algorithm {
	case RSA2048:
		key, err = rsa.GenerateKey(s.rand, 2048)
	case ECDSAP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), s.rand)
	default:
		return nil, fmt.Errorf("generating key %q: %w: algorithm %v", req.Label, ErrUnsupported, req.Algorithm)
	}
	if err != nil {
		return nil, fmt.Errorf("generating key %q: %w", req.Label, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding key %q: %w", req.Label, err)
	}
	if err := writeExclusive(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, fmt.Errorf("writing key %q: %w", req.Label, err)
	}
	return &softwareSigner{key: key}, nil
}

// writeExclusive writes data to a temporary file (mode 0600) next to path and
// hard-links it into place, so the key file appears complete or not at all
// and an existing file is never replaced.
func writeExclusive(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ErrKeyExists
		}
		return err
	}
	return nil
}

// Signer loads the key with the label from its file.
func (s *Software) Signer(ctx context.Context, label string) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loading key %q: %w", label, err)
	}
	path, err := s.path(label)
	if err != nil {
		return nil, fmt.Errorf("loading key: %w", err)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("loading key %q: %w", label, ErrKeyNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("loading key %q: %w", label, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("loading key %q: %w: no PRIVATE KEY PEM block", label, ErrInvalidRequest)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing key %q: %w", label, err)
	}
	switch k := parsed.(type) {
	case *rsa.PrivateKey:
		return &softwareSigner{key: k}, nil
	case *ecdsa.PrivateKey:
		return &softwareSigner{key: k}, nil
	default:
		return nil, fmt.Errorf("loading key %q: %w: key type %T", label, ErrUnsupported, parsed)
	}
}

// Ping checks that the directory is still there and is a directory.
func (s *Software) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pinging software key store: %w", err)
	}
	fi, err := os.Stat(s.dir)
	if err != nil {
		return fmt.Errorf("pinging software key store: %w: %w", ErrUnavailable, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("pinging software key store: %w: not a directory", ErrUnavailable)
	}
	return nil
}

// Close does nothing; it exists to satisfy KeyStore.
func (s *Software) Close() error { return nil }

// Labels lists the labels of the keys in the store, for admin tools.
func (s *Software) Labels() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing software key store: %w", err)
	}
	var labels []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), softwareSuffix)
		if !ok || strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		label, err := url.PathUnescape(name)
		if err != nil {
			continue
		}
		labels = append(labels, label)
	}
	return labels, nil
}

var _ Signer = (*softwareSigner)(nil)

// softwareSigner hides the private key behind crypto.Signer, so callers
// cannot type-assert their way to it, and applies the same option rules as
// the PKCS #11 signer.
type softwareSigner struct {
	key crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey
}

func (s *softwareSigner) Public() crypto.PublicKey { return s.key.Public() }

// SignContext is Sign with a context, so that software and PKCS #11 signers
// both implement Signer. Signing in memory does not wait; ctx is only
// checked before starting.
func (s *softwareSigner) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return s.Sign(rand.Reader, digest, opts)
}

func (s *softwareSigner) Sign(rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h, err := checkDigest(digest, opts)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	switch k := s.key.(type) {
	case *rsa.PrivateKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			salt, err := pssSaltLength(pss, h)
			if err != nil {
				return nil, fmt.Errorf("signing: %w", err)
			}
			return rsa.SignPSS(rnd, k, h, digest, &rsa.PSSOptions{SaltLength: salt, Hash: h})
		}
		return rsa.SignPKCS1v15(rnd, k, h, digest)
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rnd, k, digest)
	default:
		return nil, fmt.Errorf("signing: %w: key type %T", ErrUnsupported, s.key)
	}
}
