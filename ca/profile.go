package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"maps"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Certificate policy OIDs of the two card certificates (DOMAIN.md).
var (
	OIDPolicySignature      = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 1, 1, 20}
	OIDPolicyAuthentication = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 1, 3, 30}
)

var (
	oidCountry        = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidLocality       = asn1.ObjectIdentifier{2, 5, 4, 7}
	oidOrganization   = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOrgUnit        = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidCommonName     = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtSAN         = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtIAN         = asn1.ObjectIdentifier{2, 5, 29, 18}
	oidExtPolicies    = asn1.ObjectIdentifier{2, 5, 29, 32}
	oidExtCRLDP       = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidExtAIA         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidExtAKI         = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtSKI         = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidEKUClientAuth  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
	oidAccessOCSP     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1}
	oidQualifierCPS   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 2, 1}
	oidExtOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
	jlisName          = "Japan Agency for Local Authority Information Systems"
	issuerUnits       = map[CertType]string{Signature: "JPKI for digital signature", Authentication: "JPKI for user authentication"}
	// The issuerAltName of the card certificates: J-LIS's issuer names in
	// Japanese, as the reference certificate's issuerAltName spells them
	// (the signature unit, 署名用, by the same pattern: reference/ holds no
	// signature certificate).
	jpkiNameJa          = "公的個人認証サービス"
	jlisNameJa          = "地方公共団体情報システム機構"
	issuerAltUnits      = map[CertType]string{Signature: jpkiNameJa + "署名用", Authentication: jpkiNameJa + "利用者証明用"}
	subjectIDPattern    = regexp.MustCompile(`^[0-9A-Z]{1,64}$`)
	issuerIDPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	municipalityPattern = regexp.MustCompile(`^[0-9]{6}$`)
	romajiPattern       = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9 '.-]{0,63}$`)
	rolePattern         = regexp.MustCompile(`^[a-z]{1,32}$`)
)

// OpaqueIDLen is the length of an authentication certificate's subject CN,
// as in the reference certificate (CN=840444E37PAFHN08220003A).
const OpaqueIDLen = 23

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// NewSubjectID draws a subject CN of OpaqueIDLen characters of [0-9A-Z],
// uniformly (about 119 bits) from rand. It serves as the authentication
// certificate's opaque ID and as the signature certificate's issuance ID;
// it carries nothing about the resident.
func NewSubjectID(rand io.Reader) (string, error) {
	out := make([]byte, 0, OpaqueIDLen)
	buf := make([]byte, 32)
	for len(out) < OpaqueIDLen {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return "", fmt.Errorf("drawing subject ID: %w", err)
		}
		for _, b := range buf {
			// 252 = 7*36: reject the top 4 values so every symbol is equally likely.
			if b < 252 && len(out) < OpaqueIDLen {
				out = append(out, idAlphabet[b%36])
			}
		}
	}
	return string(out), nil
}

// Municipality names a local government in romaji, as the signature
// certificate's subject and the CRL directory name carry it.
type Municipality struct {
	Prefecture string // e.g. "Wakayama-ken"
	Name       string // e.g. "Wakayama-shi"
}

// ValidMunicipalityCode reports whether code is a six-digit local government
// code with a correct check digit (the sixth digit: 11 minus the weighted sum
// of the first five, weights 6 to 2, modulo 11, last digit).
func ValidMunicipalityCode(code string) bool {
	if !municipalityPattern.MatchString(code) {
		return false
	}
	sum := 0
	for i := range 5 {
		sum += int(code[i]-'0') * (6 - i)
	}
	return int(code[5]-'0') == (11-sum%11)%10
}

// ProfileConfig is the configuration of the certificate profiles. It is
// validated once by NewProfiles.
type ProfileConfig struct {
	// OCSPURL goes into AIA (id-ad-ocsp) of both card certificates.
	OCSPURL string
	// CRLBaseURL: each card certificate names the CRL of its issuer and
	// issuing municipality, CRLBaseURL + "/" + issuer ID + "/" +
	// municipality code + ".crl".
	CRLBaseURL string
	// CPS qualifiers of the two certificate policies.
	SignatureCPSURL      string
	AuthenticationCPSURL string
	// SignatureExtKeyUsage lists dotted extKeyUsage OIDs for the signature
	// certificate (DOMAIN.md: unconfirmed). Empty: no extKeyUsage extension.
	SignatureExtKeyUsage []string
	// Municipalities maps six-digit local government codes to their romaji.
	Municipalities map[string]Municipality

	// The zero value of the three switches below is the form of the real
	// J-LIS certificate (testdata/jpki-user-auth-2019.pem); each one sets
	// an extension back to the shorter form jpkica wrote before.

	// OmitIssuerAltName leaves out the issuerAltName, J-LIS's directory
	// name of the issuer in Japanese: C=JP, O=公的個人認証サービス,
	// OU=公的個人認証サービス署名用 | 公的個人認証サービス利用者証明用,
	// OU=地方公共団体情報システム機構.
	OmitIssuerAltName bool
	// OmitCRLDirectoryName names the CRL distribution point by its HTTP
	// URL alone, without J-LIS's directory name of the municipality's
	// partition: C=JP, O=JPKI, OU=<the issuer's unit>, OU=CRL
	// Distribution Points, OU=<prefecture romaji>, CN=<municipality
	// romaji> CRLDP.
	OmitCRLDirectoryName bool
	// AKIKeyIDOnly writes the authorityKeyIdentifier as the issuer's key
	// identifier alone, without authorityCertIssuer and
	// authorityCertSerialNumber (the issuer certificate's subject and
	// serial).
	AKIKeyIDOnly bool
}

