// Package crl produces jpkica's certificate revocation lists: a streaming
// DER encoder, partitions per issuing municipality, delta CRLs, the checks
// every CRL passes before publication, the updater that schedules them, and
// the HTTP publisher.
//
// # RFC 5280 sections implemented
//
//   - 5.1: CertificateList, TBSCertList v2, signatureAlgorithm (RSA PKCS#1
//     v1.5 with SHA-256/384/512, ECDSA; Ed25519 cannot sign a streamed
//     digest and is refused), thisUpdate and nextUpdate as UTCTime through
//     2049 and GeneralizedTime after (5.1.2.4-5), revokedCertificates in
//     strictly increasing serial order, omitted when empty (5.1.2.6).
//   - 5.2.1 authorityKeyIdentifier (the issuer's SKI), 5.2.3 cRLNumber,
//     5.2.4 deltaCRLIndicator (critical), 5.2.5 issuingDistributionPoint
//     (critical; fullName URI and onlyContainsUserCerts), 5.2.6 freshestCRL;
//     and expiredCertsOnCRL (X.509 (2019), 2.5.29.60) when expired
//     certificates are kept.
//   - 5.3.1 reasonCode, omitted for unspecified as crypto/x509 does;
//     certificateHold is written like any other reason.
//
// Extensions appear in crypto/x509's order (authorityKeyIdentifier,
// cRLNumber, then the rest), so for the same input a CRL is byte-for-byte
// what x509.CreateRevocationList makes; the tests compare them.
//
// # Streaming
//
// DER puts lengths in front, and the signature covers the TBSCertList that
// begins with them. Encode reads the Source once, encoding every entry as it
// arrives into a spool (memory up to a few MiB, then an unlinked temporary
// file) while summing sizes; then every length is known. For RSA, whose
// signature length is the modulus', the header, spool and extensions are
// written to the output and hashed in one pass, signed once through the
// crypto.Signer, and the signature appended; for ECDSA, whose signatures
// vary in length, hashing and writing are two passes over the spool.
// Reading the Source once matters: it is a database query over millions of
// rows, and a second query could see a different set of rows. Memory does
// not depend on the number of entries; disk needs the size of the entries
// once more, in the spool.
// ReadBack parses a CRL the same way, hashing the TBSCertList in the blocks it
// reads and parsing entries in place.
//
// # Scope
//
// An issuer (each generation of each card type) has one CRL per issuing
// municipality (Updater.Partitions: the configured municipalities, and any
// other that a revoked certificate names, since a certificate names its
// partition for life), at BaseURL/<issuer>/<municipality>.crl, the URL that
// ca.Profiles writes into the certificates' CRL distribution point, with an
// issuingDistributionPoint naming that URL; and one full CRL at
// BaseURL/<issuer>/full.crl without issuingDistributionPoint: a full CRL
// with an IDP of its own URL would be out of scope for every certificate
// (RFC 5280 6.3.3 (b)(2)(i): none names it), and relying parties such as
// OpenSSL would refuse it. Delta CRLs live at <name>-delta.crl, share the
// numbering of their complete CRL (5.2.3), carry its IDP, and list what
// changed since the base was read (the store's change sequence); complete
// CRLs name them in freshestCRL. Entries leave the CRLs once their
// certificate expires, unless Config.KeepExpired.
//
// Updater.Run publishes a complete CRL every Config.Interval, valid for
// Interval plus Config.Overlap, and, with Config.DeltaInterval set, a delta
// CRL every DeltaInterval and within Config.DeltaDelay (and one Config.Tick)
// of a revocation or hold in its scope: revocations, not issuance, make a
// delta due. Each published CRL records its change mark (the last
// revocation it includes, by sequence number and certificate); when the
// store no longer holds that certificate at that number (a failover that
// lost transactions), RunDue makes every CRL again, complete ones first.
//
// # Checks and publication
//
// Before a CRL is published it is read back from disk: the signature is
// verified against the issuer certificate, the content must be what was
// asked, the number above the last published one and the IDP unchanged, and
// zlint (lint.CRL) runs on the whole CRL up to Config.LintMaxBytes and on
// a bounded sample above (zcrypto parses a CRL whole, in memory). A CRL that
// fails is deleted, never published; the error is a *CheckError naming the
// check that failed (find it with errors.As; errors.Is matches ErrCheck), is
// logged at error level and counted in jpkica_crl_check_failures_total with
// that name as its check label. Published CRLs are renamed into place after
// fsync, under a directory lock that repeats the number and scope checks,
// with a JSON record of what was published beside them.
//
// # Interfaces and errors
//
// The Updater reads and writes through Store, the small interfaces Lister,
// ChangeFeed, Numberer, Partitioner and Auditor together (store.Store
// satisfies it); Encode reads one CRL's entries from a Source. Errors wrap
// the package's sentinels, matched with errors.Is: ErrInvalid for a Spec,
// Config or scope that cannot be used, ErrEntryOrder for a Source out of
// serial order, ErrUnsupportedKey and ErrSigner for the signer, ErrMalformed
// for a CRL ReadBack refuses, ErrNoBase for a delta without a published
// complete CRL, and ErrCheck (a *CheckError) for a refused publication.
//
// # Concurrency
//
// Encode and ReadBack are safe to call concurrently. An Updater is safe for
// concurrent use and generates one CRL at a time. Several processes (`serve
// --role crl` on several nodes) may run updaters on one store: CRL numbers
// come from the store and strictly increase per issuer and partition; to
// publish into one directory they must share a file system with working
// flock, else each node publishes into its own. The HTTP handler only reads
// files, and sees the old CRL or the new one, never a partial one.
//
// This package imports net/http only in publisher.go.
package crl
