package wire

// Error codes of the API: the "code" of an error body. They are stable;
// clients match on them, never on the message.
const (
	CodeMalformedJSON          = "malformed_json"           // 400: not one JSON object of the documented shape
	CodeUnknownField           = "unknown_field"            // 400: a field the call does not define
	CodeUnsupportedMediaType   = "unsupported_media_type"   // 415: a body that is not application/json
	CodeInvalidRequest         = "invalid_request"          // 400: a value the rules refuse
	CodeInvalidDate            = "invalid_date"             // 400: not a YYYY-MM-DD calendar date
	CodeInvalidType            = "invalid_type"             // 400: not signature or authentication
	CodeInvalidCSR             = "invalid_csr"              // 400: not one PEM PKCS#10 request
	CodeCSRSignature           = "csr_signature_invalid"    // 400: the CSR's signature does not verify
	CodeInvalidCardKey         = "invalid_card_key"         // 400: the key is not RSA-2048, e=65537, or it is weak (Fermat factors it)
	CodeInvalidFacts           = "invalid_facts"            // 400: name, address, sex or birth date refused
	CodeInvalidMunicipality    = "invalid_municipality"     // 400: not a six-digit code with its check digit
	CodeInvalidSerial          = "invalid_serial"           // 400: not a hexadecimal serial
	CodeInvalidReason          = "invalid_reason"           // 400: not an RFC 5280 reason this call takes
	CodeInvalidEventKind       = "invalid_event_kind"       // 400: not facts_changed, deceased, removed or registered
	CodeInvalidQuery           = "invalid_query"            // 400: a query parameter missing or malformed
	CodeIdempotencyKeyRequired = "idempotency_key_required" // 400: issuance without a usable Idempotency-Key
	CodeClientCertRequired     = "client_certificate_required"
	CodeUnknownClient          = "unknown_client"     // 401: not signed by the client CA, or not on record
	CodeClientRevoked          = "client_revoked"     // 401: the terminal certificate is revoked or held
	CodeClientExpired          = "client_expired"     // 401: the terminal certificate expired (or is not yet valid)
	CodeRoleForbidden          = "role_forbidden"     // 403: the role may not make this call
	CodeWrongMunicipality      = "wrong_municipality" // 403: a counter acting outside its municipality
	CodeReasonForbidden        = "reason_forbidden"   // 403: a revocation reason reserved to admin
	CodeNotFound               = "not_found"          // 404
	CodeRouteNotFound          = "route_not_found"    // 404: no such call
	CodeMethodNotAllowed       = "method_not_allowed" // 405
	CodeIdempotencyKeyReused   = "idempotency_key_reused"
	CodeAlreadyRevoked         = "already_revoked"      // 409
	CodeProxyAnswerUsed        = "proxy_answer_used"    // 409
	CodeCardInUse              = "card_in_use"          // 409: the card holds another resident's live certificate, or one the counter may not supersede
	CodeCardExpiryMismatch     = "card_expiry_mismatch" // 409: the card is in use with another expiry
	CodeCardKeyReused          = "card_key_reused"      // 422: the key is certified for another card or resident
	CodeConflict               = "conflict"             // 409: other conflicts with the stored state
	CodeBodyTooLarge           = "body_too_large"       // 413
	CodeNotEligible            = "not_eligible"         // 422: valid, but the JPKI rules do not allow it
	CodeRateLimited            = "rate_limited"         // 429, with Retry-After
	CodeUnavailable            = "unavailable"          // 503, with Retry-After: HSM or database unavailable; safe to retry
	CodeHSMLoginRefused        = "hsm_login_refused"    // 503, without Retry-After: the HSM refused the PIN; no retry succeeds until an operator acts
	CodeInternal               = "internal"             // 500
)

// Error is the body of every error answer:
// {"error": {"code": "snake_case", "message": "human text"}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorBody wraps Error as it goes on the wire.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Header names of the API.
const (
	// HeaderIdempotencyKey carries, on POST /v1/certificates, the key that
	// makes a retried issuance return the first answer (required).
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderIdempotentReplayed is "true" on an answer that an earlier
	// issuance with the same idempotency key produced.
	HeaderIdempotentReplayed = "Idempotent-Replayed"
	// HeaderTerminalExpires carries, on every answer to a terminal whose
	// certificate expires soon (api.DefaultTerminalExpiryNotice unless the
	// server is configured otherwise), when it expires (RFC 3339): the
	// terminal needs a new one (`jpkica clients issue`) before then, or the
	// API refuses it.
	HeaderTerminalExpires = "Terminal-Certificate-Expires"
)