// Profiles builds certificate templates. It is immutable and safe for
// concurrent use.
type Profiles struct {
	ocspURL         string
	crlBaseURL      string
	cps             map[CertType]string
	sigEKU          []asn1.ObjectIdentifier
	munis           map[string]Municipality
	issuerAltName   bool
	crlDirName      bool
	akiIssuerSerial bool
}

// ubCommonName is the upper bound of a commonName (RFC 5280 appendix A.1).
// The CN of a CRL directory name is the municipality's romaji and
// crlDPSuffix.
const (
	ubCommonName = 64
	crlDPSuffix  = " CRLDP"
)

// NewProfiles validates cfg. Errors wrap ErrInvalid.
func NewProfiles(cfg ProfileConfig) (*Profiles, error) {
	for name, u := range map[string]string{
		"OCSP URL": cfg.OCSPURL, "CRL base URL": cfg.CRLBaseURL,
		"signature CPS URL": cfg.SignatureCPSURL, "authentication CPS URL": cfg.AuthenticationCPSURL,
	} {
		if err := checkURL(u); err != nil {
			return nil, fmt.Errorf("%w: profiles: %s %q: %v", ErrInvalid, name, u, err)
		}
	}
	p := &Profiles{
		ocspURL:    cfg.OCSPURL,
		crlBaseURL: strings.TrimRight(cfg.CRLBaseURL, "/"),
		cps:        map[CertType]string{Signature: cfg.SignatureCPSURL, Authentication: cfg.AuthenticationCPSURL},
		munis:      maps.Clone(cfg.Municipalities),
		// The switches are negative so that the zero value is J-LIS's form.
		issuerAltName:   !cfg.OmitIssuerAltName,
		crlDirName:      !cfg.OmitCRLDirectoryName,
		akiIssuerSerial: !cfg.AKIKeyIDOnly,
	}
	for _, s := range cfg.SignatureExtKeyUsage {
		oid, err := parseOID(s)
		if err != nil {
			return nil, fmt.Errorf("%w: profiles: signature extKeyUsage %q", ErrInvalid, s)
		}
		p.sigEKU = append(p.sigEKU, oid)
	}
	if len(p.munis) == 0 {
		return nil, fmt.Errorf("%w: profiles: no municipalities", ErrInvalid)
	}
	for code, m := range p.munis {
		if !ValidMunicipalityCode(code) {
			return nil, fmt.Errorf("%w: profiles: municipality code %q", ErrInvalid, code)
		}
		if !romajiPattern.MatchString(m.Prefecture) || !romajiPattern.MatchString(m.Name) {
			return nil, fmt.Errorf("%w: profiles: municipality %s: romaji %q, %q", ErrInvalid, code, m.Prefecture, m.Name)
		}
		if p.crlDirName && len(m.Name+crlDPSuffix) > ubCommonName {
			return nil, fmt.Errorf("%w: profiles: municipality %s: %q is too long for the CRL directory name's CN (%d characters with %q)",
				ErrInvalid, code, m.Name, ubCommonName, crlDPSuffix)
		}
	}
	return p, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("want an absolute http or https URL")
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("not printable ASCII")
		}
	}
	return nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	if _, err := x509.ParseOID(s); err != nil {
		return nil, err
	}
	var oid asn1.ObjectIdentifier
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, err
		}
		oid = append(oid, n)
	}
	return oid, nil
}

// Municipality looks up a municipality by code: ErrNotFound for an unknown
// code.
func (p *Profiles) Municipality(code string) (Municipality, error) {
	m, ok := p.munis[code]
	if !ok {
		return Municipality{}, fmt.Errorf("%w: municipality %q", ErrNotFound, code)
	}
	return m, nil
}

