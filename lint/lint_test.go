package lint

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	zl "github.com/zmap/zlint/v3/lint"
)

// The fixtures in testdata are copies of package ca's: its golden
// user-authentication issuer with its key, its golden card certificates of
// both types, and its responder's P-256 key.

// readDER reads testdata/name.
func readDER(tb testing.TB, name string) []byte {
	tb.Helper()
	der, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// readCert reads and parses testdata/name.
func readCert(tb testing.TB, name string) *x509.Certificate {
	tb.Helper()
	c, err := x509.ParseCertificate(readDER(tb, name))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return c
}

// readKey reads the PKCS#8 key testdata/name.key.pem.
func readKey(tb testing.TB, name string) crypto.Signer {
	tb.Helper()
	blk, _ := pem.Decode(readDER(tb, name+".key.pem"))
	if blk == nil {
		tb.Fatalf("%s: no PEM", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(crypto.Signer)
}

// The CRL reason codes of RFC 5280 5.3.1 the tests use.
const (
	keyCompromise      = 1
	caCompromise       = 2
	affiliationChanged = 3
	certificateHold    = 6
)

// TestSources: the registry Certificate and CRL run holds the lints of
// lintSources and no others, each source with lints of its own (a source
// zlint renamed or emptied would otherwise lint nothing, silently), and a
// lint of each rulebook left out is not run.
func TestSources(t *testing.T) {
	reg, err := lintRegistry()
	if err != nil {
		t.Fatal(err)
	}
	perSource := map[zl.LintSource]int{}
	for _, l := range reg.CertificateLints().Lints() {
		if !slices.Contains(lintSources, l.Source) {
			t.Errorf("lint %s of source %s is run", l.Name, l.Source)
		}
		perSource[l.Source]++
	}
	for _, src := range lintSources {
		if perSource[src] == 0 {
			t.Errorf("no certificate lint of source %s is run", src)
		}
	}
	for _, name := range []string{
		"e_sub_cert_eku_missing",                            // CA/B Forum BRs
		"e_tls_server_cert_valid_time_longer_than_398_days", // Apple
		"e_cab_crl_has_valid_reason_code",                   // CA/B Forum BRs, a CRL lint
	} {
		if zl.GlobalRegistry().CertificateLints().ByName(name) == nil && zl.GlobalRegistry().RevocationListLints().ByName(name) == nil {
			t.Errorf("zlint no longer has %s", name)
		}
		if reg.CertificateLints().ByName(name) != nil || reg.RevocationListLints().ByName(name) != nil {
			t.Errorf("%s, a web-PKI lint, is run", name)
		}
	}
}

func TestCRL(t *testing.T) {
	issuer := readCert(t, "auth-issuer.der")
	key := readKey(t, "auth-issuer")
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now,
		NextUpdate: now.Add(48 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: big.NewInt(12345), RevocationTime: now.Add(-time.Hour), ReasonCode: keyCompromise},
			// The JPKI reasons outside the CA/B Forum's list (DOMAIN.md).
			{SerialNumber: big.NewInt(12346), RevocationTime: now.Add(-time.Hour), ReasonCode: certificateHold},
			{SerialNumber: big.NewInt(12347), RevocationTime: now.Add(-time.Hour), ReasonCode: affiliationChanged},
			{SerialNumber: big.NewInt(12348), RevocationTime: now.Add(-time.Hour), ReasonCode: caCompromise},
		},
	}
	der, err := x509.CreateRevocationList(nil, tmpl, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := CRL(der); err != nil {
		t.Errorf("CRL: %v", err)
	}
	// A revocation after thisUpdate: e_crl_revocation_time_after_this_update.
	bad := *tmpl
	bad.RevokedCertificateEntries = []x509.RevocationListEntry{{SerialNumber: big.NewInt(1), RevocationTime: now.Add(time.Hour)}}
	der, err = x509.CreateRevocationList(nil, &bad, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := CRL(der); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "e_crl_revocation_time_after_this_update") {
		t.Errorf("CRL = %v, want ErrFailed naming e_crl_revocation_time_after_this_update", err)
	}
	if err := CRL([]byte{0x30, 0}); !errors.Is(err, ErrFailed) {
		t.Errorf("CRL(garbage) = %v", err)
	}
}

// TestFermatWeakKey: zlint's e_rsa_fermat_factorization is not in the
// registry Certificate runs, and fermatFactors stands in for it: a card
// certificate whose key's primes are neighbours is refused under that
// lint's name, and the error does not carry the factors (they are the
// private key).
func TestFermatWeakKey(t *testing.T) {
	reg, err := lintRegistry()
	if err != nil {
		t.Fatal(err)
	}
	if reg.CertificateLints().ByName(fermatLint) != nil {
		t.Fatalf("%s is still run through zlint", fermatLint)
	}
	if zl.GlobalRegistry().CertificateLints().ByName(fermatLint) == nil {
		t.Fatalf("zlint no longer has %s: fermatFactors replaces nothing", fermatLint)
	}
	q := nextPrime(fermatRoot(11))
	p := nextPrime(new(big.Int).Add(q, big.NewInt(1)))
	weak := &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}
	// The card certificate with the weak key's SubjectPublicKeyInfo in place
	// of the card key's (the same length: both RSA-2048, e = 65537). The
	// signature no longer verifies; the lints do not check it.
	sound := readDER(t, "authentication.der")
	spki, err := x509.MarshalPKIXPublicKey(weak)
	if err != nil {
		t.Fatal(err)
	}
	card := readCert(t, "authentication.der").RawSubjectPublicKeyInfo
	if len(spki) != len(card) || bytes.Count(sound, card) != 1 {
		t.Fatalf("weak SPKI %d bytes, card SPKI %d bytes, %d times in the certificate", len(spki), len(card), bytes.Count(sound, card))
	}
	err = Certificate(bytes.Replace(sound, card, spki, 1))
	if !errors.Is(err, ErrFailed) || !errors.Is(err, ErrWeakKey) || !strings.Contains(err.Error(), fermatLint) {
		t.Fatalf("Certificate(weak key) = %v, want ErrFailed and ErrWeakKey naming %s", err, fermatLint)
	}
	if strings.Contains(err.Error(), p.String()) || strings.Contains(err.Error(), q.String()) {
		t.Errorf("Certificate's error carries a factor of the key: %v", err)
	}
	// The same certificate with the sound card key passes.
	if err := Certificate(sound); err != nil {
		t.Errorf("Certificate(sound key) = %v", err)
	}
}

// TestCertificate: both golden card certificates pass; a certificate that
// zcrypto cannot parse, and one a lint of lintSources refuses, wrap
// ErrFailed and not ErrWeakKey.
func TestCertificate(t *testing.T) {
	for _, name := range []string{"authentication.der", "signature.der", "auth-issuer.der"} {
		if err := Certificate(readDER(t, name)); err != nil {
			t.Errorf("Certificate(%s) = %v", name, err)
		}
	}
	if err := Certificate([]byte{0x30, 0}); !errors.Is(err, ErrFailed) || errors.Is(err, ErrWeakKey) {
		t.Errorf("Certificate(garbage) = %v, want ErrFailed only", err)
	}
	// A CA certificate with an empty subject: RFC 5280 4.1.2.6.
	issuer := readCert(t, "auth-issuer.der")
	tmpl := caTemplate()
	tmpl.Subject = pkix.Name{}
	key := readKey(t, "auth-issuer")
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := Certificate(der); !errors.Is(err, ErrFailed) || errors.Is(err, ErrWeakKey) || !strings.Contains(err.Error(), "e_ca_subject_field_empty") {
		t.Errorf("Certificate(CA without a subject) = %v, want ErrFailed naming e_ca_subject_field_empty, not ErrWeakKey", err)
	}
}

// caTemplate is a self-signed CA template with a key of its own, and an SKI
// for that key that SelfSigned must replace.
func caTemplate() *x509.Certificate {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Country: []string{"JP"}, Organization: []string{"JPKI"}, OrganizationalUnit: []string{"lint test root"}},
		NotBefore:             nb,
		NotAfter:              nb.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          []byte{1, 2, 3, 4},
	}
}

