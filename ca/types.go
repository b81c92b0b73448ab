package ca

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// CertType is one of the two certificates on a card, or a terminal's client
// certificate.
type CertType int

const (
	// Signature is the signature certificate (署名用電子証明書): it carries
	// the 4 facts.
	Signature CertType = iota + 1
	// Authentication is the user-authentication certificate
	// (利用者証明用電子証明書): it carries nothing personal.
	Authentication
	// Terminal is a counter terminal's (or operator's) client certificate,
	// issued by the client CA for mutual TLS to the API.
	Terminal
)

var certTypeNames = map[CertType]string{
	Signature:      "signature",
	Authentication: "authentication",
	Terminal:       "terminal",
}

func (t CertType) String() string {
	if s, ok := certTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("CertType(%d)", int(t))
}

// ParseCertType reads "signature" or "authentication".
func ParseCertType(s string) (CertType, error) {
	for t, name := range certTypeNames {
		if name == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: certificate type %q", ErrInvalid, s)
}

// Status is a certificate's revocation status as relying parties see it.
type Status int

const (
	// Good: issued and neither revoked nor held.
	Good Status = iota + 1
	// Revoked: permanently revoked.
	Revoked
	// OnHold: revoked with reason certificateHold (a lost card).
	OnHold
)

var statusNames = map[Status]string{Good: "good", Revoked: "revoked", OnHold: "on_hold"}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Reason is an RFC 5280 CRLReason code (section 5.3.1).
type Reason int

// The CRLReason codes. 7 is not used by RFC 5280.
const (
	Unspecified          Reason = 0
	KeyCompromise        Reason = 1
	CACompromise         Reason = 2
	AffiliationChanged   Reason = 3
	Superseded           Reason = 4
	CessationOfOperation Reason = 5
	CertificateHold      Reason = 6
	RemoveFromCRL        Reason = 8
	PrivilegeWithdrawn   Reason = 9
	AACompromise         Reason = 10
)

var reasonNames = map[Reason]string{
	Unspecified:          "unspecified",
	KeyCompromise:        "keyCompromise",
	CACompromise:         "cACompromise",
	AffiliationChanged:   "affiliationChanged",
	Superseded:           "superseded",
	CessationOfOperation: "cessationOfOperation",
	CertificateHold:      "certificateHold",
	RemoveFromCRL:        "removeFromCRL",
	PrivilegeWithdrawn:   "privilegeWithdrawn",
	AACompromise:         "aACompromise",
}

func (r Reason) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// ParseReason reads the RFC 5280 name of a reason ("keyCompromise").
func ParseReason(s string) (Reason, error) {
	for r, name := range reasonNames {
		if strings.EqualFold(name, s) {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%w: revocation reason %q", ErrInvalid, s)
}

// Serial is a certificate serial number. The zero value is not a valid serial.
// It is comparable, so it can key maps.
type Serial struct {
	b string // big-endian magnitude, no leading zero bytes
}

// SerialFromBig converts a positive integer.
func SerialFromBig(n *big.Int) Serial {
	return Serial{b: string(n.Bytes())}
}

// SerialFromBytes takes a big-endian magnitude (leading zeros are dropped).
func SerialFromBytes(b []byte) Serial {
	return SerialFromBig(new(big.Int).SetBytes(b))
}

// ParseSerial reads a serial in hexadecimal (as the API and the CLI write it).
func ParseSerial(s string) (Serial, error) {
	h := strings.TrimPrefix(strings.ToLower(s), "0x")
	if len(h)%2 == 1 {
		h = "0" + h
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) == 0 || len(b) > 20 {
		return Serial{}, fmt.Errorf("%w: serial %q: want hexadecimal, 1 to 20 bytes", ErrInvalid, s)
	}
	sn := SerialFromBytes(b)
	if sn.IsZero() {
		return Serial{}, fmt.Errorf("%w: serial zero", ErrInvalid)
	}
	return sn, nil
}

// ParseSerialDecimal reads a serial in decimal (cfssl's certdb form).
func ParseSerialDecimal(s string) (Serial, error) {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Sign() <= 0 {
		return Serial{}, fmt.Errorf("%w: decimal serial %q", ErrInvalid, s)
	}
	return SerialFromBig(n), nil
}

// IsZero reports whether s is the zero value.
func (s Serial) IsZero() bool { return s.b == "" }

// Big returns the serial as an integer.
func (s Serial) Big() *big.Int { return new(big.Int).SetBytes([]byte(s.b)) }

// Bytes returns the big-endian magnitude.
func (s Serial) Bytes() []byte { return []byte(s.b) }

// Hex is the lower-case hexadecimal form used by the API.
func (s Serial) Hex() string { return hex.EncodeToString([]byte(s.b)) }

// Decimal is the form cfssl's certdb stores in serial_number.
func (s Serial) Decimal() string { return s.Big().String() }

func (s Serial) String() string { return s.Hex() }

// Compare orders serials as numbers: -1, 0 or +1.
func (s Serial) Compare(t Serial) int {
	if len(s.b) != len(t.b) {
		return cmpInt(len(s.b), len(t.b))
	}
	return strings.Compare(s.b, t.b)
}

// Issuer is one generation of an issuing CA: a self-signed root whose key lives
// in the key store. All generations of a type share one name; they are told
// apart by key (SKI, key hashes).
type Issuer struct {
	ID         string // e.g. "signature-g1"
	Type       CertType
	Generation int
	KeyRef     string // the key's label in the key store
	CertDER    []byte
	CreatedAt  time.Time
}

// Record is a certificate as the system of record keeps it.
type Record struct {
	Serial       Serial
	IssuerID     string
	AKI          []byte // the issuer's subject key identifier
	Type         CertType
	CardID       string
	ResidentID   string
	Municipality string // six-digit local government code
	NotBefore    time.Time
	NotAfter     time.Time
	IssuedAt     time.Time
	Status       Status
	Reason       Reason // meaningful when Status is Revoked or OnHold
	RevokedAt    time.Time
	FactsHash    []byte // SHA-256 over the 4 facts (signature certificates only)
	// CardExpires is the card's own expiry day as the issuance gave it;
	// zero on records stored before it was kept, and on terminals'.
	CardExpires Date
	// KeyHash is KeyHash of the certified public key; nil on records
	// stored before it was kept, and on synthetic ones.
	KeyHash   []byte
	DER       []byte
	Synthetic bool // made by `jpkica dev seed`, not by issuance
}

// Live reports whether the certificate is good or on hold, and not expired
// at t: the state in which it occupies its card.
func (r Record) Live(t time.Time) bool {
	return (r.Status == Good || r.Status == OnHold) && r.NotAfter.After(t)
}

// OCSPResponse is a signed OCSP response as the store keeps it, for the
// certificate Serial of the issuer whose key identifier is AKI.
type OCSPResponse struct {
	Serial Serial
	AKI    []byte
	Body   []byte    // the DER OCSPResponse
	Expiry time.Time // its nextUpdate
}

// Sentinel errors of the ca package; match them with errors.Is.
var (
	// ErrInvalid: the input is malformed.
	ErrInvalid = errors.New("invalid input")
	// ErrNotEligible: valid input that the JPKI rules do not allow.
	ErrNotEligible = errors.New("not eligible")
	// ErrNotFound: no such certificate, issuer or resident.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request conflicts with the current state.
	ErrConflict = errors.New("conflict")
	// ErrLint: the certificate failed pre-issuance linting (Linter).
	ErrLint = errors.New("certificate failed lint")
	// ErrWeakKey: the certificate's subject key failed a key check of the
	// lint (Fermat's factorisation, zlint's e_rsa_fermat_factorization):
	// the key, not the profile, is at fault, and whoever sent it must make
	// a new one. It comes together with ErrLint.
	ErrWeakKey = errors.New("weak subject key")
	// ErrUnavailable: the key store or database is unavailable; safe to retry.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrIssuerExpiring: the current issuer generation expires before the
	// certificate asked for would. No certificate outlives its issuer; the
	// PKI administrators must add a generation (jpkica init
	// --new-generation) before the CA can issue it.
	ErrIssuerExpiring = errors.New("the issuer generation expires before the certificate would")

	// ErrCardInUse: the card holds a live certificate that the issuance may
	// not supersede: another resident's, or one issued by a municipality
	// other than the calling counter's. A card is one resident's.
	ErrCardInUse = fmt.Errorf("%w: the card holds a live certificate this issuance may not supersede", ErrConflict)
	// ErrCardExpiry: the card holds live certificates issued with another
	// card expiry. A card's expiry does not change while it is in use.
	ErrCardExpiry = fmt.Errorf("%w: the card is on record with another expiry", ErrConflict)
	// ErrKeyReused: the public key is already certified for another card or
	// another resident. Card keys are made on the card and never leave it,
	// so a second card with the same key is a clone or a wrong CSR.
	ErrKeyReused = fmt.Errorf("%w: the public key is already certified for another card or resident", ErrNotEligible)
)
