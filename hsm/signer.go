package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// keyHandle is a private key's object handle, valid for one module generation.
type keyHandle struct {
	gen uint64
	h   pkcs11.ObjectHandle
}

// p11Signer is a key on the token behind crypto.Signer. It holds no session:
// each signature borrows one from the store's pool, so it is safe for
// concurrent use.
type p11Signer struct {
	store  *PKCS11
	label  string
	id     []byte
	pub    crypto.PublicKey
	handle atomic.Pointer[keyHandle] // nil or stale after re-initialisation: find again
}

// Signer is what both stores hand out (type-assert the crypto.Signer from
// GenerateKey or Signer): a crypto.Signer plus SignContext. For the PKCS #11
// store, Sign waits for a session up to AcquireTimeout and SignContext no
// longer than ctx allows; the software store only checks ctx first.
type Signer interface {
	crypto.Signer
	SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

var _ Signer = (*p11Signer)(nil)

func newP11Signer(k *PKCS11, label string, id []byte, pub crypto.PublicKey) *p11Signer {
	return &p11Signer{store: k, label: label, id: id, pub: pub}
}

// Public returns the public key read from the token when the signer was made.
func (s *p11Signer) Public() crypto.PublicKey { return s.pub }

// Sign signs digest, waiting up to the store's AcquireTimeout for a session.
// rand is ignored: the token makes its own randomness.
func (s *p11Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.SignContext(context.Background(), digest, opts)
}

// SignContext signs digest, waiting for a session (or a module
// re-initialisation) no longer than ctx allows; without a deadline on ctx,
// the store's AcquireTimeout applies.
//
// RSA keys: crypto.SHA256 and the other SHA-2 hashes (and SHA-1) as
// PKCS #1 v1.5 through CKM_RSA_PKCS over a DigestInfo built here, or
// RSASSA-PSS through CKM_RSA_PKCS_PSS when opts is *rsa.PSSOptions (MGF1
// with the same hash; salt as long as the hash unless opts gives a length).
// ECDSA keys: CKM_ECDSA over digest, returned as ASN.1 DER as Go expects.
func (s *p11Signer) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	mech, input, err := s.mechanism(digest, opts)
	if err != nil {
		return nil, fmt.Errorf("signing with key %q: %w", s.label, err)
	}
	var sig []byte
	err = s.store.withSession(ctx, true, func(l *lease) error {
		h, err := s.objectHandle(l)
		if err != nil {
			return err
		}
		sig, err = s.store.threads.sign(l.sh, h, mech, input)
		s.forgetHandle(err)
		return err
	})
	if err != nil {
		s.store.signErrors.Add(1)
		return nil, fmt.Errorf("signing with key %q: %w", s.label, err)
	}
	if _, ok := s.pub.(*ecdsa.PublicKey); ok {
		return ecdsaDER(sig)
	}
	return sig, nil
}

// forgetHandle drops the cached key handle after an error that may mean it
// is stale, so the next attempt finds the key again.
func (s *p11Signer) forgetHandle(err error) {
	if isCode(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) || isCode(err, pkcs11.CKR_KEY_HANDLE_INVALID) {
		s.handle.Store(nil)
	}
}

// objectHandle returns the private key's handle for the lease's module
// generation, finding it again (by CKA_LABEL and CKA_ID) if needed. If the
// key has vanished, the token is asked whether it is still there, so that a
// token that went away reads as a module failure, not as a deleted key.
func (s *p11Signer) objectHandle(l *lease) (pkcs11.ObjectHandle, error) {
	if kh := s.handle.Load(); kh != nil && kh.gen == l.gen {
		return kh.h, nil
	}
	hs, err := s.store.findObjects(l, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, s.label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, s.id),
	}, 1)
	if err != nil {
		return 0, err
	}
	if len(hs) == 0 {
		if _, err := s.store.pool.mod.GetTokenInfo(l.slot); err != nil {
			return 0, fmt.Errorf("key gone, checking token: %w", err)
		}
		return 0, ErrKeyNotFound
	}
	s.handle.Store(&keyHandle{gen: l.gen, h: hs[0]})
	return hs[0], nil
}

// mechanism picks the PKCS #11 mechanism and the bytes to sign.
func (s *p11Signer) mechanism(digest []byte, opts crypto.SignerOpts) (*pkcs11.Mechanism, []byte, error) {
	h, err := checkDigest(digest, opts)
	if err != nil {
		return nil, nil, err
	}
	switch pub := s.pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			salt, err := pssSaltLength(pss, h)
			if err != nil {
				return nil, nil, err
			}
			if max := (pub.N.BitLen()-1+7)/8 - h.Size() - 2; salt > max {
				return nil, nil, fmt.Errorf("%w: PSS salt length %d over the maximum %d", ErrInvalidRequest, salt, max)
			}
			hm, mgf, ok := pssHash(h)
			if !ok {
				return nil, nil, fmt.Errorf("%w: PSS with %v", ErrUnsupported, h)
			}
			params := pkcs11.NewPSSParams(hm, mgf, uint(salt))
			return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, params), digest, nil
		}
		prefix := digestInfoPrefixes[h]
		in := make([]byte, 0, len(prefix)+len(digest))
		in = append(append(in, prefix...), digest...)
		return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil), in, nil
	case *ecdsa.PublicKey:
		return pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil), digest, nil
	default:
		return nil, nil, fmt.Errorf("%w: public key type %T", ErrUnsupported, s.pub)
	}
}

// pssHash gives the CKM_ hash and CKG_MGF1_ for a PSS hash.
func pssHash(h crypto.Hash) (hashMech, mgf uint, ok bool) {
	switch h {
	case crypto.SHA1:
		return pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, true
	case crypto.SHA224:
		return pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224, true
	case crypto.SHA256:
		return pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256, true
	case crypto.SHA384:
		return pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384, true
	case crypto.SHA512:
		return pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512, true
	default:
		return 0, 0, false
	}
}

// ecdsaDER converts CKM_ECDSA's r||s (PKCS #11 v2.40 section 2.3.1) to the
// ASN.1 ECDSA-Sig-Value that crypto/ecdsa and crypto/x509 expect:
// SEQUENCE { r INTEGER, s INTEGER }, in DER. Written out by hand because
// encoding/asn1 cost a noticeable share of an ECDSA signature on a fast
// token (docs/benchmarks.md, HSM, Reading).
func ecdsaDER(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 || len(raw) > 2*66 {
		return nil, fmt.Errorf("converting ECDSA signature: %w: %d bytes", ErrUnsupported, len(raw))
	}
	r, s := derUint(raw[:len(raw)/2]), derUint(raw[len(raw)/2:])
	body := 2 + len(r) + 2 + len(s) // each integer's length fits one byte: at most 67
	out := make([]byte, 0, 3+body)
	out = append(out, 0x30)
	if body >= 0x80 {
		out = append(out, 0x81)
	}
	out = append(out, byte(body))
	out = append(append(out, 0x02, byte(len(r))), r...)
	out = append(append(out, 0x02, byte(len(s))), s...)
	return out, nil
}

// derUint gives the content octets of a DER INTEGER holding the unsigned
// big-endian value b: no redundant leading zeros, and a zero byte in front
// if the top bit is set, so it stays positive.
func derUint(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	if len(b) == 0 {
		return []byte{0}
	}
	if b[0]&0x80 != 0 {
		return append([]byte{0}, b...)
	}
	return b
}
