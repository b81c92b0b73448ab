// Package hsm keeps jpkica's private keys and hands them out as
// crypto.Signer. It is the only package in jpkica that knows PKCS #11.
//
// Two key stores implement KeyStore:
//
//   - PKCS11: keys in a token reached through a PKCS #11 module
//     (github.com/miekg/pkcs11): a hardware HSM in production, SoftHSM2 in
//     tests and small installations.
//   - Software: PEM PKCS #8 files in a directory. NOT FOR PRODUCTION; for
//     development and tests only.
//
// Keys are named by label (CKA_LABEL). Configuration may name a token or
// key with an RFC 7512 PKCS #11 URI; ParseURI reads the subset jpkica uses.
//
// # Signatures
//
// Signers accept digests, as crypto.Signer does:
//
//   - RSA PKCS #1 v1.5 (RFC 8017 section 8.2) with crypto.SHA256 (the JPKI
//     algorithm) or another SHA-2 hash (or SHA-1, for old profiles):
//     CKM_RSA_PKCS over a DigestInfo built by this package.
//   - RSASSA-PSS (RFC 8017 section 8.1) when opts is *rsa.PSSOptions:
//     CKM_RSA_PKCS_PSS with MGF1 over the same hash and a salt as long as the
//     hash (rsa.PSSSaltLengthEqualsHash or rsa.PSSSaltLengthAuto) or of the
//     given length.
//   - ECDSA P-256: CKM_ECDSA; the token's r||s is returned as the ASN.1
//     ECDSA-Sig-Value Go expects (RFC 5480 section 2.2, SEC 1).
//
// Keys generated in a token are token objects with a random CKA_ID shared by
// the pair; the private key is CKA_PRIVATE, CKA_SENSITIVE, not
// CKA_EXTRACTABLE, and CKA_SIGN only: CKA_DECRYPT, and where the token
// allows them CKA_UNWRAP and CKA_DERIVE, are false. RSA keys are 2048 bits
// with e = 65537.
//
// # Sessions and concurrency
//
// A *PKCS11, its methods and every signer it returns are safe for
// concurrent use by any number of goroutines. Signers hold no session:
// each signature borrows a logged-in session from the store's pool and
// returns it when done, so a signer stays valid across re-initialisations
// of the module and is cheap to keep for the life of the process.
//
// The pool opens at most PKCS11Config.MaxSessions sessions
// (DefaultMaxSessions), lazily, and keeps them open. A signature that finds
// them all busy waits for one: Sign waits at most
// PKCS11Config.AcquireTimeout (DefaultAcquireTimeout);
// SignContext (on the Signer interface, which the signers of both stores
// implement) waits no longer than its context allows (AcquireTimeout when
// the context has no deadline). A wait that runs out fails with an error
// wrapping ErrUnavailable (and the context's error). The PKCS #11 call
// itself cannot be interrupted once started.
//
// The signing calls (C_SignInit and C_Sign) run on the signing goroutine's
// own thread while the Go scheduler has a P to spare, and otherwise on C
// threads of the store's own, one per session, while the goroutine waits
// holding no P: a cgo call keeps its P until the runtime's monitor thread
// hands it on. signthreads.go says why both ways exist; docs/benchmarks.md
// (issuance through the /v1 API, session 4) has what each costs. The
// threads reach the module through its own function list (C_GetFunctionList
// of the same library). Stats counts the calls made each way.
//
// Login state in PKCS #11 belongs to the application and token, not to the
// session: the first session logs in (CKR_USER_ALREADY_LOGGED_IN counts as
// success) and later sessions find themselves logged in. Object handles of
// keys are cached per signer and found again (by CKA_LABEL and CKA_ID)
// after a re-initialisation or an invalid-handle error.
//
// The module is process-wide state (C_Initialize/C_Finalize affect every
// user of the library in the process): open each module at most once per
// process, and Close the store to finalise it.
//
// # Failures and recovery
//
// When a call fails with a session-level error (CKR_SESSION_HANDLE_INVALID,
// CKR_SESSION_CLOSED, CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID,
// CKR_USER_NOT_LOGGED_IN, ...) the session is closed and dropped from the
// pool, and the operation is tried once more on another session.
//
// When it fails with a module- or token-level error
// (CKR_CRYPTOKI_NOT_INITIALIZED, CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED,
// CKR_TOKEN_NOT_PRESENT, CKR_GENERAL_ERROR, ...), or a key that was there
// is gone and the token no longer answers C_GetTokenInfo, the store
// re-initialises the module without a restart: one goroutine waits for the
// signatures in flight to finish, calls C_Finalize and C_Initialize, finds
// the slot again by token label, logs in again, and the signers find their
// keys again. Callers that arrive meanwhile wait for that attempt (within
// their deadline), and the failed operation is tried once more afterwards,
// so a module that comes straight back costs callers nothing.
//
// If the attempt fails (the token is absent, say), the store stays down and
// tries again with exponential backoff, from 50 ms up to
// PKCS11Config.MaxReinitBackoff (DefaultMaxReinitBackoff). While it is
// down, every signature, Ping and lookup fails at once with an error wrapping
// ErrUnavailable; nothing hangs waiting for the token. RetryAfter reads
// from such an error how long until the next attempt (the API's 503 passes
// it on as Retry-After). When the token returns, the same *PKCS11 and the
// same signers work again.
//
// A refused PIN (CKR_PIN_INCORRECT, CKR_PIN_LOCKED, ...) is never retried,
// so that the store cannot lock the token: OpenPKCS11 fails with ErrLogin,
// and a store that meets it while recovering stays down until restarted.
// Its errors then wrap ErrLogin as well as ErrUnavailable, carry no retry
// time (RetryAfter is not ok), and Stats.LoginRefused is true: callers must
// not present this as an outage that retrying gets past.
//
// Close waits for the signatures in flight, stops recovery, and finalises
// the module; signers then fail with ErrUnavailable.
//
// # Errors
//
// Errors wrap the package's sentinels, matched with errors.Is:
// ErrKeyNotFound and ErrKeyExists for a label, ErrUnavailable for a store
// that cannot sign now (RetryAfter reads, from one that is down between
// re-initialisation attempts, how long until the next), ErrLogin for a refused PIN, ErrUnsupported for an
// algorithm, hash or option this package does not implement, and
// ErrInvalidRequest for a malformed argument or configuration.
//
// # Secrets
//
// The PIN is given to C_Login and nothing else. It never appears in an
// error or a log line; PKCS11Config's String and LogValue leave it out.
package hsm
