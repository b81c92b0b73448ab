package api

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/jpkica/jpkica/ca"
)

// IssueRequest is the body of POST /v1/certificates.
type IssueRequest struct {
	Type     string       `json:"type"`
	CSR      string       `json:"csr"`
	Card     Card         `json:"card"`
	Resident Resident     `json:"resident"`
	Proxy    *ProxyAnswer `json:"proxy,omitempty"`
}

// Card names the My Number Card the certificate goes on.
type Card struct {
	ID      string `json:"id"`
	Expires string `json:"expires"` // YYYY-MM-DD
}

// Resident is the resident record, with the 4 facts.
type Resident struct {
	ID                string `json:"id"`
	Municipality      string `json:"municipality"`
	Name              string `json:"name"`
	BirthDate         string `json:"birth_date"` // YYYY-MM-DD
	Sex               string `json:"sex"`        // male, female, unknown
	Address           string `json:"address"`
	AdultGuardianship bool   `json:"adult_guardianship"`
}

// ProxyAnswer is present when a proxy collects the certificate.
type ProxyAnswer struct {
	ApplicationID string `json:"application_id"`
	AnswerCode    string `json:"answer_code"`
}

// Issued is the 201 answer to an issuance.
type Issued struct {
	Serial      string   `json:"serial"`
	Type        string   `json:"type"`
	NotBefore   string   `json:"not_before"`
	NotAfter    string   `json:"not_after"`
	Certificate string   `json:"certificate"`
	Chain       []string `json:"chain"`
	Superseded  []string `json:"superseded,omitempty"`
}

// Certificate is a stored certificate as the read calls return it.
type Certificate struct {
	Serial       string `json:"serial"`
	Type         string `json:"type"`
	Status       string `json:"status"` // good, revoked, on_hold
	Reason       string `json:"reason,omitempty"`
	RevokedAt    string `json:"revoked_at,omitempty"`
	CardID       string `json:"card_id,omitempty"`
	ResidentID   string `json:"resident_id,omitempty"`
	Municipality string `json:"municipality,omitempty"`
	NotBefore    string `json:"not_before"`
	NotAfter     string `json:"not_after"`
	Certificate  string `json:"certificate"`
}

// Certificates is the answer of the list and lifecycle calls.
type Certificates struct {
	Certificates []Certificate `json:"certificates"`
}

// RevokeRequest is the body of POST /v1/certificates/{serial}/revoke.
type RevokeRequest struct {
	Reason string `json:"reason"`
}

// EventRequest is the body of POST /v1/residents/{id}/events.
type EventRequest struct {
	Kind      string `json:"kind"`      // facts_changed, deceased, removed, registered
	Effective string `json:"effective"` // YYYY-MM-DD
}

// ProxyApplicationRequest is the body of POST /v1/proxy-applications.
type ProxyApplicationRequest struct {
	Resident Resident `json:"resident"`
	Card     Card     `json:"card"`
	Types    []string `json:"types"`
}

// ProxyApplicationResponse is its 201 answer.
type ProxyApplicationResponse struct {
	ApplicationID string `json:"application_id"`
	InquiryCode   string `json:"inquiry_code"`
	NotBefore     string `json:"not_before"`
}

// RenewalNotice is one line of GET /v1/renewal-notices.
type RenewalNotice struct {
	Serial       string `json:"serial"`
	Type         string `json:"type"`
	ResidentID   string `json:"resident_id"`
	CardID       string `json:"card_id"`
	Municipality string `json:"municipality"`
	NotAfter     string `json:"not_after"`
	WindowOpens  string `json:"window_opens"`
}

// RenewalNotices is the JSON answer of GET /v1/renewal-notices.
type RenewalNotices struct {
	Notices []RenewalNotice `json:"notices"`
}

