package ocsp

import "errors"

// Sentinel errors of the ocsp package; match them with errors.Is. Only the
// Responder turns them into OCSP response statuses.
var (
	// ErrMalformed: the request is not a DER OCSPRequest (RFC 6960 4.1.1),
	// has trailing data, no CertID, or more CertIDs than allowed.
	ErrMalformed = errors.New("ocsp: malformed request")
	// ErrUnsupportedHash: a CertID uses a hash other than SHA-1 or SHA-256.
	ErrUnsupportedHash = errors.New("ocsp: unsupported CertID hash algorithm")
	// ErrUnauthorized: a CertID names an issuer this responder does not serve.
	ErrUnauthorized = errors.New("ocsp: issuer not served here")
	// ErrUnavailable: no valid response can be produced now (signing or the
	// store failed, or too many signings are in flight); safe to retry.
	ErrUnavailable = errors.New("ocsp: temporarily unable to answer")
	// ErrInvalid: a configuration or an argument is unusable.
	ErrInvalid = errors.New("ocsp: invalid configuration")
)
