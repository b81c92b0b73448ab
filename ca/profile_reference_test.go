package ca

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jpkica/jpkica/lint"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// This file compares jpkica's user-authentication certificate with the real
// one J-LIS issued in 2019 (testdata/jpki-user-auth-2019.pem): the
// TBSCertificate field by field, then the extensions one by one in the
// reference's order (OID, criticality, DER value). What may differ is
// listed, by name, in referenceAllowed and in the fields referenceDiffs
// names; any other difference fails.

// tlv is one decoded DER element: a primitive's content octets, or a
// constructed element's children.
type tlv struct {
	tag     cbasn1.Tag
	content []byte
	kids    []*tlv
}

func parseTLV(der []byte) (*tlv, error) {
	s := cryptobyte.String(der)
	var n tlv
	var content cryptobyte.String
	if !s.ReadAnyASN1(&content, &n.tag) || !s.Empty() {
		return nil, fmt.Errorf("not one DER element: % x", der)
	}
	if n.tag&0x20 == 0 { // primitive
		n.content = content
		return &n, nil
	}
	for !content.Empty() {
		var kid cryptobyte.String
		var tag cbasn1.Tag
		if !content.ReadAnyASN1Element(&kid, &tag) {
			return nil, fmt.Errorf("bad element inside % x", der)
		}
		k, err := parseTLV(kid)
		if err != nil {
			return nil, err
		}
		n.kids = append(n.kids, k)
	}
	return &n, nil
}

func (n *tlv) add(b *cryptobyte.Builder) {
	b.AddASN1(n.tag, func(b *cryptobyte.Builder) {
		b.AddBytes(n.content)
		for _, k := range n.kids {
			k.add(b)
		}
	})
}

func (n *tlv) encode() ([]byte, error) {
	var b cryptobyte.Builder
	n.add(&b)
	return b.Bytes()
}

// at is the element at path (child indexes from n), or nil.
func (n *tlv) at(path ...int) *tlv {
	for _, i := range path {
		if n == nil || i >= len(n.kids) {
			return nil
		}
		n = n.kids[i]
	}
	return n
}

// referenceWant holds jpkica's values where the test may differ from the
// reference: its URLs, its keys and its issuer.
type referenceWant struct {
	serial         *big.Int
	cps, ocsp, crl string
	issuerSKI, ski []byte
}

// referenceEdit turns a reference extension value into the one jpkica must
// write: it sets jpkica's value at one named place.
type referenceEdit struct {
	name string
	oid  string
	edit func(root *tlv, w referenceWant) error
}

// setContent sets the primitive element at path to v.
func setContent(path []int, v func(referenceWant) []byte) func(*tlv, referenceWant) error {
	return func(root *tlv, w referenceWant) error {
		n := root.at(path...)
		if n == nil || n.kids != nil {
			return fmt.Errorf("no primitive element at %v", path)
		}
		n.content = v(w)
		return nil
	}
}

// referenceAllowed are the differences allowed inside extensions, in the
// reference's order of extensions. keyUsage, extKeyUsage and issuerAltName
// have none. The directory name of the CRL distribution point has none
// either: the test issues for Tsukuba-shi, Ibaraki-ken, as J-LIS did.
var referenceAllowed = []referenceEdit{
	{"the CPS URL is the deployment's", "2.5.29.32",
		// certificatePolicies / PolicyInformation / policyQualifiers / PolicyQualifierInfo / cPSuri
		setContent([]int{0, 1, 0, 1}, func(w referenceWant) []byte { return []byte(w.cps) })},
	{"the distribution point's fullName has jpkica's HTTP URL before J-LIS's directory name", "2.5.29.31",
		func(root *tlv, w referenceWant) error {
			// CRLDistributionPoints / DistributionPoint / distributionPoint / fullName
			n := root.at(0, 0, 0)
			if n == nil || n.tag != cbasn1.Tag(0).ContextSpecific().Constructed() {
				return fmt.Errorf("no fullName")
			}
			uri := &tlv{tag: cbasn1.Tag(6).ContextSpecific(), content: []byte(w.crl)}
			n.kids = append([]*tlv{uri}, n.kids...)
			return nil
		}},
	{"the OCSP URL is the deployment's", "1.3.6.1.5.5.7.1.1",
		// AuthorityInfoAccessSyntax / AccessDescription / accessLocation
		setContent([]int{0, 1}, func(w referenceWant) []byte { return []byte(w.ocsp) })},
	{"the keyIdentifier is the test issuer's key's (its name and serial 1 are J-LIS's)", "2.5.29.35",
		setContent([]int{0}, func(w referenceWant) []byte { return w.issuerSKI })},
	{"the subjectKeyIdentifier is the test card key's", "2.5.29.14",
		setContent(nil, func(w referenceWant) []byte { return w.ski })},
}

