package ocsp_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/softhsmtest"
	"github.com/jpkica/jpkica/ocsp"
)

type wantCert struct {
	gen    int
	typ    ca.CertType
	status ca.Status
	reason ca.Reason
	rec    ca.Record
}

// issueSet issues, in each generation, a good, a revoked (keyCompromise)
// and a held certificate of each type.
func issueSet(t testing.TB, f *fixture) []*wantCert {
	var out []*wantCert
	n := 0
	for gen := 1; gen <= 2; gen++ {
		for _, typ := range []ca.CertType{ca.Authentication, ca.Signature} {
			for _, st := range []ca.Status{ca.Good, ca.Revoked, ca.OnHold} {
				n++
				w := &wantCert{gen: gen, typ: typ, status: st}
				w.rec = f.issue(t, gen, typ, fmt.Sprintf("CARD-%d", n))
				switch st {
				case ca.Revoked:
					w.reason = ca.KeyCompromise
					f.changeStatus(t, ca.Revoked, ca.KeyCompromise, w.rec.Serial)
				case ca.OnHold:
					w.reason = ca.CertificateHold
					f.changeStatus(t, ca.OnHold, ca.CertificateHold, w.rec.Serial)
				}
				out = append(out, w)
			}
		}
	}
	return out
}

// waitCached waits until every certificate has a pre-signed response with
// its status.
func waitCached(t testing.TB, p *ocsp.Presigner, certs []*wantCert, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, w := range certs {
		for {
			it, ok := p.Lookup(w.rec.IssuerID, w.rec.Serial, crypto.SHA1)
			if ok && (it.Status == ocsp.StatusGood) == (w.status == ca.Good) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %v gen %d: no pre-signed %v response after %v", w.rec.Serial, w.typ, w.gen, w.status, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func writePEM(t testing.TB, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestInterop(t *testing.T) {
	for _, alg := range []hsm.Algorithm{hsm.ECDSAP256, hsm.RSA2048} {
		t.Run(alg.String(), func(t *testing.T) {
			testInterop(t, newFixture(t, "", alg))
		})
	}
}

// TestInteropSoftHSM: the same with every key in a SoftHSM2 token, signing
// through PKCS #11 (SignContext).
func TestInteropSoftHSM(t *testing.T) {
	tok := softhsmtest.New(t)
	keys, err := hsm.OpenPKCS11(context.Background(), hsm.PKCS11Config{Module: tok.Module, TokenLabel: tok.Label,
		PIN: tok.PIN, MaxSessions: 4}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	testInterop(t, newFixtureKeys(t, "", hsm.ECDSAP256, keys))
}

func testInterop(t *testing.T, f *fixture) {
	certs := issueSet(t, f)
	p := startPresigner(t, f.st, f.issuers(), ocsp.Config{})
	// Pre-signed before anyone asks (the first load).
	waitCached(t, p, certs, 10*time.Second)
	srv := httptest.NewServer(ocsp.NewResponder(p, "/ocsp/").Guard(http.NotFoundHandler()))
	defer srv.Close()
	dir := t.TempDir()
	for i, w := range certs {
		issuer := f.issuerCert(w.rec.IssuerID)
		name := fmt.Sprintf("%s-g%d-%v", w.typ, w.gen, w.status)
		t.Run(name, func(t *testing.T) {
			checkGo(t, srv.URL, w, issuer.Raw, crypto.SHA1)
			checkGo(t, srv.URL, w, issuer.Raw, crypto.SHA256)
			certPath := filepath.Join(dir, fmt.Sprintf("c%d.pem", i))
			issPath := filepath.Join(dir, w.rec.IssuerID+".pem")
			respPath := filepath.Join(dir, w.rec.IssuerID+"-responder.pem")
			writePEM(t, certPath, w.rec.DER)
			writePEM(t, issPath, issuer.Raw)
			writePEM(t, respPath, f.kr.Responders[w.rec.IssuerID].Cert.Raw)
			want := map[ca.Status]string{ca.Good: "good", ca.Revoked: "revoked", ca.OnHold: "revoked"}[w.status]
			out := openSSL(t, "-issuer", issPath, "-cert", certPath, "-url", srv.URL+"/ocsp", "-CAfile", issPath, "-no_nonce")
			mustContain(t, out, certPath+": "+want)
			if w.status != ca.Good {
				mustContain(t, out, "Reason: "+w.reason.String())
			}
			out = openSSL(t, "-sha256", "-issuer", issPath, "-cert", certPath, "-url", srv.URL+"/ocsp", "-VAfile", respPath, "-no_nonce")
			mustContain(t, out, certPath+": "+want)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		for _, ik := range f.kr.Issuers {
			issPath := filepath.Join(dir, ik.Issuer.ID+".pem")
			writePEM(t, issPath, ik.Cert.Raw)
			out := openSSL(t, "-issuer", issPath, "-serial", "0x7fedcba987654321", "-url", srv.URL+"/ocsp", "-CAfile", issPath, "-no_nonce")
			mustContain(t, out, "0x7fedcba987654321: unknown")
		}
	})
}

func openSSL(t testing.TB, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("OPENSSL NOT INSTALLED: skipping the independent OCSP verification")
	}
	out, err := exec.Command("openssl", append([]string{"ocsp"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl ocsp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if !bytes.Contains(out, []byte("Response verify OK")) {
		t.Fatalf("openssl did not verify the response:\n%s", out)
	}
	return string(out)
}

func mustContain(t testing.TB, out, want string) {
	t.Helper()
	if !strings.Contains(out, want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
}

// checkGo asks by POST and by GET (unescaped base64) with x/crypto/ocsp and
// checks both answers are the same bytes, verify, and say what they should.
func checkGo(t *testing.T, base string, w *wantCert, issuerDER []byte, h crypto.Hash) {
	t.Helper()
	cert, issuer := mustParse(t, w.rec.DER), mustParse(t, issuerDER)
	req, err := xocsp.CreateRequest(cert, issuer, &xocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	post := httpDo(t, http.MethodPost, base+"/ocsp", req)
	get := httpDo(t, http.MethodGet, base+"/ocsp/"+base64.StdEncoding.EncodeToString(req), nil)
	if !bytes.Equal(post, get) {
		t.Fatalf("POST and GET answers differ")
	}
	resp, err := xocsp.ParseResponseForCert(get, cert, issuer)
	if err != nil {
		t.Fatalf("x/crypto/ocsp: %v", err)
	}
	if resp.Certificate == nil {
		t.Fatal("no responder certificate in the response")
	}
	if resp.IssuerHash != h {
		t.Fatalf("CertID hash %v, want %v", resp.IssuerHash, h)
	}
	wantStatus := map[ca.Status]int{ca.Good: xocsp.Good, ca.Revoked: xocsp.Revoked, ca.OnHold: xocsp.Revoked}[w.status]
	if resp.Status != wantStatus {
		t.Fatalf("status %d, want %d", resp.Status, wantStatus)
	}
	if w.status != ca.Good && (resp.RevocationReason != int(w.reason) || !resp.RevokedAt.Equal(issueNow.Add(time.Hour))) {
		t.Fatalf("revoked %v reason %d, want %v %d", resp.RevokedAt, resp.RevocationReason, issueNow.Add(time.Hour), w.reason)
	}
	if !resp.NextUpdate.After(resp.ThisUpdate) {
		t.Fatalf("nextUpdate %v not after thisUpdate %v", resp.NextUpdate, resp.ThisUpdate)
	}
}

func httpDo(t testing.TB, method, u string, body []byte) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/ocsp-request")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ocsp-response" {
		t.Fatalf("%s %s: %s %q", method, u, resp.Status, resp.Header.Get("Content-Type"))
	}
	return b
}

// TestNonce: in NonceEcho mode OpenSSL's nonce comes back in a freshly
// signed response (openssl checks it and warns when it is missing); in the
// default mode the pre-signed response is served without it.
func TestNonce(t *testing.T) {
	f := newFixture(t, "", hsm.ECDSAP256)
	rec := f.issue(t, 2, ca.Authentication, "CARD-N")
	dir := t.TempDir()
	certPath, issPath := filepath.Join(dir, "c.pem"), filepath.Join(dir, "i.pem")
	writePEM(t, certPath, rec.DER)
	writePEM(t, issPath, f.issuerCert(rec.IssuerID).Raw)
	for _, tc := range []struct {
		mode      ocsp.NonceMode
		wantNonce bool
	}{{ocsp.NonceEcho, true}, {ocsp.NonceIgnore, false}} {
		p := startPresigner(t, f.st, f.issuers(), ocsp.Config{Nonce: tc.mode})
		srv := httptest.NewServer(ocsp.NewResponder(p, "/ocsp/"))
		out := openSSL(t, "-issuer", issPath, "-cert", certPath, "-url", srv.URL+"/ocsp", "-CAfile", issPath, "-nonce", "-resp_text")
		srv.Close()
		mustContain(t, out, certPath+": good")
		if got := strings.Contains(out, "OCSP Nonce"); got != tc.wantNonce {
			t.Fatalf("mode %d: nonce in response %v, want %v:\n%s", tc.mode, got, tc.wantNonce, out)
		}
		if tc.wantNonce && strings.Contains(out, "WARNING: no nonce") {
			t.Fatalf("nonce not echoed:\n%s", out)
		}
	}
}