// CRLURL is the HTTP CRL distribution point of an issuer's partition for a
// municipality.
func (p *Profiles) CRLURL(issuerID, municipality string) string {
	return p.crlBaseURL + "/" + issuerID + "/" + municipality + ".crl"
}

// TemplateRequest is one card certificate to build.
type TemplateRequest struct {
	Type      CertType // Signature or Authentication
	Serial    Serial
	NotBefore time.Time
	NotAfter  time.Time
	// PublicKey is the card's key: RSA-2048 with e = 65537.
	PublicKey crypto.PublicKey
	// SubjectID is the subject CN: the issuance ID of a signature
	// certificate (1 to 64 characters of [0-9A-Z]) or the opaque ID of an
	// authentication certificate (OpaqueIDLen of them). Empty: Template
	// draws one from Rand with NewSubjectID.
	SubjectID string
	Rand      io.Reader
	// Municipality is the issuing municipality's code: it names the
	// signature certificate's localities and the CRL partition of both.
	Municipality string
	// Facts are the 4 facts: required for a signature certificate, never
	// written into an authentication certificate (ignored).
	Facts Facts
	// IssuerID and Issuer are the issuer generation that will sign.
	IssuerID string
	Issuer   *x509.Certificate
}

// Template builds the x509.Certificate template of a card certificate
// (DOMAIN.md, "The two certificates"), for x509.CreateCertificate with
// IssuerCert as the parent. Errors wrap ErrInvalid, or ErrNotFound for an
// unknown municipality.
//
// Every extension is encoded here, in the order of the reference
// certificate (testdata/jpki-user-auth-2019.pem), and the template carries
// them all as ExtraExtensions: Go's x509 would write its own order, mark
// certificatePolicies non-critical and write the AKI as keyIdentifier
// alone.
//
//  1. keyUsage, critical: digitalSignature, and nonRepudiation for a
//     signature certificate;
//  2. extKeyUsage: clientAuth for an authentication certificate; for a
//     signature certificate the configured list, or none;
//  3. certificatePolicies, critical: the type's policy with its CPS
//     qualifier;
//  4. subjectAltName, in a signature certificate only: the six otherNames
//     of the 4 facts (placed before issuerAltName, in RFC 5280's order:
//     reference/ holds no signature certificate);
//  5. issuerAltName, unless omitted: J-LIS's Japanese directory name of
//     the issuer (RFC 5280 4.2.1.7);
//  6. cRLDistributionPoints: one distribution point for the issuer and
//     municipality, whose fullName is the HTTP URL and, unless omitted,
//     J-LIS's directory name of the partition (RFC 5280 4.2.1.13: names
//     of the same CRL);
//  7. authorityInfoAccess: the OCSP URL;
//  8. authorityKeyIdentifier: the issuer's SKI and, unless configured to
//     the key identifier alone, the issuer certificate's subject and
//     serial (RFC 5280 4.2.1.1);
//  9. subjectKeyIdentifier: SHA-1 of the subjectPublicKey bits (RFC 5280
//     4.2.1.2, method 1).
//
// Subject: C=JP, L=<prefecture>, L=<municipality>, CN=<issuance ID> for a
// signature certificate; C=JP, CN=<opaque ID> for an authentication
// certificate.
func (p *Profiles) Template(req TemplateRequest) (*x509.Certificate, error) {
	t, err := p.template(req)
	if err != nil {
		return nil, fmt.Errorf("building %v certificate template: %w", req.Type, err)
	}
	return t, nil
}