// The TBSCertificate fields, in order (RFC 5280 4.1).
const (
	tbsVersion = iota
	tbsSerial
	tbsSignature
	tbsIssuer
	tbsValidity
	tbsSubject
	tbsSPKI
	tbsExtensions
	tbsFields
)

// referenceDiffs lists the differences between c and the reference ref
// that are not allowed. Allowed: the serial number (jpkica draws 126 random
// bits; J-LIS's has 4 octets), the validity dates (both encoded alike and
// ending at 23:59:59 JST), the subject public key (both RSA-2048 card keys
// with e = 65537), the signature (another issuer key), and
// referenceAllowed. The subject is the same: the test uses the reference's
// opaque ID.
func referenceDiffs(t *testing.T, ref, c *x509.Certificate, w referenceWant) []string {
	t.Helper()
	var diffs []string
	bad := func(format string, a ...any) { diffs = append(diffs, fmt.Sprintf(format, a...)) }

	refTBS, err := parseTLV(ref.RawTBSCertificate)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	tbs, err := parseTLV(c.RawTBSCertificate)
	if err != nil {
		t.Fatal(err)
	}
	if len(refTBS.kids) != tbsFields || len(tbs.kids) != tbsFields {
		t.Fatalf("TBSCertificate with %d fields, reference %d, want %d", len(tbs.kids), len(refTBS.kids), tbsFields)
	}
	for _, f := range []struct {
		name  string
		index int
	}{{"version", tbsVersion}, {"signature", tbsSignature}, {"issuer", tbsIssuer}, {"subject", tbsSubject}} {
		if a, b := mustEncode(t, refTBS.kids[f.index]), mustEncode(t, tbs.kids[f.index]); !bytes.Equal(a, b) {
			bad("%s: % x, reference % x", f.name, b, a)
		}
	}
	if c.SerialNumber.Cmp(w.serial) != 0 {
		bad("serialNumber %x, want %x", c.SerialNumber, w.serial)
	}
	refValidity, validity := refTBS.kids[tbsValidity], tbs.kids[tbsValidity]
	for i, name := range []string{"notBefore", "notAfter"} {
		a, b := refValidity.at(i), validity.at(i)
		if a == nil || b == nil {
			t.Fatalf("validity without %s", name)
		}
		if a.tag != b.tag { // UTCTime in both until 2050
			bad("%s with tag %#x, reference %#x", name, uint8(b.tag), uint8(a.tag))
		}
	}
	if a, b := ref.NotAfter.In(jst).Format(time.TimeOnly), c.NotAfter.In(jst).Format(time.TimeOnly); a != b {
		bad("notAfter at %s JST, reference %s JST", b, a)
	}
	if a, b := refTBS.at(tbsSPKI, 0), tbs.at(tbsSPKI, 0); a == nil || b == nil || !bytes.Equal(mustEncode(t, a), mustEncode(t, b)) {
		bad("subjectPublicKeyInfo algorithm differs")
	}
	if err := CheckCardKey(ref.PublicKey); err != nil {
		bad("reference subject key: %v", err)
	}
	if err := CheckCardKey(c.PublicKey); err != nil {
		bad("subject key: %v", err)
	}

	// The extensions, in the reference's order.
	var refOIDs, oids []string
	for _, e := range ref.Extensions {
		refOIDs = append(refOIDs, e.Id.String())
	}
	for _, e := range c.Extensions {
		oids = append(oids, e.Id.String())
	}
	if !slices.Equal(oids, refOIDs) {
		bad("extensions %s, reference %s", strings.Join(oids, " "), strings.Join(refOIDs, " "))
		return diffs
	}
	used := map[string]bool{}
	for i, re := range ref.Extensions {
		e := c.Extensions[i]
		if e.Critical != re.Critical {
			bad("%v: critical %v, reference %v", e.Id, e.Critical, re.Critical)
		}
		want := re.Value
		for _, a := range referenceAllowed {
			if a.oid != re.Id.String() {
				continue
			}
			used[a.name] = true
			root, err := parseTLV(want)
			if err != nil {
				t.Fatalf("reference %v: %v", re.Id, err)
			}
			if err := a.edit(root, w); err != nil {
				t.Fatalf("reference %v: %s: %v", re.Id, a.name, err)
			}
			want = mustEncode(t, root)
		}
		if !bytes.Equal(e.Value, want) {
			bad("%v: % x\n  want % x", e.Id, e.Value, want)
		}
	}
	for _, a := range referenceAllowed {
		if !used[a.name] {
			t.Errorf("allowed difference %q: the reference has no extension %s", a.name, a.oid)
		}
	}
	return diffs
}

