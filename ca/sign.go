package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// A certificate is built once as its TBSCertificate, then linted with a
// placeholder signature (lintDER) and signed by the issuer key (sign): the
// bytes zlint checks are the bytes the issuer signs. buildTBS has
// x509.CreateCertificate encode the template under the issuer and catches
// the TBSCertificate where CreateCertificate hands it to the signer
// (crypto.MessageSigner's SignMessage), before anything is signed.
// TestSignMatchesCreateCertificate holds the result byte for byte to what
// x509.CreateCertificate makes with the issuer key itself.

// tbsCertificate is a certificate's to-be-signed part under one issuer.
type tbsCertificate struct {
	der   []byte                  // the TBSCertificate
	alg   x509.SignatureAlgorithm // the issuer's signature algorithm
	algID []byte                  // its AlgorithmIdentifier, as x509 encodes it
}

// sigAlgIDs are the AlgorithmIdentifiers x509.CreateCertificate writes for
// the issuer key types jpkica has (see sigAlgFor): sha256WithRSAEncryption
// with NULL parameters (RFC 4055), ecdsa-with-SHA256 and -SHA384 without
// (RFC 5758).
var sigAlgIDs = map[x509.SignatureAlgorithm][]byte{
	x509.SHA256WithRSA:   {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00},
	x509.ECDSAWithSHA256: {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02},
	x509.ECDSAWithSHA384: {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03},
}

// buildTBS returns the TBSCertificate of tmpl issued by issuer, as
// x509.CreateCertificate would sign it with the issuer's key. The template's
// PublicKey is the subject key; its SignatureAlgorithm, if set, must be the
// issuer's.
func buildTBS(tmpl, issuer *x509.Certificate) (tbsCertificate, error) {
	if tmpl == nil || tmpl.PublicKey == nil || issuer == nil {
		return tbsCertificate{}, fmt.Errorf("%w: a template with a public key and an issuer are required", ErrInvalid)
	}
	alg := sigAlgFor(issuer.PublicKey)
	if tmpl.SignatureAlgorithm != x509.UnknownSignatureAlgorithm && tmpl.SignatureAlgorithm != alg {
		return tbsCertificate{}, fmt.Errorf("%w: template signature algorithm %v, issuer key signs %v", ErrInvalid, tmpl.SignatureAlgorithm, alg)
	}
	algID, ok := sigAlgIDs[alg]
	if !ok {
		return tbsCertificate{}, fmt.Errorf("%w: issuer key type %T", ErrInvalid, issuer.PublicKey)
	}
	t := *tmpl
	t.SignatureAlgorithm = x509.UnknownSignatureAlgorithm
	c := &tbsCatcher{pub: issuer.PublicKey}
	_, err := x509.CreateCertificate(rand.Reader, &t, issuer, tmpl.PublicKey, c)
	if !errors.Is(err, errTBSCaught) {
		if err == nil {
			err = errors.New("signed without asking the signer")
		}
		return tbsCertificate{}, fmt.Errorf("%w: building the certificate: %v", ErrInvalid, err)
	}
	return tbsCertificate{der: c.tbs, alg: alg, algID: algID}, nil
}

// errTBSCaught stops x509.CreateCertificate once tbsCatcher has the
// TBSCertificate.
var errTBSCaught = errors.New("TBSCertificate caught before signing")

// tbsCatcher stands in for the issuer key in x509.CreateCertificate: it
// keeps the TBSCertificate handed to SignMessage and signs nothing.
type tbsCatcher struct {
	pub crypto.PublicKey
	tbs []byte
}

func (c *tbsCatcher) Public() crypto.PublicKey { return c.pub }

func (c *tbsCatcher) SignMessage(_ io.Reader, msg []byte, _ crypto.SignerOpts) ([]byte, error) {
	c.tbs = slices.Clone(msg)
	return nil, errTBSCaught
}

// Sign is never called: crypto.SignMessage prefers SignMessage.
func (c *tbsCatcher) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errTBSCaught
}

// assemble is the Certificate SEQUENCE of the TBSCertificate and a signature.
func (t tbsCertificate) assemble(sig []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(t.der)
		b.AddBytes(t.algID)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

// lintDER is the certificate with a placeholder signature of the issuer
// signature's size, for linters: zlint reads the signature algorithm, not
// the signature.
func (t tbsCertificate) lintDER(issuer *x509.Certificate) ([]byte, error) {
	size := 72 // an ECDSA P-256 signature, DER
	if k, ok := issuer.PublicKey.(*rsa.PublicKey); ok {
		size = k.Size()
	} else if t.alg == x509.ECDSAWithSHA384 {
		size = 104
	}
	return t.assemble(make([]byte, size))
}

// sign signs the TBSCertificate with the issuer key and returns the
// certificate. The signature is checked with the issuer certificate's key
// before it is used, as x509.CreateCertificate does: a signer that faulted
// (a known way for RSA-CRT keys to leak) or holds another key fails here.
func (t tbsCertificate) sign(random io.Reader, signer crypto.Signer, issuer *x509.Certificate) ([]byte, error) {
	h := crypto.SHA256
	if t.alg == x509.ECDSAWithSHA384 {
		h = crypto.SHA384
	}
	digest := h.New()
	digest.Write(t.der)
	sig, err := signer.Sign(random, digest.Sum(nil), h)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if err := issuer.CheckSignature(t.alg, t.der, sig); err != nil {
		return nil, fmt.Errorf("the issuer key's signature does not verify: %w", err)
	}
	return t.assemble(sig)
}

// SignCertificate issues tmpl under issuer with the issuer's signer, linted
// by l before the signature as Lint does: the issuer key signs the very
// TBSCertificate the linter passed, and its signature is checked before the
// certificate is returned. A self-signed template (issuer nil) is linted
// with a throwaway key and then self-signed by signer. Errors wrap ErrLint
// for lint findings and ErrInvalid for a template x509 refuses.
func SignCertificate(random io.Reader, l Linter, tmpl, issuer *x509.Certificate, signer crypto.Signer) ([]byte, error) {
	if issuer == nil {
		if err := Lint(l, tmpl, nil); err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificate(random, tmpl, tmpl, signer.Public(), signer)
		if err != nil {
			return nil, fmt.Errorf("self-signing: %w", err)
		}
		return der, nil
	}
	tbs, err := lintedTBS(l, tmpl, issuer)
	if err != nil {
		return nil, err
	}
	return tbs.sign(random, signer, issuer)
}
