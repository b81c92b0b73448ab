// Package lint runs zlint v3 on jpkica's certificates and CRLs, before an
// issuer key signs them (as Boulder lints before issuance) and when they are
// read back, and stands in for zlint's Fermat factorisation lint with a
// check of its own. It knows nothing of the JPKI profiles: package ca
// builds what is linted and package crl lints what it publishes.
//
// # What it runs
//
// The lints of the standards JPKI's certificates and CRLs follow: RFC 5280
// with RFC 3279, 5480 and 8813 for keys and signatures and RFC 5891 for
// names, and zlint's community lints. Not the rulebooks of other PKIs: the
// CA/B Forum's requirements, the Apple, Chrome and Mozilla root store
// policies, ETSI's and RFC 6962's govern the web PKI or the EU's qualified
// certificates, and JPKI's profile contradicts them (lintSources, in
// lint.go, says where).
// zlint's e_rsa_fermat_factorization runs as fermatFactors: the same
// answer with zlint's 100 rounds, held to zlint's lint by the tests.
//
//   - Certificate lints a DER certificate: a TBSCertificate with a
//     placeholder signature (package ca builds one under the issuer, so that
//     the bytes linted are the bytes its issuer key signs), or a finished
//     certificate read back from the store.
//   - SelfSigned lints a self-signed template (a root, the client CA),
//     signed by a throwaway key of its key's type.
//   - CRL lints a DER CRL, signed for real or with a throwaway key (package
//     crl lints a sample of a CRL too large to parse whole).
//
// Signatures are not checked here; package ca checks each signature its
// issuer key makes, and package crl each CRL's.
//
// # Concurrency and randomness
//
// Every function is safe for concurrent use. The filtered zlint registry is
// built once, on first use, and only read afterwards. The throwaway keys are
// made once, on first use, from crypto/rand, as are their signatures; none
// of them leaves the process.
//
// # Errors
//
// Findings of error or fatal status, and input zcrypto cannot parse, wrap
// ErrFailed and name the lints (a finding's details, never a key's
// factors). A subject key that Fermat's method factors wraps ErrWeakKey as
// well, and its error has a method WeakKey() bool that returns true. A
// template SelfSigned cannot lint (no public key, or a key other than RSA,
// ECDSA P-256 or P-384) wraps ErrUnsupported. Match them with errors.Is.
//
// Linter carries Certificate and SelfSigned as package ca's Linter, which
// the Authority and the key ceremony are given: ca does not import this
// package, and turns its errors into ca.ErrLint, and ca.ErrWeakKey by
// WeakKey.
package lint
