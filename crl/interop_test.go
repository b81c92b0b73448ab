package crl_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
)

func writePEM(t testing.TB, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOpenSSLAgrees publishes every CRL of two issuer generations and checks
// that crypto/x509 accepts each, that `openssl crl -verify` does, and that
// `openssl verify -crl_check` with the partition CRL and with the full CRL
// gives every certificate the status jpkica has for it.
func TestOpenSSLAgrees(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("OPENSSL NOT INSTALLED: skipping the independent CRL checks")
	}
	f := newFixture(t, sqliteDSN(t))
	clock := newClock(crlNow)
	u := f.updater(t, clock, crl.Config{DeltaInterval: 0}, nil)
	ctx := context.Background()
	for _, id := range u.Issuers() {
		if _, err := u.GenerateIssuer(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	pemOf := map[string]string{} // CRL file -> PEM path
	for _, ik := range f.kr.Issuers {
		issuerPEM := writePEM(t, filepath.Join(tmp, ik.Issuer.ID+".pem"), "CERTIFICATE", ik.Cert.Raw)
		files, _ := filepath.Glob(filepath.Join(f.dir, ik.Issuer.ID, "*.crl"))
		if len(files) != 3 { // full + two partitions
			t.Fatalf("%s: published %v", ik.Issuer.ID, files)
		}
		for _, file := range files {
			der, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if err := rl.CheckSignatureFrom(ik.Cert); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			p := writePEM(t, filepath.Join(tmp, ik.Issuer.ID+"-"+filepath.Base(file)+".pem"), "X509 CRL", der)
			pemOf[file] = p
			out, err := exec.Command("openssl", "crl", "-in", file, "-inform", "DER", "-CAfile", issuerPEM, "-noout").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "verify OK") {
				t.Fatalf("openssl crl -verify %s: %v\n%s", file, err, out)
			}
		}
	}
	attime := fmt.Sprint(crlNow.Unix() + 3600)
	seen := map[string]int{}
	for _, c := range f.certs {
		certPEM := writePEM(t, filepath.Join(tmp, c.rec.Serial.Hex()+".pem"), "CERTIFICATE", c.rec.DER)
		issuerPEM := filepath.Join(tmp, c.rec.IssuerID+".pem")
		partition := filepath.Join(f.dir, c.rec.IssuerID, c.rec.Municipality+".crl")
		full := filepath.Join(f.dir, c.rec.IssuerID, "full.crl")
		if got, want := c.cert.CRLDistributionPoints, u.URL(crl.Scope{Issuer: c.rec.IssuerID, Partition: c.rec.Municipality}); len(got) != 1 || got[0] != want {
			t.Fatalf("certificate CRL DP %v, partition URL %s", got, want)
		}
		stored, err := f.st.Certificate(context.Background(), c.rec.Serial)
		if err != nil {
			t.Fatal(err)
		}
		var jpkica string
		switch {
		case !crlNow.Before(stored.NotAfter):
			jpkica = "expired"
		case stored.Status.String() == "good":
			jpkica = "good"
		default:
			jpkica = "revoked" // revoked and on_hold alike
		}
		if wantState := map[want]string{wantGood: "good", wantRevoked: "revoked", wantHeld: "revoked", wantExpired: "expired"}[c.want]; jpkica != wantState {
			t.Fatalf("%s: store says %s, fixture meant %s", c.rec.Serial, jpkica, c.want)
		}
		for _, crlFile := range []string{partition, full} {
			out, _ := exec.Command("openssl", "verify", "-attime", attime, "-crl_check", "-CAfile", issuerPEM,
				"-CRLfile", pemOf[crlFile], certPEM).CombinedOutput()
			got := "other"
			switch s := string(out); {
			case strings.Contains(s, ": OK"):
				got = "good"
			case strings.Contains(s, "certificate revoked"):
				got = "revoked"
			case strings.Contains(s, "certificate has expired"):
				got = "expired"
			}
			seen[got]++
			if got != jpkica {
				t.Errorf("%s %s %s (%s) with %s: openssl says %s, jpkica %s\n%s", c.rec.IssuerID, c.rec.Municipality,
					c.rec.Serial, c.want, filepath.Base(crlFile), got, jpkica, out)
			}
		}
		// The other municipality's partition does not cover the
		// certificate: OpenSSL must not call it good.
		other := "302015"
		if c.rec.Municipality == other {
			other = "082201"
		}
		if c.want != wantExpired {
			out, _ := exec.Command("openssl", "verify", "-attime", attime, "-crl_check", "-CAfile", issuerPEM,
				"-CRLfile", pemOf[filepath.Join(f.dir, c.rec.IssuerID, other+".crl")], certPEM).CombinedOutput()
			if bytes.Contains(out, []byte(": OK")) {
				t.Errorf("%s: the %s partition CRL was taken for a %s certificate:\n%s", c.rec.Serial, other, c.rec.Municipality, out)
			}
		}
	}
	// 2 generations x 2 types x 2 municipalities, checked with 2 CRLs each.
	if seen["good"] != 16 || seen["revoked"] != 32 || seen["expired"] != 16 {
		t.Errorf("openssl verdicts %v, want 16 good, 32 revoked, 16 expired", seen)
	}
}

// TestOpenSSLDelta: a certificate revoked after the base CRL is good for
// OpenSSL with the base alone and revoked with base and delta
// (-use_deltas), for the partition and for the full CRL.
func TestOpenSSLDelta(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("OPENSSL NOT INSTALLED: skipping the independent CRL checks")
	}
	f := newFixture(t, sqliteDSN(t))
	ctx := context.Background()
	clock := newClock(crlNow)
	u := f.updater(t, clock, crl.Config{DeltaInterval: time.Hour}, nil)
	var c fixtureCert
	for _, fc := range f.certs {
		if fc.want == wantGood {
			c = fc
			break
		}
	}
	id := c.rec.IssuerID
	if _, err := u.GenerateIssuer(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	clock.add(5 * time.Minute)
	if _, err := f.st.ChangeStatus(ctx, ca.StatusChange{Serials: []ca.Serial{c.rec.Serial}, Status: ca.OnHold,
		Reason: ca.CertificateHold, At: clock.now(), Audit: audit.Entry{Actor: "admin:test", Action: audit.ActionCertificateHold}}); err != nil {
		t.Fatal(err)
	}
	clock.add(time.Minute)
	if _, err := u.GenerateIssuer(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	issuerPEM := writePEM(t, filepath.Join(tmp, "issuer.pem"), "CERTIFICATE", c.issuer.Cert.Raw)
	certPEM := writePEM(t, filepath.Join(tmp, "cert.pem"), "CERTIFICATE", c.rec.DER)
	attime := fmt.Sprint(clock.now().Unix() + 60)
	for _, name := range []string{c.rec.Municipality, "full"} {
		var both []byte
		for _, file := range []string{name + ".crl", name + "-delta.crl"} {
			der, err := os.ReadFile(filepath.Join(f.dir, id, file))
			if err != nil {
				t.Fatal(err)
			}
			both = append(both, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})...)
			if file == name+".crl" {
				writePEM(t, filepath.Join(tmp, "base.pem"), "X509 CRL", der)
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, "both.pem"), both, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			crls string
			want string
		}{{"base.pem", ": OK"}, {"both.pem", "certificate revoked"}} {
			out, _ := exec.Command("openssl", "verify", "-attime", attime, "-crl_check", "-use_deltas", "-extended_crl",
				"-CAfile", issuerPEM, "-CRLfile", filepath.Join(tmp, tc.crls), certPEM).CombinedOutput()
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("%s with %s: want %q, openssl says:\n%s", name, tc.crls, tc.want, out)
			}
		}
	}
}
