package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
)

// Error codes of the API: the "code" of an error body. They are stable;
// clients match on them, never on the message.
const (
	CodeMalformedJSON          = "malformed_json"           // 400: not one JSON object of the documented shape
	CodeUnknownField           = "unknown_field"            // 400: a field the call does not define
	CodeUnsupportedMediaType   = "unsupported_media_type"   // 415: a body that is not application/json
	CodeInvalidRequest         = "invalid_request"          // 400: a value the rules refuse (ca.ErrInvalid)
	CodeInvalidDate            = "invalid_date"             // 400: not a YYYY-MM-DD calendar date
	CodeInvalidType            = "invalid_type"             // 400: not signature or authentication
	CodeInvalidCSR             = "invalid_csr"              // 400: not one PEM PKCS#10 request
	CodeCSRSignature           = "csr_signature_invalid"    // 400: the CSR's signature does not verify
	CodeInvalidCardKey         = "invalid_card_key"         // 400: the key is not RSA-2048, e=65537, or it is weak (ca.ErrWeakKey)
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

// apiError is an error with its HTTP status and code, made by the handlers
// or by classify.
type apiError struct {
	status int
	code   string
	msg    string
	cause  error
}

func (e *apiError) Error() string { return e.msg }
func (e *apiError) Unwrap() error { return e.cause }

func fail(status int, code, msg string) *apiError {
	return &apiError{status: status, code: code, msg: msg}
}

// classify maps a domain error to a status and code: the one place that
// turns ca and hsm sentinels into HTTP. conflictCode names a 409 for the
// call at hand.
func classify(err error, conflictCode string) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	e := &apiError{msg: err.Error(), cause: err}
	// A 503's cause names keys, tokens and database errors: it goes to the
	// log (writeError), and the client gets which part is down.
	switch {
	case errors.Is(err, hsm.ErrUnavailable):
		e.status, e.code, e.msg = http.StatusServiceUnavailable, CodeUnavailable, "the key store is unavailable; safe to retry"
	case errors.Is(err, ca.ErrUnavailable):
		e.status, e.code, e.msg = http.StatusServiceUnavailable, CodeUnavailable, "the database is unavailable; safe to retry"
	case errors.Is(err, context.DeadlineExceeded):
		e.status, e.code, e.msg = http.StatusServiceUnavailable, CodeUnavailable,
			"the key store or the database did not answer in time; safe to retry"
	case errors.Is(err, ca.ErrIssuerExpiring):
		e.status, e.code, e.msg = http.StatusServiceUnavailable, CodeUnavailable,
			"the CA cannot issue this certificate: its issuer generation expires first; the PKI administrators must add a new generation"
	case errors.Is(err, ca.ErrWeakKey):
		// Found by the lint, after the CSR's own checks: the card's chip
		// made a key that Fermat's method factors. Only a new key helps.
		e.status, e.code, e.msg = http.StatusBadRequest, CodeInvalidCardKey,
			"the card's key is weak (Fermat's method factors its modulus): make a new key pair on the card"
	case errors.Is(err, ca.ErrCardInUse):
		e.status, e.code = http.StatusConflict, CodeCardInUse
	case errors.Is(err, ca.ErrCardExpiry):
		e.status, e.code = http.StatusConflict, CodeCardExpiryMismatch
	case errors.Is(err, ca.ErrKeyReused):
		e.status, e.code, e.msg = http.StatusUnprocessableEntity, CodeCardKeyReused,
			"the card's public key is already certified for another card or resident: a cloned card or a wrong CSR"
	case errors.Is(err, ca.ErrNotEligible):
		e.status, e.code = http.StatusUnprocessableEntity, CodeNotEligible
	case errors.Is(err, ca.ErrNotFound):
		e.status, e.code = http.StatusNotFound, CodeNotFound
	case errors.Is(err, ca.ErrConflict):
		e.status, e.code = http.StatusConflict, conflictCode
	case errors.Is(err, ca.ErrInvalid):
		e.status, e.code = http.StatusBadRequest, CodeInvalidRequest
	default:
		// ca.ErrLint and anything unexpected: our fault, not the client's.
		e.status, e.code, e.msg = http.StatusInternalServerError, CodeInternal, "internal error"
	}
	return e
}
