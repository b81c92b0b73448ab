package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jpkica/jpkica/lint"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func loadKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

func testProfileConfig() ProfileConfig {
	return ProfileConfig{
		OCSPURL:              "http://127.0.0.1:8080/ocsp",
		CRLBaseURL:           "http://127.0.0.1:8080/crl/",
		SignatureCPSURL:      "http://127.0.0.1:8080/cps-signature.html",
		AuthenticationCPSURL: "http://127.0.0.1:8080/cps-authentication.html",
		Municipalities: map[string]Municipality{
			"302015": {Prefecture: "Wakayama-ken", Name: "Wakayama-shi"},
			"082201": {Prefecture: "Ibaraki-ken", Name: "Tsukuba-shi"},
		},
	}
}

func testProfiles(t testing.TB) *Profiles {
	t.Helper()
	p, err := NewProfiles(testProfileConfig())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fixture is a deterministic set of issuers and requests.
type fixture struct {
	issuers map[CertType]*x509.Certificate
	keys    map[CertType]crypto.Signer
	card    crypto.Signer
}

var (
	t0       = time.Date(2025, 10, 27, 1, 2, 3, 0, time.UTC)
	issuerNB = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
)

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(nil, tmpl, parent, pub, key)
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return c
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{issuers: map[CertType]*x509.Certificate{}, keys: map[CertType]crypto.Signer{}, card: loadKey(t, "card")}
	for typ, name := range map[CertType]string{Signature: "sig-issuer", Authentication: "auth-issuer"} {
		key := loadKey(t, name)
		// Serial 1, as the issuer certificate the reference's AKI names.
		tmpl, err := IssuerTemplate(IssuerTemplateRequest{
			Type: typ, Serial: SerialFromBytes([]byte{1}), NotBefore: issuerNB,
			NotAfter: issuerNB.AddDate(10, 0, 0), PublicKey: key.Public(),
		})
		if err != nil {
			t.Fatal(err)
		}
		f.issuers[typ] = sign(t, tmpl, tmpl, key.Public(), key)
		f.keys[typ] = key
	}
	return f
}

func (f *fixture) request(typ CertType) TemplateRequest {
	return TemplateRequest{
		Type:         typ,
		Serial:       SerialFromBytes([]byte{0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}),
		NotBefore:    t0,
		NotAfter:     time.Date(2030, 2, 17, 14, 59, 59, 0, time.UTC),
		PublicKey:    f.card.Public(),
		SubjectID:    "840444E37PAFHN08220003A",
		Municipality: "302015",
		Facts:        validFacts(),
		IssuerID:     typ.String() + "-g1",
		Issuer:       f.issuers[typ],
	}
}

// template is the test profiles' template of f.request(typ).
func (f *fixture) template(t testing.TB, typ CertType) *x509.Certificate {
	t.Helper()
	tmpl, err := testProfiles(t).Template(f.request(typ))
	if err != nil {
		t.Fatalf("Template: %v", err)
	}
	return tmpl
}

func (f *fixture) issue(t testing.TB, p *Profiles, req TemplateRequest) *x509.Certificate {
	t.Helper()
	tmpl, err := p.Template(req)
	if err != nil {
		t.Fatalf("Template: %v", err)
	}
	return sign(t, tmpl, req.Issuer, req.PublicKey, f.keys[req.Type])
}

func ext(c *x509.Certificate, oid asn1.ObjectIdentifier) *pkix.Extension {
	for i := range c.Extensions {
		if c.Extensions[i].Id.Equal(oid) {
			return &c.Extensions[i]
		}
	}
	return nil
}