// AuditEntry is one entry of GET /v1/audit.
type AuditEntry struct {
	Seq     int64           `json:"seq"`
	Time    string          `json:"time"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Subject string          `json:"subject"`
	Detail  json.RawMessage `json:"detail,omitempty"`
	Prev    string          `json:"prev"`
	Hash    string          `json:"hash"`
}

// AuditPage is the answer of GET /v1/audit.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    int64        `json:"next"` // pass as ?after= for the next page
}

// decodeJSON reads exactly one JSON object into v: unknown fields, trailing
// data, a wrong content type and a body over the limit are refused.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := strings.Cut(ct, ";")
		if !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
			return fail(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "the body must be application/json")
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fail(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("the body is over %d bytes", mbe.Limit))
		}
		return fail(http.StatusBadRequest, CodeMalformedJSON, "reading the body: "+err.Error())
	}
	return DecodeBody(body, v)
}

// DecodeBody is the strict JSON decoding of every request body: one JSON
// object of UTF-8 text, no lone surrogates, no key twice in an object
// (checkJSONText), no unknown fields, nothing after it. Errors are API
// errors with the codes malformed_json and unknown_field.
func DecodeBody(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return fail(http.StatusBadRequest, CodeMalformedJSON, "the body must be one JSON object")
	}
	if err := checkJSONText(body); err != nil {
		return err
	}
	if err := dec.Decode(v); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field") {
			return fail(http.StatusBadRequest, CodeUnknownField, err.Error())
		}
		return fail(http.StatusBadRequest, CodeMalformedJSON, "decoding the body: "+err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fail(http.StatusBadRequest, CodeMalformedJSON, "data after the JSON object")
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
		return ca.Date{}, fail(http.StatusBadRequest, CodeInvalidDate, fmt.Sprintf("%s: %q is not %s", field, s, errDateRequired))
	}
	return d, nil
}

func checkID(field, s string) error {
	if !idPattern.MatchString(s) {
		return fail(http.StatusBadRequest, CodeInvalidRequest,
			fmt.Sprintf("%s: %q: want 1 to 64 characters of A-Z a-z 0-9 . _ -", field, s))
	}
	return nil
}

func parseType(s string) (ca.CertType, error) {
	t, err := ca.ParseCertType(s)
	if err != nil || t == ca.Terminal {
		return 0, fail(http.StatusBadRequest, CodeInvalidType, fmt.Sprintf("type %q: want signature or authentication", s))
	}
	return t, nil
}

// resident is a validated Resident.
type resident struct {
	id           string
	municipality string
	facts        ca.Facts
	guardianship bool
}

func (r Resident) validate() (resident, error) {
	if err := checkID("resident.id", r.ID); err != nil {
		return resident{}, err
	}
	if !ca.ValidMunicipalityCode(r.Municipality) {
		return resident{}, fail(http.StatusBadRequest, CodeInvalidMunicipality,
			fmt.Sprintf("resident.municipality %q is not a local government code", r.Municipality))
	}
	birth, err := parseDate("resident.birth_date", r.BirthDate)
	if err != nil {
		return resident{}, err
	}
	sex, err := ca.ParseSex(r.Sex)
	if err != nil {
		return resident{}, fail(http.StatusBadRequest, CodeInvalidFacts, err.Error())
	}
	f := ca.Facts{Name: r.Name, BirthDate: birth, Sex: sex, Address: r.Address}
	if err := f.Validate(); err != nil {
		return resident{}, fail(http.StatusBadRequest, CodeInvalidFacts, err.Error())
	}
	return resident{id: r.ID, municipality: r.Municipality, facts: f, guardianship: r.AdultGuardianship}, nil
}

func (c Card) validate() (string, ca.Date, error) {
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
		return nil, fail(http.StatusBadRequest, CodeInvalidCSR, "csr: want one PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fail(http.StatusBadRequest, CodeInvalidCSR, "csr: "+err.Error())
	}
	if err := ca.CheckCardKey(csr.PublicKey); err != nil {
		return nil, fail(http.StatusBadRequest, CodeInvalidCardKey, err.Error())
	}
	if !csrAlgorithms[csr.SignatureAlgorithm] {
		return nil, fail(http.StatusBadRequest, CodeInvalidCSR,
			fmt.Sprintf("csr: signed with %v: want RSA with SHA-256, SHA-384 or SHA-512", csr.SignatureAlgorithm))
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fail(http.StatusBadRequest, CodeCSRSignature, "csr: the signature does not verify: "+err.Error())
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
func CertificateOf(r ca.Record) Certificate {
	c := Certificate{
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

func certificatesOf(rs []ca.Record) Certificates {
	out := Certificates{Certificates: make([]Certificate, 0, len(rs))}
	for _, r := range rs {
		out.Certificates = append(out.Certificates, CertificateOf(r))
	}
	return out
}
