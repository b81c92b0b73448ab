package ocsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// IssuerConfig is one issuer generation the responder answers for, with the
// key that signs its responses.
type IssuerConfig struct {
	// ID is the issuer's ID in the store (ca.Issuer.ID, "signature-g1").
	ID string
	// Cert is the issuer's certificate.
	Cert *x509.Certificate
	// Signer signs the responses: the delegated responder's key, or the
	// issuer's own key.
	Signer crypto.Signer
	// ResponderCert is the delegated responder certificate whose key is
	// Signer (id-kp-OCSPSigning, RFC 6960 4.2.2.2); it is included in every
	// response. Nil when the issuer signs its own responses.
	ResponderCert *x509.Certificate
	// Replaced are earlier responder certificates of the issuer, still
	// valid: the responses they signed (kept in the store) are served, with
	// the certificate that signed them, until they are re-signed.
	Replaced []*x509.Certificate
}

// contextSigner is what PKCS #11 signers add to crypto.Signer.
type contextSigner interface {
	SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// authority is one served issuer, with everything its responses need
// pre-encoded.
type authority struct {
	idx      uint8
	id       string
	cert     *x509.Certificate // the issuer's
	ski      []byte            // the issuer's subject key identifier (the store's AKI)
	nameHash [2][]byte         // by hashIndex
	keyHash  [2][]byte
	// keys holds the issuer's responder keys, newest first: the first signs,
	// the others' responses are still served (with their own certificates)
	// until they are re-signed. SetResponder adds one.
	keys atomic.Pointer[[]*responderKey]
}

// responderKey is a key that signs an issuer's responses (a delegated
// responder's, or the issuer's own), with what its responses carry
// pre-encoded.
type responderKey struct {
	responder []byte // encoded ResponderID byKey
	sigAlg    []byte // encoded AlgorithmIdentifier
	certs     []byte // encoded [0] EXPLICIT SEQUENCE OF Certificate, or nil
	signer    crypto.Signer
	ctxSigner contextSigner
	digest    crypto.Hash
	notAfter  time.Time // of the responder certificate (or issuer)
	desc      string
	// signed counts signatures since the last audit entry.
	signed atomic.Uint64
}

// key is the responder key that signs now.
func (a *authority) key() *responderKey { return (*a.keys.Load())[0] }

// keyOf is the responder key that signed body (a response's signed part,
// which starts with tbsResponseData and its ResponderID), or nil if it is
// none of a's.
func (a *authority) keyOf(body []byte) *responderKey {
	keys := *a.keys.Load()
	if len(keys) == 1 {
		return keys[0]
	}
	// The ResponderID follows the tbsResponseData SEQUENCE's header (2 to
	// 6 octets, DER, long form past 127 octets) and is 24 octets for every
	// responder here (byKey); compare it in place.
	if len(body) < 2 || body[0] != 0x30 {
		return nil
	}
	off := 2
	if body[1]&0x80 != 0 {
		off += int(body[1] & 0x7f)
	}
	if off > 6 || len(body) < off {
		return nil
	}
	for _, k := range keys {
		if bytes.HasPrefix(body[off:], k.responder) {
			return k
		}
	}
	return nil
}

// hashIndex maps the two CertID hashes to 0 and 1.
func hashIndex(h crypto.Hash) int {
	if h == crypto.SHA256 {
		return 1
	}
	return 0
}

var hashes = [2]crypto.Hash{crypto.SHA1, crypto.SHA256}

func sum(h crypto.Hash, b []byte) []byte {
	if h == crypto.SHA256 {
		s := sha256.Sum256(b)
		return s[:]
	}
	s := sha1.Sum(b)
	return s[:]
}

// subjectKeyBits is the subjectPublicKey BIT STRING content (without the
// unused-bits octet) of a certificate, which key hashes are computed over.
func subjectKeyBits(cert *x509.Certificate) ([]byte, error) {
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, fmt.Errorf("%w: subjectPublicKeyInfo: %v", ErrInvalid, err)
	}
	return spki.PublicKey.RightAlign(), nil
}