func (p *Profiles) template(req TemplateRequest) (*x509.Certificate, error) {
	if req.Type != Signature && req.Type != Authentication {
		return nil, fmt.Errorf("%w: certificate type %v", ErrInvalid, req.Type)
	}
	ski, err := checkSubject(req.Serial, req.NotBefore, req.NotAfter, req.PublicKey, CheckCardKey)
	if err != nil {
		return nil, err
	}
	if err := checkIssuer(req.Type, req.Issuer); err != nil {
		return nil, err
	}
	if req.SubjectID == "" {
		if req.Rand == nil {
			return nil, fmt.Errorf("%w: no subject ID and no random source", ErrInvalid)
		}
		if req.SubjectID, err = NewSubjectID(req.Rand); err != nil {
			return nil, err
		}
	}
	if !issuerIDPattern.MatchString(req.IssuerID) {
		return nil, fmt.Errorf("%w: issuer ID %q", ErrInvalid, req.IssuerID)
	}
	muni, err := p.Municipality(req.Municipality)
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber:       req.Serial.Big(),
		PublicKey:          req.PublicKey,
		NotBefore:          req.NotBefore,
		NotAfter:           req.NotAfter,
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	var (
		ku  x509.KeyUsage
		eku []asn1.ObjectIdentifier
		san []byte
	)
	switch req.Type {
	case Signature:
		if !subjectIDPattern.MatchString(req.SubjectID) {
			return nil, fmt.Errorf("%w: issuance ID %q: want 1 to 64 of [0-9A-Z]", ErrInvalid, req.SubjectID)
		}
		facts, err := req.Facts.Encode()
		if err != nil {
			return nil, err
		}
		if san, err = facts.MarshalSubjectAltName(); err != nil {
			return nil, err
		}
		t.RawSubject, err = marshalName(
			atv(oidCountry, "JP", true), atv(oidLocality, muni.Prefecture, false),
			atv(oidLocality, muni.Name, false), atv(oidCommonName, req.SubjectID, false))
		if err != nil {
			return nil, err
		}
		ku, eku = x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment, p.sigEKU
	case Authentication:
		if len(req.SubjectID) != OpaqueIDLen || !subjectIDPattern.MatchString(req.SubjectID) {
			return nil, fmt.Errorf("%w: opaque ID %q: want %d of [0-9A-Z]", ErrInvalid, req.SubjectID, OpaqueIDLen)
		}
		t.RawSubject, err = marshalName(atv(oidCountry, "JP", true), atv(oidCommonName, req.SubjectID, false))
		if err != nil {
			return nil, err
		}
		ku, eku = x509.KeyUsageDigitalSignature, []asn1.ObjectIdentifier{oidEKUClientAuth}
	}

	var exts extensionList
	exts.add(keyUsageExtension(ku))
	if len(eku) > 0 {
		exts.add(extKeyUsageExtension(eku))
	}
	exts.add(policiesExtension(policyOID(req.Type), p.cps[req.Type]))
	if san != nil {
		exts.add(pkix.Extension{Id: oidExtSAN, Value: san}, nil)
	}
	if p.issuerAltName {
		exts.add(issuerAltNameExtension(req.Type))
	}
	exts.add(p.crlDPExtension(req.Type, req.IssuerID, req.Municipality, muni))
	exts.add(aiaExtension(p.ocspURL))
	exts.add(akiExtension(req.Issuer, p.akiIssuerSerial))
	exts.add(skiExtension(ski))
	if exts.err != nil {
		return nil, exts.err
	}
	t.ExtraExtensions = exts.list
	return t, nil
}

func policyOID(t CertType) asn1.ObjectIdentifier {
	if t == Signature {
		return OIDPolicySignature
	}
	return OIDPolicyAuthentication
}

func checkCommon(serial Serial, notBefore, notAfter time.Time) error {
	if serial.IsZero() {
		return fmt.Errorf("%w: no serial", ErrInvalid)
	}
	if notBefore.IsZero() || !notAfter.After(notBefore) {
		return fmt.Errorf("%w: validity %v to %v", ErrInvalid, notBefore, notAfter)
	}
	return nil
}

// checkSubject runs the checks every template makes on its serial, validity
// and subject key (checkKey: CheckCardKey or checkServiceKey) and returns the
// key's subject key identifier.
func checkSubject(serial Serial, notBefore, notAfter time.Time, pub crypto.PublicKey, checkKey func(crypto.PublicKey) error) ([]byte, error) {
	if err := checkCommon(serial, notBefore, notAfter); err != nil {
		return nil, err
	}
	if err := checkKey(pub); err != nil {
		return nil, err
	}
	return SubjectKeyID(pub)
}

// checkIssuer checks that issuer is a CA certificate with an SKI and, for a
// card certificate type, carries that type's JPKI issuer name: a signature
// certificate can never be built under the authentication issuer.
func checkIssuer(t CertType, issuer *x509.Certificate) error {
	if issuer == nil || !issuer.IsCA || len(issuer.SubjectKeyId) == 0 {
		return fmt.Errorf("%w: issuer: want a CA certificate with a subject key identifier", ErrInvalid)
	}
	if t == Signature || t == Authentication {
		want, err := IssuerName(t)
		if err != nil {
			return err
		}
		if string(issuer.RawSubject) != string(want) {
			return fmt.Errorf("%w: issuer %q is not the %v issuer", ErrInvalid, issuer.Subject, t)
		}
	}
	return nil
}

// CheckCardKey accepts only what a card holds: RSA-2048 with e = 65537.
func CheckCardKey(pub crypto.PublicKey) error {
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: card key is %s, want RSA", ErrInvalid, keyAlgorithm(pub))
	}
	if k.N == nil || k.N.BitLen() != 2048 || k.E != 65537 {
		bits := 0
		if k.N != nil {
			bits = k.N.BitLen()
		}
		return fmt.Errorf("%w: card key RSA-%d e=%d, want RSA-2048 e=65537", ErrInvalid, bits, k.E)
	}
	return nil
}