func TestTemplateProfiles(t *testing.T) {
	f := newFixture(t)
	p := testProfiles(t)
	for _, typ := range []CertType{Signature, Authentication} {
		t.Run(typ.String(), func(t *testing.T) {
			req := f.request(typ)
			c := f.issue(t, p, req)

			// Subject, in order, with both localities for a signature certificate.
			want := "2.5.4.6=JP,2.5.4.3=840444E37PAFHN08220003A"
			if typ == Signature {
				want = "2.5.4.6=JP,2.5.4.7=Wakayama-ken,2.5.4.7=Wakayama-shi,2.5.4.3=840444E37PAFHN08220003A"
			}
			if got := nameString(t, c.RawSubject); got != want {
				t.Errorf("subject %s, want %s", got, want)
			}
			if !bytes.Equal(c.RawIssuer, f.issuers[typ].RawSubject) {
				t.Errorf("issuer %v", c.Issuer)
			}

			// Key usage (critical) and extended key usage.
			wantKU := x509.KeyUsageDigitalSignature
			if typ == Signature {
				wantKU |= x509.KeyUsageContentCommitment
			}
			if c.KeyUsage != wantKU {
				t.Errorf("key usage %b, want %b", c.KeyUsage, wantKU)
			}
			if e := ext(c, asn1.ObjectIdentifier{2, 5, 29, 15}); e == nil || !e.Critical {
				t.Error("key usage not critical")
			}
			if typ == Authentication {
				if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || len(c.UnknownExtKeyUsage) != 0 {
					t.Errorf("EKU %v %v, want clientAuth", c.ExtKeyUsage, c.UnknownExtKeyUsage)
				}
			} else if ext(c, asn1.ObjectIdentifier{2, 5, 29, 37}) != nil {
				t.Error("signature certificate has an EKU by default")
			}

			// Critical policy with the CPS qualifier.
			e := ext(c, oidExtPolicies)
			if e == nil || !e.Critical {
				t.Fatal("certificatePolicies missing or not critical")
			}
			wantPolicy, wantCPS := OIDPolicyAuthentication, "http://127.0.0.1:8080/cps-authentication.html"
			if typ == Signature {
				wantPolicy, wantCPS = OIDPolicySignature, "http://127.0.0.1:8080/cps-signature.html"
			}
			var pols []struct {
				ID         asn1.ObjectIdentifier
				Qualifiers []struct {
					ID  asn1.ObjectIdentifier
					CPS string `asn1:"ia5"`
				}
			}
			if rest, err := asn1.Unmarshal(e.Value, &pols); err != nil || len(rest) > 0 {
				t.Fatalf("policies: %v", err)
			}
			if len(pols) != 1 || !pols[0].ID.Equal(wantPolicy) || len(pols[0].Qualifiers) != 1 ||
				!pols[0].Qualifiers[0].ID.Equal(oidQualifierCPS) || pols[0].Qualifiers[0].CPS != wantCPS {
				t.Errorf("policies %+v", pols)
			}

			// AKI: key identifier, issuer name and serial; SKI, AIA, CRL DP.
			if !bytes.Equal(c.AuthorityKeyId, f.issuers[typ].SubjectKeyId) {
				t.Errorf("AKI % x, want % x", c.AuthorityKeyId, f.issuers[typ].SubjectKeyId)
			}
			aki := parseAKI(t, c)
			if len(aki.Issuer) != 1 || aki.Issuer[0].Tag != 4 || !bytes.Equal(aki.Issuer[0].Bytes, f.issuers[typ].RawSubject) ||
				aki.Serial == nil || aki.Serial.Cmp(f.issuers[typ].SerialNumber) != 0 {
				t.Errorf("AKI issuer %+v serial %v, want %v serial %v", aki.Issuer, aki.Serial, f.issuers[typ].Subject, f.issuers[typ].SerialNumber)
			}
			ski, _ := SubjectKeyID(f.card.Public())
			if !bytes.Equal(c.SubjectKeyId, ski) || len(ski) != 20 {
				t.Errorf("SKI % x, want % x", c.SubjectKeyId, ski)
			}
			if strings.Join(c.OCSPServer, " ") != "http://127.0.0.1:8080/ocsp" {
				t.Errorf("OCSP %v", c.OCSPServer)
			}
			wantCRL := "http://127.0.0.1:8080/crl/" + typ.String() + "-g1/302015.crl"
			if strings.Join(c.CRLDistributionPoints, " ") != wantCRL {
				t.Errorf("CRL DP %v, want %s", c.CRLDistributionPoints, wantCRL)
			}
			if dn := crlDirectoryName(t, c); dn != "2.5.4.6=JP,2.5.4.10=JPKI,2.5.4.11="+issuerUnits[typ]+
				",2.5.4.11=CRL Distribution Points,2.5.4.11=Wakayama-ken,2.5.4.3=Wakayama-shi CRLDP" {
				t.Errorf("CRL DP directory name %s", dn)
			}

			// issuerAltName: J-LIS's Japanese name of the issuer.
			wantIAN := "2.5.4.6=JP,2.5.4.10=公的個人認証サービス,2.5.4.11=公的個人認証サービス利用者証明用,2.5.4.11=地方公共団体情報システム機構"
			if typ == Signature {
				wantIAN = "2.5.4.6=JP,2.5.4.10=公的個人認証サービス,2.5.4.11=公的個人認証サービス署名用,2.5.4.11=地方公共団体情報システム機構"
			}
			if got := issuerAltName(t, c); got != wantIAN {
				t.Errorf("issuerAltName %s, want %s", got, wantIAN)
			}

			// Every extension, in the reference certificate's order.
			var order []string
			for _, e := range c.Extensions {
				order = append(order, e.Id.String())
			}
			wantOrder := "2.5.29.15 2.5.29.37 2.5.29.32 2.5.29.18 2.5.29.31 1.3.6.1.5.5.7.1.1 2.5.29.35 2.5.29.14"
			if typ == Signature {
				wantOrder = "2.5.29.15 2.5.29.32 2.5.29.17 2.5.29.18 2.5.29.31 1.3.6.1.5.5.7.1.1 2.5.29.35 2.5.29.14"
			}
			if got := strings.Join(order, " "); got != wantOrder {
				t.Errorf("extensions %s\nwant       %s", got, wantOrder)
			}

			// The 4 facts, only in the signature certificate.
			san := ext(c, oidExtSAN)
			if typ == Authentication {
				if san != nil {
					t.Fatal("authentication certificate has a subjectAltName")
				}
				return
			}
			if san == nil || san.Critical {
				t.Fatal("subjectAltName missing or critical")
			}
			gotFacts, err := ParseSubjectAltNameFacts(san.Value)
			if err != nil {
				t.Fatal(err)
			}
			wantFacts := EncodedFacts{"和歌山\u3000太郎", "000000", "1", "419900502", "和歌山県和歌山市七番丁２３番地", "000000000000000"}
			if gotFacts != wantFacts {
				t.Errorf("facts %+v, want %+v", gotFacts, wantFacts)
			}
		})
	}
}

