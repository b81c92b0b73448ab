// Package ca holds the JPKI rules and the certificate profiles of jpkica's
// certificate authority, the issuance that applies them (Authority), and
// the lifecycle rules around it (Lifecycle).
//
// # What it implements
//
//   - Validity (NotAfter, Renewing, RenewalOpens): notAfter is 23:59:59 JST
//     on the holder's 5th birthday strictly after the issuance date in Japan,
//     or the 6th when the issuance renews the resident's current certificate
//     of the type inside its renewal window, capped by the card's expiry and,
//     for a signature certificate, by the user-authentication certificate's
//     notAfter. Born on 29 February: 28 February in common years
//     (BirthdayIn, the only place that decides it).
//   - Cards and keys (Issuance.Plan): a card holds one resident's
//     certificates (ErrCardInUse), keeps its expiry while in use
//     (ErrCardExpiry), and a key is certified for one card (ErrKeyReused).
//     Plan also names what an issuance supersedes, within what a counter's
//     municipality issued.
//   - Eligibility (CheckEligibility): a signature certificate needs age 15
//     (Japanese age rule, AgeOn) and no adult guardianship.
//   - The 4 facts (Facts, EncodedFacts): the subjectAltName otherNames
//     1.2.392.200149.8.5.5.1-6, with the substitute character 〓 and its map
//     for characters outside JIS X 0208 levels 1-2 and JIS X 0212, and the
//     era-digit birth date.
//   - Profiles (NewProfiles, Profiles.Template, IssuerTemplate,
//     ResponderTemplate, ClientCATemplate, ClientTemplate): x509.Certificate
//     templates for x509.CreateCertificate (RFC 5280 4.2.1; RFC 6960
//     4.2.2.2 for responders). A card certificate's extensions are all
//     encoded here, in the form and order of the real J-LIS certificate
//     (testdata/jpki-user-auth-2019.pem): the critical certificate policies,
//     the 4 facts' otherNames, J-LIS's issuerAltName, a CRL distribution
//     point named by its URL and by the partition's directory name, and an
//     AKI with the issuer's name and serial beside its key identifier.
//     ProfileConfig can set the last three back to shorter forms.
//   - Lifecycle (Lifecycle, EventRule): resident register events, loss
//     holds, revocations, proxy applications, counter issuance and renewal
//     notices (DOMAIN.md); a resident reported deceased or removed gets no
//     new certificate until a Registered event (ErrResidentGone).
//   - Serial numbers (NewSerial): 126 random bits, a positive 16-octet
//     INTEGER (RFC 5280 4.1.2.2).
//   - Pre-issuance linting (Lint; SignCertificate signs only what passed),
//     through a Linter the caller passes in (package lint's: zlint v3's
//     lints of the standards JPKI follows, not the web PKI's, and the
//     Fermat check of the subject key): on the TBSCertificate the issuer
//     key is to sign, with a placeholder signature, or on a self-signed
//     template signed by one of the linter's throwaway keys. This package
//     does not import the linter, so that a client that uses its rules (the
//     counter) links no zlint.
//
// # Time, randomness, concurrency
//
// Nothing here reads the process clock: times come in through request
// structs, and the Authority and the Lifecycle call the Clock their Deps
// give. Randomness comes in as an io.Reader; package lint's throwaway keys
// and their signatures, which never leave the process, are its own. The
// functions are pure, Profiles is immutable once NewProfiles returns, and
// Authority and Lifecycle are safe for concurrent use, so everything here
// is. They reach the system of record through Store and LifecycleStore, and
// tell committed status changes to a StatusListener (the OCSP pre-signer),
// interfaces defined here that store.Store and ocsp.Presigner satisfy.
//
// # Errors
//
// Errors wrap the package's sentinels; match them with errors.Is:
// ErrInvalid; ErrNotEligible and its reasons ErrUnderAge,
// ErrAdultGuardianship, ErrResidentGone and ErrKeyReused; ErrConflict and
// its ErrCardInUse, ErrCardExpiry and ErrProxyAnswerUsed; ErrNotFound;
// ErrIssuerExpiring, for a certificate that would outlive its issuer
// generation; ErrUnavailable, for a key store or database that is down
// (safe to retry); and ErrLint, what a Linter's finding becomes, with
// ErrWeakKey as well when the finding is a weak subject key (the linter's
// own error stays in the chain).
package ca