// keyAlgorithm names a public key's algorithm for a message, in the terms
// of the certificate (x509.PublicKeyAlgorithm), never a Go type.
func keyAlgorithm(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *rsa.PublicKey:
		return x509.RSA.String()
	case *ecdsa.PublicKey:
		return x509.ECDSA.String()
	case ed25519.PublicKey:
		return x509.Ed25519.String()
	}
	return "of an unknown algorithm"
}

// checkServiceKey accepts keys of the CA's own certificates: RSA of 2048 to
// 4096 bits with e = 65537, or ECDSA P-256 or P-384.
func checkServiceKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N != nil && k.N.BitLen() >= 2048 && k.N.BitLen() <= 4096 && k.N.BitLen()%8 == 0 && k.E == 65537 {
			return nil
		}
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
	}
	return fmt.Errorf("%w: key %s: want RSA-2048 to 4096 (e=65537), ECDSA P-256 or P-384", ErrInvalid, keyAlgorithm(pub))
}

func sigAlgFor(pub crypto.PublicKey) x509.SignatureAlgorithm {
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		if k.Curve == elliptic.P384() {
			return x509.ECDSAWithSHA384
		}
		return x509.ECDSAWithSHA256
	}
	return x509.SHA256WithRSA
}

// SubjectKeyID is the SHA-1 hash of the subjectPublicKey BIT STRING
// (RFC 5280 4.2.1.2, method 1).
func SubjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrInvalid, err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrInvalid, err)
	}
	h := sha1.Sum(spki.PublicKey.Bytes)
	return h[:], nil
}

// atv is one attribute: PrintableString for countryName, UTF8String for
// the rest, as the reference certificate encodes them.
func atv(oid asn1.ObjectIdentifier, v string, printable bool) pkix.AttributeTypeAndValue {
	tag := asn1.TagUTF8String
	if printable {
		tag = asn1.TagPrintableString
	}
	return pkix.AttributeTypeAndValue{Type: oid, Value: asn1.RawValue{Tag: tag, Bytes: []byte(v)}}
}

// marshalName encodes an RDNSequence with one attribute per RDN, in order.
func marshalName(attrs ...pkix.AttributeTypeAndValue) ([]byte, error) {
	var rdns pkix.RDNSequence
	for _, a := range attrs {
		if a.Value.(asn1.RawValue).Bytes == nil || len(a.Value.(asn1.RawValue).Bytes) == 0 {
			return nil, fmt.Errorf("%w: empty name attribute %v", ErrInvalid, a.Type)
		}
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{a})
	}
	b, err := asn1.Marshal(rdns)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding name: %v", ErrInvalid, err)
	}
	return b, nil
}

func jpkiAttrs(t CertType) ([]pkix.AttributeTypeAndValue, error) {
	ou, ok := issuerUnits[t]
	if !ok {
		return nil, fmt.Errorf("%w: no JPKI issuer for %v", ErrInvalid, t)
	}
	return []pkix.AttributeTypeAndValue{
		atv(oidCountry, "JP", true), atv(oidOrganization, "JPKI", false), atv(oidOrgUnit, ou, false),
	}, nil
}

// IssuerName is the DER of the JPKI issuer name of a card certificate type:
// C=JP, O=JPKI, OU=JPKI for digital signature | JPKI for user
// authentication, OU=Japan Agency for Local Authority Information Systems.
// Every generation of the type's root has this name.
func IssuerName(t CertType) ([]byte, error) {
	attrs, err := jpkiAttrs(t)
	if err != nil {
		return nil, err
	}
	return marshalName(append(attrs, atv(oidOrgUnit, jlisName, false))...)
}

// extensionList collects a certificate's extensions in order and keeps
// the first error.
type extensionList struct {
	list []pkix.Extension
	err  error
}

func (l *extensionList) add(e pkix.Extension, err error) {
	if err != nil {
		if l.err == nil {
			l.err = err
		}
		return
	}
	l.list = append(l.list, e)
}

// extension is the extension oid whose value b holds.
func extension(oid asn1.ObjectIdentifier, critical bool, b *cryptobyte.Builder) (pkix.Extension, error) {
	der, err := b.Bytes()
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("%w: encoding extension %v: %v", ErrInvalid, oid, err)
	}
	return pkix.Extension{Id: oid, Critical: critical, Value: der}, nil
}

// addDirectoryName adds the GeneralName directoryName [4] (EXPLICIT, Name
// being a CHOICE) of the DER Name name.
func addDirectoryName(b *cryptobyte.Builder, name []byte) {
	b.AddASN1(cbasn1.Tag(4).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { b.AddBytes(name) })
}