// nameString is a DER Name as "oid=value,..." in order, one attribute per
// RDN.
func nameString(t *testing.T, der []byte) string {
	t.Helper()
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdns); err != nil || len(rest) > 0 {
		t.Fatalf("name % x: %v", der, err)
	}
	var attrs []string
	for _, rdn := range rdns {
		for _, a := range rdn {
			attrs = append(attrs, fmt.Sprintf("%v=%v", a.Type, a.Value))
		}
	}
	return strings.Join(attrs, ",")
}

// generalNames decodes GeneralNames (or a fullName, or an
// authorityCertIssuer): der with any tag, holding GeneralName elements.
func generalNames(t *testing.T, der []byte) []asn1.RawValue {
	t.Helper()
	var outer asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &outer); err != nil || len(rest) > 0 || !outer.IsCompound {
		t.Fatalf("GeneralNames % x: %v", der, err)
	}
	var names []asn1.RawValue
	for rest := outer.Bytes; len(rest) > 0; {
		var n asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &n); err != nil {
			t.Fatalf("GeneralName: %v", err)
		}
		names = append(names, n)
	}
	return names
}

// directoryNames are the directoryName entries of GeneralNames, as
// nameString.
func directoryNames(t *testing.T, names []asn1.RawValue) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		if n.Class == asn1.ClassContextSpecific && n.Tag == 4 {
			out = append(out, nameString(t, n.Bytes))
		}
	}
	return out
}

// issuerAltName is c's issuerAltName directory name as nameString, or "".
func issuerAltName(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	e := ext(c, oidExtIAN)
	if e == nil {
		return ""
	}
	names := generalNames(t, e.Value)
	dns := directoryNames(t, names)
	if len(names) != 1 || len(dns) != 1 || e.Critical {
		t.Fatalf("issuerAltName %+v critical %v", names, e.Critical)
	}
	return dns[0]
}

// crlDirectoryName is the directory name in c's one CRL distribution point
// as nameString, or "".
func crlDirectoryName(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	var dps []struct {
		DP asn1.RawValue `asn1:"optional,tag:0"`
	}
	if rest, err := asn1.Unmarshal(ext(c, oidExtCRLDP).Value, &dps); err != nil || len(rest) > 0 || len(dps) != 1 {
		t.Fatalf("CRL DP: %d points, %v", len(dps), err)
	}
	var fullName asn1.RawValue // [0] inside distributionPoint [0]
	if _, err := asn1.Unmarshal(dps[0].DP.Bytes, &fullName); err != nil || fullName.Tag != 0 {
		t.Fatalf("CRL DP name: %v", err)
	}
	dns := directoryNames(t, generalNames(t, fullName.FullBytes))
	if len(dns) > 1 {
		t.Fatalf("CRL DP with %d directory names", len(dns))
	}
	return strings.Join(dns, "")
}

// akiValue is an AuthorityKeyIdentifier (RFC 5280 4.2.1.1).
type akiValue struct {
	KeyID  []byte          `asn1:"optional,tag:0"`
	Issuer []asn1.RawValue `asn1:"optional,tag:1"`
	Serial *big.Int        `asn1:"optional,tag:2"`
}

func parseAKI(t *testing.T, c *x509.Certificate) akiValue {
	t.Helper()
	e := ext(c, oidExtAKI)
	var aki akiValue
	if e == nil || e.Critical {
		t.Fatal("AKI missing or critical")
	}
	if rest, err := asn1.Unmarshal(e.Value, &aki); err != nil || len(rest) > 0 {
		t.Fatalf("AKI: %v", err)
	}
	return aki
}