// sha1KeyID is the tests' subject key identifier: SHA-1 of the
// SubjectPublicKeyInfo.
func sha1KeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	h := sha1.Sum(der)
	return h[:], nil
}

// TestSelfSigned: a self-signed template of each key type SelfSigned has a
// throwaway key for is linted under a throwaway key of that type, whose
// SKI keyID makes; a finding wraps ErrFailed; a template without a key or
// with another key type wraps ErrUnsupported; keyID's error is returned.
func TestSelfSigned(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string]crypto.PublicKey{
		"RSA-2048":    readKey(t, "auth-issuer").Public(),
		"ECDSA P-256": readKey(t, "responder").Public(),
		"ECDSA P-384": p384.Public(),
	} {
		t.Run(name, func(t *testing.T) {
			tmpl := caTemplate()
			tmpl.PublicKey = pub
			var got []crypto.PublicKey
			keyID := func(pub crypto.PublicKey) ([]byte, error) {
				got = append(got, pub)
				return sha1KeyID(pub)
			}
			if err := SelfSigned(tmpl, keyID); err != nil {
				t.Fatalf("SelfSigned = %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("keyID called %d times, want once", len(got))
			}
			same, ok := got[0].(interface{ Equal(crypto.PublicKey) bool })
			if !ok || same.Equal(tmpl.PublicKey) {
				t.Errorf("keyID got %T, the template's own key; want a throwaway key", got[0])
			}
			if want, err := throwawayKeyFor(tmpl.PublicKey); err != nil || !same.Equal(want.Public()) {
				t.Errorf("keyID got another key than the throwaway key of the template's type (%v)", err)
			}
			tmpl.Subject = pkix.Name{}
			if err := SelfSigned(tmpl, sha1KeyID); !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "e_ca_subject_field_empty") {
				t.Errorf("SelfSigned(CA without a subject) = %v, want ErrFailed naming e_ca_subject_field_empty", err)
			}
		})
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	noKey := caTemplate()
	edKey := caTemplate()
	edKey.PublicKey = edPub
	for name, tmpl := range map[string]*x509.Certificate{"nil": nil, "no public key": noKey, "Ed25519": edKey} {
		if err := SelfSigned(tmpl, sha1KeyID); !errors.Is(err, ErrUnsupported) || errors.Is(err, ErrFailed) {
			t.Errorf("SelfSigned(%s) = %v, want ErrUnsupported only", name, err)
		}
	}
	errKeyID := errors.New("no key identifier")
	tmpl := caTemplate()
	tmpl.PublicKey = readKey(t, "auth-issuer").Public()
	if err := SelfSigned(tmpl, func(crypto.PublicKey) ([]byte, error) { return nil, errKeyID }); !errors.Is(err, errKeyID) {
		t.Errorf("SelfSigned(keyID fails) = %v, want its error", err)
	}
}

// BenchmarkCertificate: the pre-issuance lint of each card certificate,
// zcrypto's parse and fermatFactors included (docs/benchmarks.md has the
// figures).
func BenchmarkCertificate(b *testing.B) {
	for _, name := range []string{"authentication", "signature"} {
		der := readDER(b, name+".der")
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := Certificate(der); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