// keyUsageExtension is a critical keyUsage extension: a BIT STRING with
// bit i set for x509.KeyUsage 1<<i, without trailing zero bits (X.690
// 11.2.2).
func keyUsageExtension(ku x509.KeyUsage) (pkix.Extension, error) {
	var bits []byte
	n := 0 // bits up to the last one set
	for i := range 9 {
		if ku&(1<<i) == 0 {
			continue
		}
		for len(bits) <= i/8 {
			bits = append(bits, 0)
		}
		bits[i/8] |= 0x80 >> (i % 8)
		n = i + 1
	}
	if n == 0 {
		return pkix.Extension{}, fmt.Errorf("%w: empty key usage", ErrInvalid)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) {
		b.AddUint8(uint8(8*len(bits) - n)) // unused bits in the last octet
		b.AddBytes(bits)
	})
	return extension(oidExtKeyUsage, true, &b)
}

// extKeyUsageExtension is a non-critical extKeyUsage extension.
func extKeyUsageExtension(oids []asn1.ObjectIdentifier) (pkix.Extension, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, oid := range oids {
			b.AddASN1ObjectIdentifier(oid)
		}
	})
	return extension(oidExtExtKeyUsage, false, &b)
}

// policiesExtension is a critical certificatePolicies extension with one
// policy and its CPS qualifier.
func policiesExtension(policy asn1.ObjectIdentifier, cps string) (pkix.Extension, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(policy)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidQualifierCPS)
					b.AddASN1(cbasn1.IA5String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(cps)) })
				})
			})
		})
	})
	return extension(oidExtPolicies, true, &b)
}

// issuerAltNameExtension is a non-critical issuerAltName with J-LIS's
// Japanese directory name of the issuer of type t: C=JP,
// O=公的個人認証サービス, OU=公的個人認証サービス署名用 |
// 公的個人認証サービス利用者証明用, OU=地方公共団体情報システム機構.
func issuerAltNameExtension(t CertType) (pkix.Extension, error) {
	ou, ok := issuerAltUnits[t]
	if !ok {
		return pkix.Extension{}, fmt.Errorf("%w: no JPKI issuer for %v", ErrInvalid, t)
	}
	name, err := marshalName(atv(oidCountry, "JP", true), atv(oidOrganization, jpkiNameJa, false),
		atv(oidOrgUnit, ou, false), atv(oidOrgUnit, jlisNameJa, false))
	if err != nil {
		return pkix.Extension{}, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { addDirectoryName(b, name) }) // GeneralNames
	return extension(oidExtIAN, false, &b)
}

// crlDPExtension is one DistributionPoint whose fullName is the HTTP URL
// and, if configured, the J-LIS directory name of the municipality's CRL:
// C=JP, O=JPKI, OU=<the issuer's unit>, OU=CRL Distribution Points,
// OU=<prefecture>, CN=<municipality> CRLDP.
func (p *Profiles) crlDPExtension(t CertType, issuerID, code string, m Municipality) (pkix.Extension, error) {
	var dirName []byte
	if p.crlDirName {
		attrs, err := jpkiAttrs(t)
		if err != nil {
			return pkix.Extension{}, err
		}
		attrs = append(attrs, atv(oidOrgUnit, "CRL Distribution Points", false),
			atv(oidOrgUnit, m.Prefecture, false), atv(oidCommonName, m.Name+crlDPSuffix, false))
		if dirName, err = marshalName(attrs...); err != nil {
			return pkix.Extension{}, err
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // CRLDistributionPoints
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // DistributionPoint
			b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { // distributionPoint
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { // fullName
					b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { // uniformResourceIdentifier
						b.AddBytes([]byte(p.CRLURL(issuerID, code)))
					})
					if dirName != nil {
						addDirectoryName(b, dirName)
					}
				})
			})
		})
	})
	return extension(oidExtCRLDP, false, &b)
}

// aiaExtension is a non-critical authorityInfoAccess with the OCSP URL.
func aiaExtension(ocspURL string) (pkix.Extension, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // AccessDescription
			b.AddASN1ObjectIdentifier(oidAccessOCSP)
			b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(ocspURL)) })
		})
	})
	return extension(oidExtAIA, false, &b)
}