// TestTemplateOptions: the configured signature EKUs, a drawn subject ID,
// and the three extensions set back to jpkica's earlier, shorter forms.
func TestTemplateOptions(t *testing.T) {
	f := newFixture(t)
	cfg := testProfileConfig()
	cfg.SignatureExtKeyUsage = []string{"1.3.6.1.5.5.7.3.4", "1.2.392.200149.8.5.9.1"}
	cfg.OmitIssuerAltName, cfg.OmitCRLDirectoryName, cfg.AKIKeyIDOnly = true, true, true
	p, err := NewProfiles(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req := f.request(Signature)
	req.SubjectID = ""
	req.Rand = bytes.NewReader(bytes.Repeat([]byte{7, 200, 35}, 40))
	c := f.issue(t, p, req)
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageEmailProtection ||
		len(c.UnknownExtKeyUsage) != 1 || c.UnknownExtKeyUsage[0].String() != "1.2.392.200149.8.5.9.1" {
		t.Errorf("EKU %v %v", c.ExtKeyUsage, c.UnknownExtKeyUsage)
	}
	if cn := c.Subject.CommonName; len(cn) != OpaqueIDLen || !subjectIDPattern.MatchString(cn) {
		t.Errorf("drawn subject ID %q", cn)
	}
	if dn := crlDirectoryName(t, c); dn != "" || len(c.CRLDistributionPoints) != 1 {
		t.Errorf("CRL DP %v with directory name %q, want the URL alone", c.CRLDistributionPoints, dn)
	}
	if ext(c, oidExtIAN) != nil {
		t.Error("issuerAltName present")
	}
	if aki := parseAKI(t, c); !bytes.Equal(aki.KeyID, f.issuers[Signature].SubjectKeyId) || aki.Issuer != nil || aki.Serial != nil {
		t.Errorf("AKI %+v, want the key identifier alone", aki)
	}
	if e := ext(c, oidExtAKI); !bytes.Equal(e.Value, append([]byte{0x30, 22, 0x80, 20}, f.issuers[Signature].SubjectKeyId...)) {
		t.Errorf("AKI % x", e.Value)
	}
}

func TestTemplateRejects(t *testing.T) {
	f := newFixture(t)
	p := testProfiles(t)
	rsa3072 := loadKey(t, "card-3072").Public()
	ec := loadKey(t, "terminal").Public()
	for _, tc := range []struct {
		name string
		edit func(*TemplateRequest)
		want error
	}{
		{"terminal type", func(r *TemplateRequest) { r.Type = Terminal }, ErrInvalid},
		{"zero serial", func(r *TemplateRequest) { r.Serial = Serial{} }, ErrInvalid},
		{"notAfter before notBefore", func(r *TemplateRequest) { r.NotAfter = r.NotBefore }, ErrInvalid},
		{"RSA-3072", func(r *TemplateRequest) { r.PublicKey = rsa3072 }, ErrInvalid},
		{"ECDSA", func(r *TemplateRequest) { r.PublicKey = ec }, ErrInvalid},
		{"no key", func(r *TemplateRequest) { r.PublicKey = nil }, ErrInvalid},
		{"unknown municipality", func(r *TemplateRequest) { r.Municipality = "131016" }, ErrNotFound},
		{"other type's issuer", func(r *TemplateRequest) { r.Issuer = f.issuers[Authentication] }, ErrInvalid},
		{"no issuer", func(r *TemplateRequest) { r.Issuer = nil }, ErrInvalid},
		{"bad issuer ID", func(r *TemplateRequest) { r.IssuerID = "../x" }, ErrInvalid},
		{"lower-case subject ID", func(r *TemplateRequest) { r.SubjectID = "abc" }, ErrInvalid},
		{"no subject ID, no rand", func(r *TemplateRequest) { r.SubjectID = "" }, ErrInvalid},
		{"bad facts", func(r *TemplateRequest) { r.Facts.Name = "和歌山太郎" }, ErrInvalid},
		{"short opaque ID", func(r *TemplateRequest) {
			r.Type, r.Issuer, r.SubjectID = Authentication, f.issuers[Authentication], "ABC"
		}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(Signature)
			tc.edit(&req)
			if _, err := p.Template(req); !errors.Is(err, tc.want) {
				t.Fatalf("Template = %v, want %v", err, tc.want)
			}
		})
	}
	// An authentication certificate never carries the facts, even bad ones.
	req := f.request(Authentication)
	req.Facts.Name = "bad"
	if _, err := p.Template(req); err != nil {
		t.Errorf("authentication with facts: %v", err)
	}
}

func TestNewProfilesRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*ProfileConfig)
	}{
		{"no OCSP", func(c *ProfileConfig) { c.OCSPURL = "" }},
		{"relative CRL", func(c *ProfileConfig) { c.CRLBaseURL = "/crl" }},
		{"ldap CPS", func(c *ProfileConfig) { c.SignatureCPSURL = "ldap://x/" }},
		{"non-ASCII CPS", func(c *ProfileConfig) { c.AuthenticationCPSURL = "http://例え.jp/" }},
		{"bad EKU", func(c *ProfileConfig) { c.SignatureExtKeyUsage = []string{"clientAuth"} }},
		{"no municipalities", func(c *ProfileConfig) { c.Municipalities = nil }},
		{"bad check digit", func(c *ProfileConfig) { c.Municipalities["302016"] = Municipality{"Wakayama-ken", "X"} }},
		{"five digits", func(c *ProfileConfig) { c.Municipalities["30201"] = Municipality{"Wakayama-ken", "X"} }},
		{"kanji romaji", func(c *ProfileConfig) { c.Municipalities["131016"] = Municipality{"東京都", "Chiyoda-ku"} }},
		{"empty name", func(c *ProfileConfig) { c.Municipalities["131016"] = Municipality{"Tokyo-to", ""} }},
		{"name too long for the CRL directory name", func(c *ProfileConfig) {
			c.Municipalities["131016"] = Municipality{"Tokyo-to", strings.Repeat("a", ubCommonName-len(crlDPSuffix)+1)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testProfileConfig()
			tc.edit(&cfg)
			if _, err := NewProfiles(cfg); !errors.Is(err, ErrInvalid) {
				t.Fatalf("NewProfiles = %v, want ErrInvalid", err)
			}
		})
	}
	// The longest names fit, and any name does without the directory name.
	cfg := testProfileConfig()
	cfg.Municipalities["131016"] = Municipality{"Tokyo-to", strings.Repeat("a", ubCommonName-len(crlDPSuffix))}
	if _, err := NewProfiles(cfg); err != nil {
		t.Errorf("a %d-character municipality: %v", ubCommonName-len(crlDPSuffix), err)
	}
	cfg.Municipalities["131016"] = Municipality{"Tokyo-to", strings.Repeat("a", 64)}
	cfg.OmitCRLDirectoryName = true
	if _, err := NewProfiles(cfg); err != nil {
		t.Errorf("a 64-character municipality without the CRL directory name: %v", err)
	}
}

func TestValidMunicipalityCode(t *testing.T) {
	for code, want := range map[string]bool{
		"302015": true, "082201": true, "011002": true, "131016": true, "141003": true,
		"271004": true, "472018": true, "110001": true /* remainder 0 */, "090000": true, /* remainder 1 */
		"302014": false, "30201": false, "3020150": false, "30201a": false, "": false,
	} {
		if got := ValidMunicipalityCode(code); got != want {
			t.Errorf("ValidMunicipalityCode(%q) = %v", code, got)
		}
	}
}

func TestNewSubjectID(t *testing.T) {
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 200 {
		id, err := NewSubjectID(cryptoRand{})
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != OpaqueIDLen || !subjectIDPattern.MatchString(id) || seen[id] {
			t.Fatalf("subject ID %q", id)
		}
		seen[id] = true
		for _, r := range id {
			counts[r]++
		}
	}
	if len(counts) != 36 {
		t.Errorf("%d distinct symbols in 4600, want 36", len(counts))
	}
	// Bytes 252-255 are rejected, not folded onto 0-3.
	id, err := NewSubjectID(bytes.NewReader(append(bytes.Repeat([]byte{255}, 32), bytes.Repeat([]byte{37}, 32)...)))
	if err != nil || id != strings.Repeat("1", OpaqueIDLen) {
		t.Errorf("NewSubjectID = %q, %v", id, err)
	}
	if _, err := NewSubjectID(bytes.NewReader(nil)); err == nil {
		t.Error("NewSubjectID from an empty reader succeeded")
	}
}

