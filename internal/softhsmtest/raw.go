package softhsmtest

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"testing"

	"github.com/miekg/pkcs11"
)

// RawSigner signs with one private key of the token through miekg/pkcs11
// alone, C_SignInit and C_Sign per signature on sessions of its own: the
// raw signing rate that benchmarks hold jpkica's signing paths against,
// whatever those paths do.
//
// It loads the module once more (the same library instance as the code
// under test) and uses it as the code under test left it: initialised, the
// user logged in. It never finalises the module.
type RawSigner struct {
	mod      *pkcs11.Ctx
	sessions chan pkcs11.SessionHandle
	key      pkcs11.ObjectHandle
	mech     []*pkcs11.Mechanism
	prefix   []byte // what goes before the digest: RSA's DigestInfo, nothing for ECDSA
}

// sha256DigestInfo is the DER DigestInfo prefix of a SHA-256 digest
// (RFC 8017 section 9.2, note 1).
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// RawSigner opens sessions sessions on the token and finds the private
// key labelled label, RSA or EC. The module must already be initialised and
// logged in by the code under test (hsm.OpenPKCS11); the sessions are
// closed at the end of the test.
func (tk *Token) RawSigner(t testing.TB, label string, sessions int) *RawSigner {
	t.Helper()
	mod := pkcs11.New(tk.Module)
	if mod == nil {
		t.Fatalf("loading %s", tk.Module)
	}
	t.Cleanup(mod.Destroy)
	if err := mod.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		t.Fatalf("C_Initialize: %v", err)
	}
	slot, err := tk.slot(mod)
	if err != nil {
		t.Fatal(err)
	}
	r := &RawSigner{mod: mod, sessions: make(chan pkcs11.SessionHandle, sessions)}
	for range sessions {
		sh, err := mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatalf("C_OpenSession: %v", err)
		}
		t.Cleanup(func() { _ = mod.CloseSession(sh) })
		r.sessions <- sh
	}
	sh := <-r.sessions
	defer func() { r.sessions <- sh }()
	if err := mod.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}); err != nil {
		t.Fatalf("C_FindObjectsInit: %v", err)
	}
	hs, _, err := mod.FindObjects(sh, 2)
	_ = mod.FindObjectsFinal(sh)
	if err != nil || len(hs) != 1 {
		t.Fatalf("finding private key %q: %d found, %v", label, len(hs), err)
	}
	r.key = hs[0]
	attrs, err := mod.GetAttributeValue(sh, r.key, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		t.Fatalf("C_GetAttributeValue(CKA_KEY_TYPE): %v", err)
	}
	// A CK_ULONG as the module writes it, compared as miekg encodes one.
	keyType := func(kt uint) bool {
		return bytes.Equal(attrs[0].Value, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, kt).Value)
	}
	switch {
	case keyType(pkcs11.CKK_RSA):
		r.mech, r.prefix = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, sha256DigestInfo
	case keyType(pkcs11.CKK_EC):
		r.mech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
	default:
		t.Fatalf("private key %q: key type %x is neither RSA nor EC", label, attrs[0].Value)
	}
	return r
}

// SignSHA256 signs a SHA-256 digest, on a free session, waiting for one if
// all are in use: with RSA PKCS #1 v1.5 (CKM_RSA_PKCS over the DigestInfo)
// or ECDSA (CKM_ECDSA, the signature as r and s side by side).
func (r *RawSigner) SignSHA256(digest []byte) ([]byte, error) {
	if len(digest) != crypto.SHA256.Size() {
		return nil, fmt.Errorf("%d-byte digest, not SHA-256", len(digest))
	}
	sh := <-r.sessions
	defer func() { r.sessions <- sh }()
	if err := r.mod.SignInit(sh, r.mech, r.key); err != nil {
		return nil, fmt.Errorf("C_SignInit: %w", err)
	}
	sig, err := r.mod.Sign(sh, append(append([]byte{}, r.prefix...), digest...))
	if err != nil {
		return nil, fmt.Errorf("C_Sign: %w", err)
	}
	return sig, nil
}

// slot finds the token's slot by its label.
func (tk *Token) slot(mod *pkcs11.Ctx) (uint, error) { return labelledSlot(mod, tk.Label) }

func isCode(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}
