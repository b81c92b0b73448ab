package ca

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zmap/zlint/v3/lint"
)

// TestLintSources: the registry Lint runs holds the lints of lintSources
// and no others, each source with lints of its own (a source zlint renamed
// or emptied would otherwise lint nothing, silently), and a lint of each
// rulebook left out is not run.
func TestLintSources(t *testing.T) {
	reg, err := lintRegistry()
	if err != nil {
		t.Fatal(err)
	}
	perSource := map[lint.LintSource]int{}
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
		if lint.GlobalRegistry().CertificateLints().ByName(name) == nil && lint.GlobalRegistry().RevocationListLints().ByName(name) == nil {
			t.Errorf("zlint no longer has %s", name)
		}
		if reg.CertificateLints().ByName(name) != nil || reg.RevocationListLints().ByName(name) != nil {
			t.Errorf("%s, a web-PKI lint, is run", name)
		}
	}
}

func TestLintCRL(t *testing.T) {
	f := newFixture(t)
	issuer := f.issuers[Authentication]
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now,
		NextUpdate: now.Add(48 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: big.NewInt(12345), RevocationTime: now.Add(-time.Hour), ReasonCode: int(KeyCompromise)},
			// The JPKI reasons outside the CA/B Forum's list (DOMAIN.md).
			{SerialNumber: big.NewInt(12346), RevocationTime: now.Add(-time.Hour), ReasonCode: int(CertificateHold)},
			{SerialNumber: big.NewInt(12347), RevocationTime: now.Add(-time.Hour), ReasonCode: int(AffiliationChanged)},
			{SerialNumber: big.NewInt(12348), RevocationTime: now.Add(-time.Hour), ReasonCode: int(CACompromise)},
		},
	}
	der, err := x509.CreateRevocationList(nil, tmpl, issuer, f.keys[Authentication])
	if err != nil {
		t.Fatal(err)
	}
	if err := LintCRL(der); err != nil {
		t.Errorf("LintCRL: %v", err)
	}
	// A revocation after thisUpdate: e_crl_revocation_time_after_this_update.
	bad := *tmpl
	bad.RevokedCertificateEntries = []x509.RevocationListEntry{{SerialNumber: big.NewInt(1), RevocationTime: now.Add(time.Hour)}}
	der, err = x509.CreateRevocationList(nil, &bad, issuer, f.keys[Authentication])
	if err != nil {
		t.Fatal(err)
	}
	if err := LintCRL(der); !errors.Is(err, ErrLint) || !strings.Contains(err.Error(), "e_crl_revocation_time_after_this_update") {
		t.Errorf("LintCRL = %v, want ErrLint naming e_crl_revocation_time_after_this_update", err)
	}
	if err := LintCRL([]byte{0x30, 0}); !errors.Is(err, ErrLint) {
		t.Errorf("LintCRL(garbage) = %v", err)
	}
}

// TestLintFermatWeakKey: zlint's e_rsa_fermat_factorization is not in the
// registry Lint runs, and fermatFactors stands in for it: a card key whose
// primes are neighbours is refused under that lint's name, and the error
// does not carry the factors (they are the private key).
func TestLintFermatWeakKey(t *testing.T) {
	reg, err := lintRegistry()
	if err != nil {
		t.Fatal(err)
	}
	if reg.CertificateLints().ByName(fermatLint) != nil {
		t.Fatalf("%s is still run through zlint", fermatLint)
	}
	if lint.GlobalRegistry().CertificateLints().ByName(fermatLint) == nil {
		t.Fatalf("zlint no longer has %s: fermatFactors replaces nothing", fermatLint)
	}
	f := newFixture(t)
	q := nextPrime(fermatRoot(11))
	p := nextPrime(new(big.Int).Add(q, big.NewInt(1)))
	weak := &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}
	req := f.request(Authentication)
	req.PublicKey = weak
	tmpl, err := testProfiles(t).Template(req)
	if err != nil {
		t.Fatal(err)
	}
	err = Lint(tmpl, f.issuers[Authentication])
	if !errors.Is(err, ErrLint) || !errors.Is(err, ErrWeakKey) || !strings.Contains(err.Error(), fermatLint) {
		t.Fatalf("Lint(weak key) = %v, want ErrLint and ErrWeakKey naming %s", err, fermatLint)
	}
	if strings.Contains(err.Error(), p.String()) || strings.Contains(err.Error(), q.String()) {
		t.Errorf("Lint's error carries a factor of the key: %v", err)
	}
	// The same template with a sound key passes.
	req.PublicKey = f.card.Public()
	if tmpl, err = testProfiles(t).Template(req); err != nil {
		t.Fatal(err)
	}
	if err := Lint(tmpl, f.issuers[Authentication]); err != nil {
		t.Errorf("Lint(sound key) = %v", err)
	}
}

// BenchmarkLintDER: the pre-issuance lint of each card certificate's
// TBSCertificate, zcrypto's parse and fermatFactors included
// (docs/benchmarks.md has the figures).
func BenchmarkLintDER(b *testing.B) {
	f := newFixture(b)
	for _, typ := range []CertType{Authentication, Signature} {
		tbs, err := buildTBS(f.template(b, typ), f.issuers[typ])
		if err != nil {
			b.Fatal(err)
		}
		der, err := tbs.lintDER(f.issuers[typ])
		if err != nil {
			b.Fatal(err)
		}
		b.Run(typ.String(), func(b *testing.B) {
			for b.Loop() {
				if err := LintDER(der); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
