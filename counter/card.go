package counter

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/jpkica/jpkica/ca"
)

// ErrCard reports a card (token) that cannot do what was asked: absent,
// PIN refused, no key or certificate.
var ErrCard = errors.New("card")

// CardConfig names a My Number Card as PKCS#11 tokens: the card's two
// PIN-protected areas, one per certificate, are two tokens of one module
// (in tests, two SoftHSM2 tokens).
type CardConfig struct {
	Module string
	// SignatureToken and AuthenticationToken are the token labels.
	SignatureToken      string
	AuthenticationToken string
}

// Card is an open card. Its keys are generated on the card and cannot be
// read out (CKA_SENSITIVE, not CKA_EXTRACTABLE); the CA only sees CSRs
// signed by them. A Card is safe for concurrent use (calls are serialised).
type Card struct {
	mu       sync.Mutex
	mod      *pkcs11.Ctx
	slots    map[ca.CertType]uint
	sessions map[ca.CertType]pkcs11.SessionHandle
}

// OpenCard loads the module and finds both tokens. Close it when done: it
// finalises the module, so open one card per module and process at a time.
func OpenCard(cfg CardConfig) (*Card, error) {
	switch {
	case cfg.Module == "":
		return nil, fmt.Errorf("%w: no PKCS#11 module named", ErrCard)
	case cfg.SignatureToken == "" || cfg.AuthenticationToken == "":
		return nil, fmt.Errorf("%w: both token labels are needed, signature %q and user authentication %q",
			ErrCard, cfg.SignatureToken, cfg.AuthenticationToken)
	case cfg.SignatureToken == cfg.AuthenticationToken:
		return nil, fmt.Errorf("%w: the signature and user-authentication areas are two tokens, not both %q", ErrCard, cfg.SignatureToken)
	}
	mod := pkcs11.New(cfg.Module)
	if mod == nil {
		return nil, fmt.Errorf("%w: cannot load PKCS#11 module %q", ErrCard, cfg.Module)
	}
	if err := mod.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		mod.Destroy()
		return nil, fmt.Errorf("%w: C_Initialize: %v", ErrCard, err)
	}
	c := &Card{mod: mod, slots: map[ca.CertType]uint{}, sessions: map[ca.CertType]pkcs11.SessionHandle{}}
	slots, err := mod.GetSlotList(true)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: C_GetSlotList: %v", ErrCard, err)
	}
	want := map[string]ca.CertType{cfg.SignatureToken: ca.Signature, cfg.AuthenticationToken: ca.Authentication}
	var present []string
	for _, s := range slots {
		ti, err := mod.GetTokenInfo(s)
		if err != nil {
			continue
		}
		label := strings.TrimRight(ti.Label, " \x00")
		present = append(present, strconv.Quote(label))
		if t, ok := want[label]; ok {
			c.slots[t] = s
		}
	}
	var missing []string
	for label, t := range want {
		if _, ok := c.slots[t]; !ok {
			missing = append(missing, fmt.Sprintf("no %v token %q", t, label))
		}
	}
	if len(missing) > 0 {
		c.Close()
		slices.Sort(missing)
		return nil, fmt.Errorf("%w: %s in the reader (tokens present: %s)", ErrCard, strings.Join(missing, ", "), orNone(present))
	}
	return c, nil
}

func orNone(labels []string) string {
	if len(labels) == 0 {
		return "none"
	}
	return strings.Join(labels, ", ")
}

func isCKR(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// Close logs out and finalises the module.
func (c *Card) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sh := range c.sessions {
		_ = c.mod.Logout(sh)
		_ = c.mod.CloseSession(sh)
	}
	clear(c.sessions)
	err := c.mod.Finalize()
	c.mod.Destroy()
	return err
}

// Login opens a read-write session on the token of t and logs in with pin
// (the transport PIN before the resident sets theirs).
func (c *Card) Login(t ca.CertType, pin string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	slot, ok := c.slots[t]
	if !ok {
		return fmt.Errorf("%w: no token for %v", ErrCard, t)
	}
	if _, open := c.sessions[t]; open {
		return nil
	}
	sh, err := c.mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("%w: C_OpenSession: %v", ErrCard, err)
	}
	if err := c.mod.Login(sh, pkcs11.CKU_USER, pin); err != nil && !isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		c.mod.CloseSession(sh)
		return fmt.Errorf("%w: the %v token refused the PIN: %v", ErrCard, t, err)
	}
	c.sessions[t] = sh
	return nil
}

func (c *Card) session(t ca.CertType) (pkcs11.SessionHandle, error) {
	sh, ok := c.sessions[t]
	if !ok {
		return 0, fmt.Errorf("%w: not logged in to the %v token", ErrCard, t)
	}
	return sh, nil
}

func (c *Card) find(sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := c.mod.FindObjectsInit(sh, tmpl); err != nil {
		return nil, err
	}
	defer c.mod.FindObjectsFinal(sh)
	var out []pkcs11.ObjectHandle
	for {
		hs, _, err := c.mod.FindObjects(sh, 16)
		if err != nil {
			return nil, err
		}
		if len(hs) == 0 {
			return out, nil
		}
		out = append(out, hs...)
	}
}