func TestServiceTemplates(t *testing.T) {
	f := newFixture(t)
	responderKey := loadKey(t, "responder")
	caKey := loadKey(t, "client-ca")
	termKey := loadKey(t, "terminal")

	rt, err := ResponderTemplate(ResponderTemplateRequest{Type: Authentication, Serial: SerialFromBytes([]byte{9}),
		NotBefore: t0, NotAfter: t0.Add(720 * time.Hour), PublicKey: responderKey.Public(), IssuerCert: f.issuers[Authentication]})
	if err != nil {
		t.Fatal(err)
	}
	if err := Lint(lint.Linter{}, rt, f.issuers[Authentication]); err != nil {
		t.Errorf("lint responder: %v", err)
	}
	resp := sign(t, rt, f.issuers[Authentication], responderKey.Public(), f.keys[Authentication])
	if len(resp.ExtKeyUsage) != 1 || resp.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning || resp.KeyUsage != x509.KeyUsageDigitalSignature ||
		ext(resp, oidExtOCSPNoCheck) == nil || !bytes.Equal(resp.AuthorityKeyId, f.issuers[Authentication].SubjectKeyId) {
		t.Errorf("responder: EKU %v KU %b", resp.ExtKeyUsage, resp.KeyUsage)
	}
	if err := resp.CheckSignatureFrom(f.issuers[Authentication]); err != nil {
		t.Error(err)
	}
	if _, err := ResponderTemplate(ResponderTemplateRequest{Type: Signature, Serial: SerialFromBytes([]byte{9}),
		NotBefore: t0, NotAfter: t0.Add(time.Hour), PublicKey: responderKey.Public(), IssuerCert: f.issuers[Authentication]}); !errors.Is(err, ErrInvalid) {
		t.Errorf("responder under the other issuer: %v", err)
	}

	cat, err := ClientCATemplate(ClientCATemplateRequest{Serial: SerialFromBytes([]byte{1}), NotBefore: issuerNB,
		NotAfter: issuerNB.AddDate(10, 0, 0), PublicKey: caKey.Public()})
	if err != nil {
		t.Fatal(err)
	}
	if err := Lint(lint.Linter{}, cat, nil); err != nil {
		t.Errorf("lint client CA: %v", err)
	}
	ca := sign(t, cat, cat, caKey.Public(), caKey)
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero || ca.Subject.CommonName != "jpkica client CA" {
		t.Errorf("client CA %+v", ca.Subject)
	}
	for _, tc := range []struct {
		role, muni string
		wantErr    bool
	}{
		{"counter", "302015", false},
		{"admin", "", false},
		{"register", "", false},
		{"lossline", "", false},
		{"counter", "", true},
		{"counter", "302014", true},
		{"root", "", true},
	} {
		t.Run(tc.role+"/"+tc.muni, func(t *testing.T) {
			tt, err := ClientTemplate(ClientTemplateRequest{Serial: SerialFromBytes([]byte{2}), NotBefore: t0,
				NotAfter: t0.AddDate(1, 0, 0), PublicKey: termKey.Public(), Role: tc.role, Municipality: tc.muni,
				Name: "terminal-01.example", IssuerCert: ca})
			if tc.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("ClientTemplate = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := Lint(lint.Linter{}, tt, ca); err != nil {
				t.Errorf("lint terminal: %v", err)
			}
			c := sign(t, tt, ca, termKey.Public(), caKey)
			if len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != tc.role ||
				strings.Join(c.Subject.OrganizationalUnit, "") != tc.muni || c.Subject.CommonName != "terminal-01.example" {
				t.Errorf("subject %v", c.Subject)
			}
			if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || c.IsCA {
				t.Errorf("EKU %v", c.ExtKeyUsage)
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0.Add(time.Hour),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("verify terminal: %v", err)
			}
		})
	}
}

func TestIssuerTemplate(t *testing.T) {
	f := newFixture(t)
	for typ, ou := range map[CertType]string{Signature: "JPKI for digital signature", Authentication: "JPKI for user authentication"} {
		c := f.issuers[typ]
		want := []string{"JPKI", ou, "Japan Agency for Local Authority Information Systems"}
		got := append(append([]string{}, c.Subject.Organization...), c.Subject.OrganizationalUnit...)
		if strings.Join(got, "|") != strings.Join(want, "|") || !c.IsCA || c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
			t.Errorf("%v issuer %v", typ, c.Subject)
		}
		if e := ext(c, asn1.ObjectIdentifier{2, 5, 29, 19}); e == nil || !e.Critical {
			t.Errorf("%v: basicConstraints not critical", typ)
		}
		if err := c.CheckSignatureFrom(c); err != nil {
			t.Error(err)
		}
		tmpl, _ := IssuerTemplate(IssuerTemplateRequest{Type: typ, Serial: SerialFromBytes([]byte{1}), NotBefore: issuerNB,
			NotAfter: issuerNB.AddDate(10, 0, 0), PublicKey: f.keys[typ].Public()})
		if err := Lint(lint.Linter{}, tmpl, nil); err != nil {
			t.Errorf("lint %v issuer: %v", typ, err)
		}
	}
	// The reference certificate's issuer name encodes exactly like ours.
	ref := referenceCert(t)
	name, _ := IssuerName(Authentication)
	if !bytes.Equal(ref.RawIssuer, name) {
		t.Errorf("issuer name\n% x\nreference\n% x", name, ref.RawIssuer)
	}
	if _, err := IssuerTemplate(IssuerTemplateRequest{Type: Terminal, Serial: SerialFromBytes([]byte{1}), NotBefore: issuerNB,
		NotAfter: issuerNB.AddDate(10, 0, 0), PublicKey: f.keys[Signature].Public()}); !errors.Is(err, ErrInvalid) {
		t.Errorf("terminal issuer: %v", err)
	}
}

