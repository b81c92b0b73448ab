package api

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
)

// decodeJSON reads exactly one JSON object into v: unknown fields, trailing
// data, a wrong content type and a body over the limit are refused.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := strings.Cut(ct, ";")
		if !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
			return fail(http.StatusUnsupportedMediaType, wire.CodeUnsupportedMediaType, "the body must be application/json")
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fail(http.StatusRequestEntityTooLarge, wire.CodeBodyTooLarge, fmt.Sprintf("the body is over %d bytes", mbe.Limit))
		}
		return fail(http.StatusBadRequest, wire.CodeMalformedJSON, "reading the body: "+err.Error())
	}
	return decodeBody(body, v)
}

// decodeBody is wire.Decode with its refusal as a 400.
func decodeBody(body []byte, v any) error {
	if err := wire.Decode(body, v); err != nil {
		var de *wire.DecodeError
		if errors.As(err, &de) {
			return fail(http.StatusBadRequest, de.Code, de.Message)
		}
		return err
	}
	return nil
}

var (
	idPattern       = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$`)
	idemKeyPattern  = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
	answerPattern   = regexp.MustCompile(`^[0-9A-Z]{1,64}$`)
	appIDPattern    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	errDateRequired = "a date in the form YYYY-MM-DD"
)

func parseDate(field, s string) (ca.Date, error) {
	d, err := ca.ParseDate(s)
	if err != nil || !d.Valid() {
		return ca.Date{}, fail(http.StatusBadRequest, wire.CodeInvalidDate, fmt.Sprintf("%s: %q is not %s", field, s, errDateRequired))
	}
	return d, nil
}

func checkID(field, s string) error {
	if !idPattern.MatchString(s) {
		return fail(http.StatusBadRequest, wire.CodeInvalidRequest,
			fmt.Sprintf("%s: %q: want 1 to 64 characters of A-Z a-z 0-9 . _ -", field, s))
	}
	return nil
}

func parseType(s string) (ca.CertType, error) {
	t, err := ca.ParseCertType(s)
	if err != nil || t == ca.Terminal {
		return 0, fail(http.StatusBadRequest, wire.CodeInvalidType, fmt.Sprintf("type %q: want signature or authentication", s))
	}
	return t, nil
}

// resident is a validated wire.Resident.
type resident struct {
	id           string
	municipality string
	facts        ca.Facts
	guardianship bool
}

func validateResident(r wire.Resident) (resident, error) {
	if err := checkID("resident.id", r.ID); err != nil {
		return resident{}, err
	}
	if !ca.ValidMunicipalityCode(r.Municipality) {
		return resident{}, fail(http.StatusBadRequest, wire.CodeInvalidMunicipality,
			fmt.Sprintf("resident.municipality %q is not a local government code", r.Municipality))
	}
	birth, err := parseDate("resident.birth_date", r.BirthDate)
	if err != nil {
		return resident{}, err
	}
	sex, err := ca.ParseSex(r.Sex)
	if err != nil {
		return resident{}, fail(http.StatusBadRequest, wire.CodeInvalidFacts, err.Error())
	}
	f := ca.Facts{Name: r.Name, BirthDate: birth, Sex: sex, Address: r.Address}
	if err := f.Validate(); err != nil {
		return resident{}, fail(http.StatusBadRequest, wire.CodeInvalidFacts, err.Error())
	}
	return resident{id: r.ID, municipality: r.Municipality, facts: f, guardianship: r.AdultGuardianship}, nil
}

func validateCard(c wire.Card) (string, ca.Date, error) {
	if err := checkID("card.id", c.ID); err != nil {
		return "", ca.Date{}, err
	}
	d, err := parseDate("card.expires", c.Expires)
	return c.ID, d, err
}

// csrAlgorithms are the CSR signatures accepted: RSA (PKCS #1 v1.5 or PSS)
// over SHA-256 or stronger. SHA-1 is not: crypto/x509 still verifies
// SHA-1 signatures on CSRs, and a card's proof of possession made with a
// broken hash proves little.
var csrAlgorithms = map[x509.SignatureAlgorithm]bool{
	x509.SHA256WithRSA: true, x509.SHA384WithRSA: true, x509.SHA512WithRSA: true,
	x509.SHA256WithRSAPSS: true, x509.SHA384WithRSAPSS: true, x509.SHA512WithRSAPSS: true,
}

// parseCSR reads one PEM CERTIFICATE REQUEST, checks its signature and
// that its key is what a card holds.
func parseCSR(s string) (*x509.CertificateRequest, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE REQUEST" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fail(http.StatusBadRequest, wire.CodeInvalidCSR, "csr: want one PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fail(http.StatusBadRequest, wire.CodeInvalidCSR, "csr: "+err.Error())
	}
	if err := ca.CheckCardKey(csr.PublicKey); err != nil {
		return nil, fail(http.StatusBadRequest, wire.CodeInvalidCardKey, err.Error())
	}
	if !csrAlgorithms[csr.SignatureAlgorithm] {
		return nil, fail(http.StatusBadRequest, wire.CodeInvalidCSR,
			fmt.Sprintf("csr: signed with %v: want RSA with SHA-256, SHA-384 or SHA-512", csr.SignatureAlgorithm))
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fail(http.StatusBadRequest, wire.CodeCSRSignature, "csr: the signature does not verify: "+err.Error())
	}
	return csr, nil
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func pemCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// CertificateOf is a stored certificate as the read calls return it: what
// the admin commands print too.
func CertificateOf(r ca.Record) wire.Certificate {
	c := wire.Certificate{
		Serial: r.Serial.Hex(), Type: r.Type.String(), Status: r.Status.String(),
		CardID: r.CardID, ResidentID: r.ResidentID, Municipality: r.Municipality,
		NotBefore: timeString(r.NotBefore), NotAfter: timeString(r.NotAfter), Certificate: pemCert(r.DER),
	}
	if r.Status != ca.Good {
		c.Reason = r.Reason.String()
		c.RevokedAt = timeString(r.RevokedAt)
	}
	return c
}

func certificatesOf(rs []ca.Record) wire.Certificates {
	out := wire.Certificates{Certificates: make([]wire.Certificate, 0, len(rs))}
	for _, r := range rs {
		out.Certificates = append(out.Certificates, CertificateOf(r))
	}
	return out
}
