package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
)

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
	case errors.Is(err, hsm.ErrLogin):
		// Checked before ErrUnavailable, which it comes with: the key
		// store has stopped trying, so as not to lock the token.
		e.status, e.code, e.msg = http.StatusServiceUnavailable, wire.CodeHSMLoginRefused,
			"the key store's token refused the PIN; an operator must act before any retry can succeed"
	case errors.Is(err, hsm.ErrUnavailable):
		e.status, e.code, e.msg = http.StatusServiceUnavailable, wire.CodeUnavailable, "the key store is unavailable; safe to retry"
	case errors.Is(err, ca.ErrUnavailable):
		e.status, e.code, e.msg = http.StatusServiceUnavailable, wire.CodeUnavailable, "the database is unavailable; safe to retry"
	case errors.Is(err, context.DeadlineExceeded):
		e.status, e.code, e.msg = http.StatusServiceUnavailable, wire.CodeUnavailable,
			"the key store or the database did not answer in time; safe to retry"
	case errors.Is(err, ca.ErrIssuerExpiring):
		e.status, e.code, e.msg = http.StatusServiceUnavailable, wire.CodeUnavailable,
			"the CA cannot issue this certificate: its issuer generation expires first; the PKI administrators must add a new generation"
	case errors.Is(err, ca.ErrWeakKey):
		// Found by the lint, after the CSR's own checks: the card's chip
		// made a key that Fermat's method factors. Only a new key helps.
		e.status, e.code, e.msg = http.StatusBadRequest, wire.CodeInvalidCardKey,
			"the card's key is weak (Fermat's method factors its modulus): make a new key pair on the card"
	case errors.Is(err, ca.ErrCardInUse):
		e.status, e.code = http.StatusConflict, wire.CodeCardInUse
	case errors.Is(err, ca.ErrCardExpiry):
		e.status, e.code = http.StatusConflict, wire.CodeCardExpiryMismatch
	case errors.Is(err, ca.ErrKeyReused):
		e.status, e.code, e.msg = http.StatusUnprocessableEntity, wire.CodeCardKeyReused,
			"the card's public key is already certified for another card or resident: a cloned card or a wrong CSR"
	case errors.Is(err, ca.ErrNotEligible):
		e.status, e.code = http.StatusUnprocessableEntity, wire.CodeNotEligible
	case errors.Is(err, ca.ErrNotFound):
		e.status, e.code = http.StatusNotFound, wire.CodeNotFound
	case errors.Is(err, ca.ErrConflict):
		e.status, e.code = http.StatusConflict, conflictCode
	case errors.Is(err, ca.ErrInvalid):
		e.status, e.code = http.StatusBadRequest, wire.CodeInvalidRequest
	default:
		// ca.ErrLint and anything unexpected: our fault, not the client's.
		e.status, e.code, e.msg = http.StatusInternalServerError, wire.CodeInternal, "internal error"
	}
	return e
}
