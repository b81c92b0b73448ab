// Package api is jpkica's counter-facing /v1 HTTP API (API.md): issuance,
// reads, revocation, loss holds, resident register events, proxy
// applications, renewal notices and, for admin, the audit log.
//
// # Identities
//
// Every call is made over TLS with a client certificate signed by jpkica's
// client CA. Its subject Organization names the role (counter, register,
// lossline, admin) and, for a counter, OrganizationalUnit its six-digit
// municipality code. The API verifies the chain at its own clock and looks
// the certificate up in the store (type terminal): a missing, unknown,
// expired, revoked or held certificate is 401, a role or municipality that
// may not make the call 403, and nothing changes. The check is cached per
// certificate for Config.IdentityCacheTTL. Within
// Config.TerminalExpiryNotice of its certificate's expiry, a terminal gets
// wire.HeaderTerminalExpires on every answer, refusals included. Each
// terminal (its role, municipality and name, so that a renewed certificate
// shares the limit) may make Config.RateLimit calls a second, in bursts of
// Config.RateBurst; past that, 429 rate_limited with Retry-After.
//
// The server certificate comes from ServerCerts: made in memory, certified
// by the client CA for the names counters use, and renewed after two thirds
// of its validity while the listener runs.
//
// # Errors
//
// Errors are {"error": {"code": "...", "message": "..."}} with the
// wire.Code* constants; this package is the only one that turns the ca and hsm
// sentinels into HTTP statuses (see classify). A 503 (the key store or the
// database unavailable, or neither answering in time) says which of the
// two is down when it knows, and carries
// Retry-After (1 s, or the time until the key store's next attempt to come
// back when it knows, up to 60 s); what went wrong inside (key and token labels, PKCS #11 and
// SQL errors) goes to the log, not to the client. A key store whose token
// refused the PIN (hsm.ErrLogin) has stopped trying so as not to lock it:
// that 503 is wire.CodeHSMLoginRefused, without Retry-After, because no
// retry succeeds until an operator acts. A 500 says only
// "internal error". A certificate that would outlive its issuer generation
// (ca.ErrIssuerExpiring) is a 503 that says a new generation is needed. A
// card key that passes the CSR's checks (RSA-2048,
// e = 65537, a valid signature) but that the pre-issuance lint's Fermat
// check factors (ca.ErrWeakKey) is 400 invalid_card_key like the others:
// the card must make a new key; it is logged and counted
// (jpkica_api_weak_card_keys_total).
//
// # Input
//
// The bodies, answers, codes and header names are package wire's, the leaf
// that clients import instead of this package. Bodies are one JSON object
// read by wire.Decode (UTF-8 only, no lone surrogates, no key twice, no
// unknown fields), at most Config.MaxBodyBytes (413 above); messages name
// the JSON's fields, never Go types. Issuance needs an Idempotency-Key
// header; the request hash is SHA-256 over the decoded body encoded again,
// so the same key and body return the same certificate and the same key
// with another body is 409.
//
// # Cards and municipalities
//
// A counter acts for its own municipality's residents only, and an
// issuance supersedes only what that municipality issued
// (ca.Issuance.Plan); a card that holds another resident's live
// certificate is 409 card_in_use, a reused card key 422 card_key_reused.
// A counter's lists by card or resident show its own municipality's
// certificates, and an ID that another municipality holds answers as one
// nobody holds.
//
// # Concurrency
//
// An *API is safe for concurrent use. Every state change is committed by the
// store with its audit entries in one transaction, then told to the
// StatusListener (the OCSP pre-signer).
package api