// akiExtension is a non-critical authorityKeyIdentifier naming issuer by
// its SKI and, withIssuerSerial, by its subject and serial too
// (authorityCertIssuer, authorityCertSerialNumber: both or neither, RFC
// 5280 4.2.1.1). The key identifier stays even then: every generation of a
// JPKI root has the same name (DOMAIN.md).
func akiExtension(issuer *x509.Certificate, withIssuerSerial bool) (pkix.Extension, error) {
	var serial cryptobyte.String // the INTEGER's content octets
	if withIssuerSerial {
		n := issuer.SerialNumber
		if n == nil || n.Sign() <= 0 {
			return pkix.Extension{}, fmt.Errorf("%w: issuer serial %v: want a positive integer", ErrInvalid, n)
		}
		der, err := asn1.Marshal(n)
		if s := cryptobyte.String(der); err != nil || !s.ReadASN1(&serial, cbasn1.INTEGER) {
			return pkix.Extension{}, fmt.Errorf("%w: encoding issuer serial %v: %v", ErrInvalid, n, err)
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(issuer.SubjectKeyId) }) // keyIdentifier
		if withIssuerSerial {
			b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { // authorityCertIssuer
				addDirectoryName(b, issuer.RawSubject)
			})
			b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(serial) }) // authorityCertSerialNumber
		}
	})
	return extension(oidExtAKI, false, &b)
}

// skiExtension is a non-critical subjectKeyIdentifier.
func skiExtension(ski []byte) (pkix.Extension, error) {
	var b cryptobyte.Builder
	b.AddASN1OctetString(ski)
	return extension(oidExtSKI, false, &b)
}

// IssuerTemplateRequest is one generation of a self-signed JPKI root.
type IssuerTemplateRequest struct {
	Type      CertType // Signature or Authentication
	Serial    Serial
	NotBefore time.Time
	NotAfter  time.Time // ten years on, by the caller's configuration
	PublicKey crypto.PublicKey
}

// IssuerTemplate builds a self-signed JPKI root (sign it with itself as
// parent): the type's IssuerName as subject, CA:true critical, keyUsage
// keyCertSign and cRLSign critical, SKI. The key must be RSA-2048 with
// e = 65537, as J-LIS's roots are.
func IssuerTemplate(req IssuerTemplateRequest) (*x509.Certificate, error) {
	ski, err := checkSubject(req.Serial, req.NotBefore, req.NotAfter, req.PublicKey, CheckCardKey)
	if err != nil {
		return nil, fmt.Errorf("issuer template: %w", err)
	}
	name, err := IssuerName(req.Type)
	if err != nil {
		return nil, fmt.Errorf("issuer template: %w", err)
	}
	return &x509.Certificate{
		SerialNumber:          req.Serial.Big(),
		RawSubject:            name,
		PublicKey:             req.PublicKey,
		NotBefore:             req.NotBefore,
		NotAfter:              req.NotAfter,
		SignatureAlgorithm:    x509.SHA256WithRSA,
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          ski,
	}, nil
}

// ResponderTemplateRequest is a delegated OCSP responder certificate.
type ResponderTemplateRequest struct {
	Type       CertType // the card certificate type of the issuer
	Serial     Serial
	NotBefore  time.Time
	NotAfter   time.Time // short: the responder is not itself checked
	PublicKey  crypto.PublicKey
	IssuerCert *x509.Certificate
}

// ResponderTemplate builds a delegated OCSP responder certificate (RFC 6960
// 4.2.2.2) issued by IssuerCert: subject the issuer's name with
// CN=OCSP Responder, keyUsage digitalSignature, extKeyUsage OCSPSigning,
// id-pkix-ocsp-nocheck, AKI and SKI. Keys: RSA-2048 to 4096 or ECDSA P-256
// or P-384.
func ResponderTemplate(req ResponderTemplateRequest) (*x509.Certificate, error) {
	ski, err := checkSubject(req.Serial, req.NotBefore, req.NotAfter, req.PublicKey, checkServiceKey)
	if err != nil {
		return nil, fmt.Errorf("responder template: %w", err)
	}
	if err := checkIssuer(req.Type, req.IssuerCert); err != nil {
		return nil, fmt.Errorf("responder template: %w", err)
	}
	attrs, err := jpkiAttrs(req.Type)
	if err != nil {
		return nil, fmt.Errorf("responder template: %w", err)
	}
	name, err := marshalName(append(attrs, atv(oidOrgUnit, jlisName, false), atv(oidCommonName, "OCSP Responder", false))...)
	if err != nil {
		return nil, fmt.Errorf("responder template: %w", err)
	}
	return &x509.Certificate{
		SerialNumber:       req.Serial.Big(),
		RawSubject:         name,
		PublicKey:          req.PublicKey,
		NotBefore:          req.NotBefore,
		NotAfter:           req.NotAfter,
		SignatureAlgorithm: x509.SHA256WithRSA, // the issuer's algorithm
		KeyUsage:           x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		SubjectKeyId:       ski,
		AuthorityKeyId:     req.IssuerCert.SubjectKeyId,
		ExtraExtensions:    []pkix.Extension{{Id: oidExtOCSPNoCheck, Value: []byte{0x05, 0x00}}},
	}, nil
}

// ClientCATemplateRequest is the self-signed CA of the terminals' client
// certificates.
type ClientCATemplateRequest struct {
	Serial    Serial
	NotBefore time.Time
	NotAfter  time.Time
	PublicKey crypto.PublicKey
	// Name is the CN; empty means "jpkica client CA".
	Name string
}