func mustEncode(t *testing.T, n *tlv) []byte {
	t.Helper()
	b, err := n.encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// referenceIssue issues the fixture's user-authentication certificate for
// Tsukuba-shi with the reference's opaque ID, under p, and what it must
// carry.
func referenceIssue(t *testing.T, f *fixture, p *Profiles) (*x509.Certificate, referenceWant) {
	t.Helper()
	req := f.request(Authentication)
	req.Municipality = "082201" // Tsukuba-shi, Ibaraki-ken, as the reference
	req.SubjectID = referenceCert(t).Subject.CommonName
	c := f.issue(t, p, req)
	ski, err := SubjectKeyID(req.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testProfileConfig()
	return c, referenceWant{
		serial: req.Serial.Big(), cps: cfg.AuthenticationCPSURL, ocsp: cfg.OCSPURL, crl: p.CRLURL(req.IssuerID, req.Municipality),
		issuerSKI: f.issuers[Authentication].SubjectKeyId, ski: ski,
	}
}

// TestReferenceProfile: the user-authentication certificate in the default
// profile is the reference but for the allowed differences.
func TestReferenceProfile(t *testing.T) {
	ref := referenceCert(t)
	c, w := referenceIssue(t, newFixture(t), testProfiles(t))
	for _, d := range referenceDiffs(t, ref, c, w) {
		t.Error(d)
	}
}

// TestLintReference: the lints the CA runs (package lint's lintSources)
// find no error in the reference's form. zlint's one error on it is
// e_mp_authority_key_identifier_correct, a Mozilla root store rule (section
// 5.2: no issuer name and serial in the AKI beside the key identifier) that
// is not in lintSources; RFC 5280 4.2.1.1 allows both together.
func TestLintReference(t *testing.T) {
	if err := lint.Certificate(referenceCert(t).Raw); err != nil {
		t.Fatal(err)
	}
}

// TestReferenceProfileCatches: each of the three shorter forms, and a
// changed extension that is not on the allowed list, is a difference.
func TestReferenceProfileCatches(t *testing.T) {
	ref := referenceCert(t)
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		edit func(*ProfileConfig)
		want string
	}{
		{"no issuerAltName", func(c *ProfileConfig) { c.OmitIssuerAltName = true }, "extensions "},
		{"no CRL directory name", func(c *ProfileConfig) { c.OmitCRLDirectoryName = true }, "2.5.29.31: "},
		{"AKI key identifier alone", func(c *ProfileConfig) { c.AKIKeyIDOnly = true }, "2.5.29.35: "},
		{"another CPS URL", func(c *ProfileConfig) { c.AuthenticationCPSURL = "http://127.0.0.1:8080/other.html" }, "2.5.29.32: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testProfileConfig()
			tc.edit(&cfg)
			p, err := NewProfiles(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c, w := referenceIssue(t, f, p)
			diffs := referenceDiffs(t, ref, c, w)
			if len(diffs) != 1 || !strings.HasPrefix(diffs[0], tc.want) {
				t.Errorf("differences %q, want one starting %q", diffs, tc.want)
			}
		})
	}
}