func referenceCert(t *testing.T) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "jpki-user-auth-2019.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLintCardProfiles lints both profiles, in the reference certificate's
// form and in the earlier, shorter one (no issuerAltName, no CRL directory
// name, AKI key identifier alone), and with the EKUs a deployment may
// configure, at issuance dates on both sides of zlint's date-gated lints
// (2026-03-15, 2027-03-15, 2029-03-15).
func TestLintCardProfiles(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		short bool
		eku   []string
	}{
		{false, nil}, {true, nil},
		{false, []string{"1.3.6.1.5.5.7.3.4"}},
		{false, []string{"1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.4"}},
	} {
		cfg := testProfileConfig()
		cfg.OmitIssuerAltName, cfg.OmitCRLDirectoryName, cfg.AKIKeyIDOnly = tc.short, tc.short, tc.short
		cfg.SignatureExtKeyUsage = tc.eku
		p, err := NewProfiles(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, issued := range []time.Time{t0, t0.AddDate(1, 0, 0), t0.AddDate(2, 0, 0), t0.AddDate(4, 0, 0), t0.AddDate(10, 0, 0)} {
			for _, typ := range []CertType{Signature, Authentication} {
				req := f.request(typ)
				req.NotBefore, req.NotAfter = issued, issued.AddDate(6, 0, 0)
				tmpl, err := p.Template(req)
				if err != nil {
					t.Fatal(err)
				}
				if err := Lint(lint.Linter{}, tmpl, f.issuers[typ]); err != nil {
					t.Errorf("%v issued %v (short form %v, EKU %v): %v", typ, issued.Format(time.DateOnly), tc.short, tc.eku, err)
				}
			}
		}
	}
}

// TestLintFails checks that Lint reports what zlint finds.
func TestLintFails(t *testing.T) {
	f := newFixture(t)
	tmpl := f.template(t, Authentication)
	// An empty subjectAltName: e_ext_san_no_entries.
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: []byte{0x30, 0x00}})
	err := Lint(lint.Linter{}, tmpl, f.issuers[Authentication])
	if !errors.Is(err, ErrLint) {
		t.Fatalf("Lint = %v, want ErrLint", err)
	}
	if !strings.Contains(err.Error(), "e_ext_san_no_entries") {
		t.Errorf("Lint = %v, want it to name e_ext_san_no_entries", err)
	}
}

type cryptoRand struct{}

func (cryptoRand) Read(b []byte) (int, error) { return rand.Read(b) }

func TestGolden(t *testing.T) {
	f := newFixture(t)
	p := testProfiles(t)
	certs := map[string][]byte{
		"sig-issuer.der":     f.issuers[Signature].Raw,
		"auth-issuer.der":    f.issuers[Authentication].Raw,
		"signature.der":      f.issue(t, p, f.request(Signature)).Raw,
		"authentication.der": f.issue(t, p, f.request(Authentication)).Raw,
	}
	for name, der := range certs {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, der, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if !bytes.Equal(der, want) {
			t.Errorf("%s differs from the golden file (run with -update if intended)", name)
		}
	}
}