// GenerateKey makes a new RSA-2048 key pair (e = 65537) on the token of t,
// sensitive and not extractable, under a CKA_ID of its own. Earlier keys
// stay until WriteCertificate replaces them; a key whose issuance was
// refused is deleted with DeleteKey.
func (c *Card) GenerateKey(t ca.CertType) (crypto.Signer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sh, err := c.session(t)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, id); err != nil {
		return nil, err
	}
	label := t.String()
	pub := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, 2048),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	priv := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	pubH, privH, err := c.mod.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("%w: C_GenerateKeyPair: %v", ErrCard, err)
	}
	pk, err := c.readPublic(sh, pubH)
	if err != nil {
		return nil, err
	}
	return &cardSigner{card: c, t: t, h: privH, id: id, pub: pk}, nil
}

// DeleteKey destroys a key pair that GenerateKey made, for a visit that
// was refused: the private and the public key object of the token that
// carry the key's CKA_ID and label, and nothing else. It refuses a key
// that a certificate on the token certifies (one that Signer returns, or
// one WriteCertificate wrote a certificate for).
func (c *Card) DeleteKey(key crypto.Signer) error {
	cs, ok := key.(*cardSigner)
	if !ok || cs.card != c {
		return fmt.Errorf("%w: not a key of this card", ErrCard)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sh, err := c.session(cs.t)
	if err != nil {
		return err
	}
	label := pkcs11.NewAttribute(pkcs11.CKA_LABEL, cs.t.String())
	id := pkcs11.NewAttribute(pkcs11.CKA_ID, cs.id)
	certs, err := c.find(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE), label, id})
	if err != nil {
		return fmt.Errorf("%w: finding certificates: %v", ErrCard, err)
	}
	if len(certs) > 0 {
		return fmt.Errorf("%w: the %v key is certified: it stays with its certificate", ErrCard, cs.t)
	}
	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
		hs, err := c.find(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), label, id})
		if err != nil {
			return fmt.Errorf("%w: finding the key pair: %v", ErrCard, err)
		}
		for _, h := range hs {
			if err := c.mod.DestroyObject(sh, h); err != nil {
				return fmt.Errorf("%w: C_DestroyObject: %v", ErrCard, err)
			}
		}
	}
	return nil
}

func (c *Card) readPublic(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) (*rsa.PublicKey, error) {
	attrs, err := c.mod.GetAttributeValue(sh, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil)})
	if err != nil || len(attrs) != 2 {
		return nil, fmt.Errorf("%w: reading public key: %v", ErrCard, err)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(attrs[0].Value), E: int(new(big.Int).SetBytes(attrs[1].Value).Int64())}, nil
}

// KeyAttributes reports the private key's CKA_SENSITIVE and
// CKA_EXTRACTABLE, for checking that a key cannot leave the card.
func (c *Card) KeyAttributes(s crypto.Signer) (sensitive, extractable bool, err error) {
	cs, ok := s.(*cardSigner)
	if !ok || cs.card != c {
		return false, false, fmt.Errorf("%w: not a key of this card", ErrCard)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sh, err := c.session(cs.t)
	if err != nil {
		return false, false, err
	}
	attrs, err := c.mod.GetAttributeValue(sh, cs.h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil)})
	if err != nil || len(attrs) != 2 {
		return false, false, fmt.Errorf("%w: reading key attributes: %v", ErrCard, err)
	}
	return len(attrs[0].Value) == 1 && attrs[0].Value[0] != 0, len(attrs[1].Value) == 1 && attrs[1].Value[0] != 0, nil
}

// WriteCertificate stores the certificate on the token of t as a
// CKO_CERTIFICATE object next to the key it certifies (same CKA_ID), and
// removes the earlier keys and certificates of that token.
func (c *Card) WriteCertificate(t ca.CertType, der []byte) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: certificate: %v", ErrCard, err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: the certificate's key is not RSA", ErrCard)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sh, err := c.session(t)
	if err != nil {
		return err
	}
	label := t.String()
	pubs, err := c.find(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	if err != nil {
		return fmt.Errorf("%w: finding keys: %v", ErrCard, err)
	}
	var id []byte
	for _, h := range pubs {
		pk, err := c.readPublic(sh, h)
		if err != nil {
			return err
		}
		if pk.Equal(pub) {
			attrs, err := c.mod.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, nil)})
			if err != nil {
				return fmt.Errorf("%w: reading CKA_ID: %v", ErrCard, err)
			}
			id = attrs[0].Value
		}
	}
	if id == nil {
		return fmt.Errorf("%w: the certificate is not for a key on the %v token", ErrCard, t)
	}
	serial, err := asn1Integer(cert.SerialNumber)
	if err != nil {
		return err
	}
	if _, err := c.mod.CreateObject(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
		pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_SUBJECT, cert.RawSubject),
		pkcs11.NewAttribute(pkcs11.CKA_ISSUER, cert.RawIssuer),
		pkcs11.NewAttribute(pkcs11.CKA_SERIAL_NUMBER, serial),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, der),
	}); err != nil {
		return fmt.Errorf("%w: C_CreateObject: %v", ErrCard, err)
	}
	// Remove the superseded keys and certificates of this token.
	all, err := c.find(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	if err != nil {
		return fmt.Errorf("%w: finding old objects: %v", ErrCard, err)
	}
	for _, h := range all {
		attrs, err := c.mod.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, nil)})
		if err != nil {
			return fmt.Errorf("%w: reading CKA_ID: %v", ErrCard, err)
		}
		if !bytes.Equal(attrs[0].Value, id) {
			if err := c.mod.DestroyObject(sh, h); err != nil {
				return fmt.Errorf("%w: C_DestroyObject: %v", ErrCard, err)
			}
		}
	}
	return nil
}