func newAuthority(idx int, c IssuerConfig) (*authority, error) {
	if c.Cert == nil || c.Signer == nil || c.ID == "" {
		return nil, fmt.Errorf("%w: issuer %q needs an ID, a certificate and a signer", ErrInvalid, c.ID)
	}
	key, err := subjectKeyBits(c.Cert)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", c.ID, err)
	}
	a := &authority{idx: uint8(idx), id: c.ID, cert: c.Cert, ski: c.Cert.SubjectKeyId}
	for i, h := range hashes {
		a.nameHash[i] = sum(h, c.Cert.RawSubject)
		a.keyHash[i] = sum(h, key)
	}
	k, err := newResponderKey(c.ID, c.Cert, c.ResponderCert, c.Signer)
	if err != nil {
		return nil, err
	}
	keys := []*responderKey{k}
	for _, rc := range c.Replaced {
		old, err := newResponderKey(c.ID, c.Cert, rc, nil)
		if err != nil {
			return nil, err
		}
		keys = append(keys, old)
	}
	a.keys.Store(&keys)
	return a, nil
}

// newResponderKey checks that signer and its certificate (responderCert, or
// the issuer's own when nil) may sign the issuer's responses, and
// pre-encodes what they carry. A replaced responder, whose responses are
// served but which signs no more, has a certificate and no signer.
func newResponderKey(issuerID string, issuer, responderCert *x509.Certificate, signer crypto.Signer) (*responderKey, error) {
	if signer == nil && responderCert == nil {
		return nil, fmt.Errorf("%w: issuer %s: no signer", ErrInvalid, issuerID)
	}
	k := &responderKey{notAfter: issuer.NotAfter, desc: "issuer " + issuerID}
	signerCert := issuer
	if responderCert != nil {
		signerCert = responderCert
		k.notAfter = responderCert.NotAfter
		k.desc = "delegated responder " + responderCert.SerialNumber.Text(16)
		if !bytes.Equal(responderCert.RawIssuer, issuer.RawSubject) {
			return nil, fmt.Errorf("%w: responder certificate of %s is not issued by it", ErrInvalid, issuerID)
		}
		if err := responderCert.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("%w: responder certificate of %s: %v", ErrInvalid, issuerID, err)
		}
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(responderCert.Raw) })
		})
		var err error
		if k.certs, err = b.Bytes(); err != nil {
			return nil, err
		}
	}
	pub := signerCert.PublicKey
	if signer != nil {
		if !samePublicKey(pub, signer.Public()) {
			return nil, fmt.Errorf("%w: the signer of %s does not match its certificate", ErrInvalid, issuerID)
		}
		k.signer = signer
		k.ctxSigner, _ = signer.(contextSigner)
	}
	signerKey, err := subjectKeyBits(signerCert)
	if err != nil {
		return nil, err
	}
	// ResponderID ::= CHOICE { byName [1], byKey [2] KeyHash } (SHA-1 of the key).
	kh := sha1.Sum(signerKey)
	k.responder = append([]byte{0xa2, 0x16, 0x04, 0x14}, kh[:]...)
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		k.digest = crypto.SHA256 // sha256WithRSAEncryption, NULL parameters
		k.sigAlg = []byte{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00}
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			k.digest = crypto.SHA256 // ecdsa-with-SHA256
			k.sigAlg = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}
		case elliptic.P384():
			k.digest = crypto.SHA384 // ecdsa-with-SHA384
			k.sigAlg = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}
		default:
			return nil, fmt.Errorf("%w: responder key curve of %s", ErrInvalid, issuerID)
		}
	default:
		return nil, fmt.Errorf("%w: responder key type %T of %s", ErrInvalid, pub, issuerID)
	}
	return k, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// sign appends the signed part of a BasicOCSPResponse (tbsResponseData,
// signatureAlgorithm, signature; no certs) for singles to dst, signed by
// the current responder key, which it returns.
func (a *authority) sign(ctx context.Context, rand io.Reader, dst []byte, producedAt time.Time, singles []single, nonce []byte) ([]byte, *responderKey, error) {
	k := a.key()
	start := len(dst)
	dst, err := appendTBS(dst, k.responder, producedAt, singles, nonce)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding ResponseData: %w", err)
	}
	var digest []byte
	if k.digest == crypto.SHA256 {
		d := sha256.Sum256(dst[start:])
		digest = d[:]
	} else {
		h := k.digest.New()
		h.Write(dst[start:])
		digest = h.Sum(nil)
	}
	var sig []byte
	if k.ctxSigner != nil {
		sig, err = k.ctxSigner.SignContext(ctx, digest, k.digest)
	} else {
		sig, err = k.signer.Sign(rand, digest, k.digest)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("signing OCSP response for %s: %w", a.id, err)
	}
	k.signed.Add(1)
	return appendSigned(dst, k.sigAlg, sig), k, nil
}