// ClientCATemplate builds the self-signed client CA: C=JP, O=jpkica, CN=Name;
// CA:true with path length 0, keyUsage keyCertSign and cRLSign, SKI.
func ClientCATemplate(req ClientCATemplateRequest) (*x509.Certificate, error) {
	ski, err := checkSubject(req.Serial, req.NotBefore, req.NotAfter, req.PublicKey, checkServiceKey)
	if err != nil {
		return nil, fmt.Errorf("client CA template: %w", err)
	}
	cn := req.Name
	if cn == "" {
		cn = "jpkica client CA"
	}
	if err := checkPrintable(cn); err != nil {
		return nil, fmt.Errorf("client CA template: name: %w", err)
	}
	name, err := marshalName(atv(oidCountry, "JP", true), atv(oidOrganization, "jpkica", false), atv(oidCommonName, cn, false))
	if err != nil {
		return nil, fmt.Errorf("client CA template: %w", err)
	}
	return &x509.Certificate{
		SerialNumber:          req.Serial.Big(),
		RawSubject:            name,
		PublicKey:             req.PublicKey,
		NotBefore:             req.NotBefore,
		NotAfter:              req.NotAfter,
		SignatureAlgorithm:    sigAlgFor(req.PublicKey),
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          ski,
	}, nil
}

// Roles a terminal certificate may name (API.md, "Identities and roles").
var clientRoles = map[string]bool{"counter": true, "register": true, "lossline": true, "admin": true}

// ClientTemplateRequest is a terminal's (or operator's) client certificate.
type ClientTemplateRequest struct {
	Serial    Serial
	NotBefore time.Time
	NotAfter  time.Time
	PublicKey crypto.PublicKey
	// Role is counter, register, lossline or admin: the subject O.
	Role string
	// Municipality is the six-digit code in the subject OU: required for a
	// counter, optional otherwise.
	Municipality string
	// Name is the subject CN, such as the terminal's host name.
	Name       string
	IssuerCert *x509.Certificate // the client CA
}

// ClientTemplate builds a terminal client certificate: C=JP, O=<role>,
// OU=<municipality>, CN=<name>; keyUsage digitalSignature; extKeyUsage
// clientAuth; AKI, SKI.
func ClientTemplate(req ClientTemplateRequest) (*x509.Certificate, error) {
	ski, err := checkSubject(req.Serial, req.NotBefore, req.NotAfter, req.PublicKey, checkServiceKey)
	if err != nil {
		return nil, fmt.Errorf("client template: %w", err)
	}
	if err := checkIssuer(Terminal, req.IssuerCert); err != nil {
		return nil, fmt.Errorf("client template: %w", err)
	}
	if !clientRoles[req.Role] || !rolePattern.MatchString(req.Role) {
		return nil, fmt.Errorf("%w: client template: role %q", ErrInvalid, req.Role)
	}
	if req.Municipality == "" && req.Role == "counter" {
		return nil, fmt.Errorf("%w: client template: a counter needs a municipality", ErrInvalid)
	}
	if req.Municipality != "" && !ValidMunicipalityCode(req.Municipality) {
		return nil, fmt.Errorf("%w: client template: municipality %q", ErrInvalid, req.Municipality)
	}
	if err := checkPrintable(req.Name); err != nil {
		return nil, fmt.Errorf("client template: name: %w", err)
	}
	attrs := []pkix.AttributeTypeAndValue{atv(oidCountry, "JP", true), atv(oidOrganization, req.Role, false)}
	if req.Municipality != "" {
		attrs = append(attrs, atv(oidOrgUnit, req.Municipality, false))
	}
	name, err := marshalName(append(attrs, atv(oidCommonName, req.Name, false))...)
	if err != nil {
		return nil, fmt.Errorf("client template: %w", err)
	}
	return &x509.Certificate{
		SerialNumber:       req.Serial.Big(),
		RawSubject:         name,
		PublicKey:          req.PublicKey,
		NotBefore:          req.NotBefore,
		NotAfter:           req.NotAfter,
		SignatureAlgorithm: sigAlgFor(req.IssuerCert.PublicKey),
		KeyUsage:           x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		SubjectKeyId:       ski,
		AuthorityKeyId:     req.IssuerCert.SubjectKeyId,
	}, nil
}

func checkPrintable(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%w: %q: want 1 to 64 characters", ErrInvalid, s)
	}
	for _, c := range []byte(s) {
		if c < ' ' || c >= 0x7f {
			return fmt.Errorf("%w: %q: want printable ASCII", ErrInvalid, s)
		}
	}
	return nil
}