func asn1Integer(n *big.Int) ([]byte, error) {
	b := n.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	if len(b) > 127 {
		return nil, fmt.Errorf("%w: serial too long", ErrCard)
	}
	return append([]byte{0x02, byte(len(b))}, b...), nil
}

// Certificate reads the certificate on the token of t.
func (c *Card) Certificate(t ca.CertType) (*x509.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cert, _, err := c.certificate(t)
	return cert, err
}

// certificate reads the certificate on the token of t and its CKA_ID.
// c.mu must be held.
func (c *Card) certificate(t ca.CertType) (*x509.Certificate, []byte, error) {
	sh, err := c.session(t)
	if err != nil {
		return nil, nil, err
	}
	hs, err := c.find(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, t.String())})
	if err != nil || len(hs) != 1 {
		return nil, nil, fmt.Errorf("%w: want one certificate on the %v token, found %d (%v)", ErrCard, t, len(hs), err)
	}
	attrs, err := c.mod.GetAttributeValue(sh, hs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil)})
	if err != nil || len(attrs) != 2 {
		return nil, nil, fmt.Errorf("%w: reading certificate: %v", ErrCard, err)
	}
	cert, err := x509.ParseCertificate(attrs[0].Value)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: certificate: %v", ErrCard, err)
	}
	return cert, attrs[1].Value, nil
}

// Signer returns the key that the certificate on the token of t
// certifies: the one with the certificate's CKA_ID, whatever keys a failed
// issuance left next to it.
func (c *Card) Signer(t ca.CertType) (crypto.Signer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cert, id, err := c.certificate(t)
	if err != nil {
		return nil, err
	}
	sh, err := c.session(t)
	if err != nil {
		return nil, err
	}
	hs, err := c.find(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, t.String()), pkcs11.NewAttribute(pkcs11.CKA_ID, id)})
	if err != nil || len(hs) != 1 {
		return nil, fmt.Errorf("%w: want one key for the certificate on the %v token, found %d (%v)", ErrCard, t, len(hs), err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the certificate's key is not RSA", ErrCard)
	}
	return &cardSigner{card: c, t: t, h: hs[0], id: id, pub: pub}, nil
}

// SetPIN changes the token's user PIN from old to pin after checking pin
// against DOMAIN.md's rule for t (SignaturePIN folds lower case to upper).
// The session must be logged in (Login).
func (c *Card) SetPIN(t ca.CertType, old, pin string) error {
	pin, err := ResidentPIN(t, pin)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sh, err := c.session(t)
	if err != nil {
		return err
	}
	if err := c.mod.SetPIN(sh, old, pin); err != nil {
		return fmt.Errorf("%w: C_SetPIN on the %v token: %v", ErrCard, t, err)
	}
	return nil
}

// cardSigner signs with a card key: PKCS #1 v1.5 (CKM_RSA_PKCS over the
// DigestInfo), as the card does.
type cardSigner struct {
	card *Card
	t    ca.CertType
	h    pkcs11.ObjectHandle
	id   []byte // CKA_ID of the key pair
	pub  *rsa.PublicKey
}

func (s *cardSigner) Public() crypto.PublicKey { return s.pub }

var digestInfo = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

func (s *cardSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); pss {
		return nil, fmt.Errorf("%w: the card signs PKCS #1 v1.5 only", ErrCard)
	}
	prefix, ok := digestInfo[opts.HashFunc()]
	if !ok || len(digest) != opts.HashFunc().Size() {
		return nil, fmt.Errorf("%w: hash %v", ErrCard, opts.HashFunc())
	}
	s.card.mu.Lock()
	defer s.card.mu.Unlock()
	sh, err := s.card.session(s.t)
	if err != nil {
		return nil, err
	}
	if err := s.card.mod.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, s.h); err != nil {
		return nil, fmt.Errorf("%w: C_SignInit: %v", ErrCard, err)
	}
	sig, err := s.card.mod.Sign(sh, append(bytes.Clone(prefix), digest...))
	if err != nil {
		return nil, fmt.Errorf("%w: C_Sign: %v", ErrCard, err)
	}
	return sig, nil
}
