// Package ocsp is jpkica's OCSP responder: request decoding, response
// encoding, pre-signing, an in-memory response cache built for hundreds of
// millions of certificates, and the HTTP responder, as a net/http handler
// and as a fasthttp server for a listener of its own.
//
// # What it implements
//
//   - RFC 6960 section 4.1 (OCSPRequest): decoded with cryptobyte by
//     ParseRequest; CertIDs hashed with SHA-1 or SHA-256, up to
//     Config.MaxCertsPerRequest per request; requestor names, request
//     signatures and unknown extensions are ignored.
//   - RFC 6960 section 4.2 (OCSPResponse, BasicOCSPResponse): encoded here,
//     because golang.org/x/crypto/ocsp cannot write response extensions.
//     ResponderID is byKey; each SingleResponse carries thisUpdate and
//     nextUpdate; revoked answers carry the revocation time and CRLReason
//     (certificateHold for a held certificate); serials this CA never issued
//     are answered unknown. Responses are signed by the issuer's delegated
//     responder (section 4.2.2.2, certificate included in the response) or by
//     the issuer itself, with sha256WithRSAEncryption (RSA keys),
//     ecdsa-with-SHA256 (P-256) or ecdsa-with-SHA384 (P-384).
//   - RFC 6960 section 2.3 and appendix A.1, RFC 5019: GET with the base64
//     request in the path (URL-escaped or not) and POST; HEAD; the
//     unsuccessful statuses malformedRequest, unauthorized, tryLater and
//     internalError; RFC 5019 section 6 cache headers and ETag/If-None-Match.
//   - RFC 8954 nonces: ignored by default (pre-signed responses stay
//     cacheable), or echoed in a freshly signed response (NonceEcho).
//
// An issuer is matched by key hash and name hash: all generations of an
// issuer share one name and differ by key.
//
// A delegated responder renewed while the Presigner runs (SetResponder)
// signs from then on. Each cached response is served with the
// certificate of the responder that signed it (matched by its
// ResponderID), so responses signed before the renewal still verify until
// the refresh re-signs them; IssuerConfig.Replaced does the same for the
// stored responses a restarted process takes back.
//
// # Pre-signing
//
// A Presigner keeps a signed response for every live certificate: at start
// it takes back the stored responses that are still valid and still say
// what the store says (Deps.Responses, optional; every pre-signed response
// is written back to it by one background writer), then streams every
// status from its Source (in pages) and signs what is missing, and it signs new
// certificates and status changes at once (it is the Authority's
// ca.StatusListener, and it polls the Source's change_seq every
// Config.PollInterval, which also carries changes made by other nodes;
// before each poll it checks that the store still holds the newest change
// it saw, and when a failover took it away it drops its cache and loads
// every status again, jpkica_ocsp_resyncs_total),
// and re-signs every response between 1/2 and 3/4 of its validity, spread by
// serial. Signing runs on Config.Workers goroutines; status changes go
// before bulk work. A cache miss (a certificate issued elsewhere a moment
// ago) reads the Source and signs on demand, once per serial at a time and at
// most Config.MaxInFlight at once. When signing fails, a response still
// within its nextUpdate keeps being served if the certificate's status has
// not changed; a response whose status has changed (a revocation during an
// HSM outage) is withdrawn, failing closed, and the answer is tryLater until
// the new status is signed (jpkica_ocsp_withdrawn_total,
// jpkica_ocsp_withdrawn_answers_total); with no response, tryLater too.
// SHA-1 CertID responses (RFC 5019) are kept for every
// certificate; SHA-256 ones from the first request that asks for them.
//
// # Concurrency
//
// Cache, Presigner and Responder are safe for concurrent use. A Presigner's
// Run must be called once; Answer, Lookup, StatusChanged and SetResponder
// may be called before, during and after it. StatusChanged never blocks. Signers are
// called from several goroutines at once (crypto.Signer implementations of
// the hsm package allow it; PKCS #11 signers are given the context through
// SignContext).
//
// # Errors
//
// Errors wrap the package's sentinels, matched with errors.Is:
// ErrMalformed and ErrUnsupportedHash for a request ParseRequest refuses,
// ErrUnauthorized for an issuer not served here, ErrUnavailable when no
// valid response can be had now (safe to retry), and ErrInvalid for a
// configuration NewPresigner refuses. Only the Responder turns them into
// OCSP response statuses.
//
// Only the responder's two files import net/http: responder.go
// (ServeHTTP, Guard) and responder_fasthttp.go (FastHandler and
// NewFastServer, which borrow its method names); that file and linger.go
// (FastServer's closing of a connection) import fasthttp. The clock and
// the random source are injected; the package never reads the process
// clock to sign.
package ocsp