func TestOpenSSLDecodes(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	f := newFixture(t)
	p := testProfiles(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		typ  CertType
		want []string
		not  []string
	}{
		{Signature, []string{
			"Subject: C = JP, L = Wakayama-ken, L = Wakayama-shi, CN = 840444E37PAFHN08220003A",
			"Issuer: C = JP, O = JPKI, OU = JPKI for digital signature, OU = Japan Agency for Local Authority Information Systems",
			"X509v3 Key Usage: critical\n                Digital Signature, Non Repudiation",
			"X509v3 Certificate Policies: critical\n                Policy: 1.2.392.200149.8.5.1.1.20\n                  CPS: http://127.0.0.1:8080/cps-signature.html",
			"OCSP - URI:http://127.0.0.1:8080/ocsp",
			"URI:http://127.0.0.1:8080/crl/signature-g1/302015.crl",
			"DirName:C = JP, O = JPKI, OU = JPKI for digital signature, OU = CRL Distribution Points, OU = Wakayama-ken, CN = Wakayama-shi CRLDP",
			"X509v3 Issuer Alternative Name: \n                DirName:/C=JP/O=\\xE5\\x85\\xAC",
			"X509v3 Authority Key Identifier: \n                keyid:",
			"DirName:/C=JP/O=JPKI/OU=JPKI for digital signature/OU=Japan Agency for Local Authority Information Systems\n                serial:01",
			"X509v3 Subject Key Identifier",
			"Not After : Feb 17 14:59:59 2030 GMT",
		}, []string{"Extended Key Usage"}},
		{Authentication, []string{
			"Subject: C = JP, CN = 840444E37PAFHN08220003A",
			"X509v3 Key Usage: critical\n                Digital Signature\n",
			"X509v3 Extended Key Usage: \n                TLS Web Client Authentication",
			"X509v3 Certificate Policies: critical\n                Policy: 1.2.392.200149.8.5.1.3.30\n                  CPS: http://127.0.0.1:8080/cps-authentication.html",
			"URI:http://127.0.0.1:8080/crl/authentication-g1/302015.crl",
			"DirName:C = JP, O = JPKI, OU = JPKI for user authentication, OU = CRL Distribution Points, OU = Wakayama-ken, CN = Wakayama-shi CRLDP",
			"DirName:/C=JP/O=JPKI/OU=JPKI for user authentication/OU=Japan Agency for Local Authority Information Systems\n                serial:01",
		}, []string{"Subject Alternative Name", "Non Repudiation"}},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			c := f.issue(t, p, f.request(tc.typ))
			path := filepath.Join(dir, tc.typ.String()+".der")
			if err := os.WriteFile(path, c.Raw, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("openssl", "x509", "-inform", "DER", "-in", path, "-noout", "-text").CombinedOutput()
			if err != nil {
				t.Fatalf("openssl x509: %v\n%s", err, out)
			}
			text := string(out)
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("openssl output lacks %q", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(text, n) {
					t.Errorf("openssl output has %q", n)
				}
			}
			if tc.typ != Signature {
				return
			}
			// The six otherNames, decoded by openssl asn1parse from the SAN.
			san := ext(c, oidExtSAN)
			sanPath := filepath.Join(dir, "san.der")
			if err := os.WriteFile(sanPath, san.Value, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err = exec.Command("openssl", "asn1parse", "-inform", "DER", "-in", sanPath).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl asn1parse: %v\n%s", err, out)
			}
			text = string(out)
			for i, v := range []string{"和歌山\u3000太郎", "000000", "1", "419900502", "和歌山県和歌山市七番丁２３番地", "000000000000000"} {
				oid := "1.2.392.200149.8.5.5." + string(rune('1'+i))
				if !strings.Contains(text, ":"+oid) {
					t.Errorf("asn1parse lacks otherName %s", oid)
				}
				if !strings.Contains(text, "UTF8STRING        :"+v) {
					t.Errorf("asn1parse lacks UTF8String %q", v)
				}
			}
			if t.Failed() {
				t.Log(text)
			}
		})
	}
}

// TestOpenSSLVerifiesAKI: OpenSSL builds the path from each card
// certificate to its issuer and matches the AKI's issuer name and serial
// too: a certificate of the same issuer name and key under another serial
// is not its issuer, unless the AKI is the key identifier alone.
func TestOpenSSLVerifiesAKI(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	f := newFixture(t)
	cfg := testProfileConfig()
	cfg.AKIKeyIDOnly = true
	keyIDOnly, err := NewProfiles(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writePEM := func(name string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	at := strconv.FormatInt(t0.Add(time.Hour).Unix(), 10)
	for _, typ := range []CertType{Signature, Authentication} {
		tmpl, err := IssuerTemplate(IssuerTemplateRequest{Type: typ, Serial: SerialFromBytes([]byte{2}), NotBefore: issuerNB,
			NotAfter: issuerNB.AddDate(10, 0, 0), PublicKey: f.keys[typ].Public()})
		if err != nil {
			t.Fatal(err)
		}
		recertified := sign(t, tmpl, tmpl, f.keys[typ].Public(), f.keys[typ])
		for _, tc := range []struct {
			name     string
			profiles *Profiles
			issuer   *x509.Certificate
			ok       bool
		}{
			{"issuer", testProfiles(t), f.issuers[typ], true},
			{"issuer under serial 2", testProfiles(t), recertified, false},
			{"issuer under serial 2, AKI key identifier alone", keyIDOnly, recertified, true},
		} {
			leaf := writePEM("leaf.pem", f.issue(t, tc.profiles, f.request(typ)).Raw)
			root := writePEM("root.pem", tc.issuer.Raw)
			out, err := exec.Command("openssl", "verify", "-attime", at, "-CAfile", root, leaf).CombinedOutput()
			if (err == nil) != tc.ok {
				t.Errorf("%v, %s: openssl verify: %v, want success %v\n%s", typ, tc.name, err, tc.ok, out)
			}
		}
	}
}

// TestSubjectKeyIDReference checks SubjectKeyID against an independent
// computation: the SKI J-LIS wrote into the reference certificate.
func TestSubjectKeyIDReference(t *testing.T) {
	ref := referenceCert(t)
	got, err := SubjectKeyID(ref.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, ref.SubjectKeyId) {
		t.Fatalf("SubjectKeyID = % x, reference SKI % x", got, ref.SubjectKeyId)
	}
	if err := CheckCardKey(ref.PublicKey); err != nil {
		t.Errorf("reference card key refused: %v", err)
	}
}
