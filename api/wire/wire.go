// Package wire holds the /v1 API's wire format, the one contract that the
// server (package api) and its clients (package counter, the counter CLI,
// any terminal application) share: the request and answer bodies, the
// error body and its codes, the header names, the strict JSON decoding
// every request body goes through, and the renewal notices' CSV.
//
// It is a leaf: it imports only the standard library, so a client that
// imports it links none of the server's parts (the HSM's cgo, zlint, the
// database drivers). Everything here is safe for concurrent use.
package wire

import "encoding/json"

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
	ID      int64           `json:"id"`    // position in the whole log: the paging cursor
	Chain   string          `json:"chain"` // the writer's hash chain; Seq and Prev are within it
	Prev    string          `json:"prev"`
	Hash    string          `json:"hash"`
}

// AuditPage is the answer of GET /v1/audit.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    int64        `json:"next"` // pass as ?after= for the next page
}
