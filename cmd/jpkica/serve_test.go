package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/counter"
)

// TestServeAllRoles runs `serve` with every role and checks the wiring
// between them: a certificate issued through the API is answered good by
// OCSP on the status listener and on the separate OCSP listener, and a revocation through the API turns it revoked at
// shortly after, the pre-signer being the authority's listener.
func TestServeAllRoles(t *testing.T) {
	tc := writeConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := run(ctx, []string{"init", "--config", tc.path}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(tc.dataDir, "counter")
	if err := cmdClients(ctx, []string{"issue", "--config", tc.path, "--role", "counter", "--municipality", "302015",
		"--name", "c1", "--out", prefix}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	serveUntilEnd(t, "--config", tc.path)

	pair, roots := loadClient(t, prefix)
	client, err := counter.NewClient(counter.ClientConfig{BaseURL: "https://" + tc.api, Certificate: pair, ServerCAs: roots, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cardKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := counter.CSR(cardKey)
	if err != nil {
		t.Fatal(err)
	}
	req := wire.IssueRequest{Type: "authentication", CSR: csr, Card: wire.Card{ID: "CARD-SERVE", Expires: "2036-05-02"},
		Resident: wire.Resident{ID: "R-SERVE", Municipality: "302015", Name: "和歌山　太郎", BirthDate: "1990-05-02", Sex: "male",
			Address: "和歌山県和歌山市七番丁２３番地"}}
	var issued wire.Issued
	for i := 0; ; i++ {
		if issued, err = client.Issue(ctx, "serve-test-1", req); err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("issuing through the API: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	leaf := parsePEM(t, issued.Certificate)
	issuer := parsePEM(t, issued.Chain[0])

	reqDER, err := xocsp.CreateRequest(leaf, issuer, &xocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	query := func(base string) *xocsp.Response {
		t.Helper()
		var resp *http.Response
		var err error
		for range 100 {
			resp, err = http.Get(base + "/ocsp/" + base64.StdEncoding.EncodeToString(reqDER))
			if err == nil && resp.StatusCode == 200 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", base, resp.StatusCode, body)
		}
		r, err := xocsp.ParseResponseForCert(body, leaf, issuer)
		if err != nil {
			t.Fatalf("OCSP response from %s: %v", base, err)
		}
		return r
	}
	for _, base := range []string{"http://" + tc.status, "http://" + tc.ocsp} {
		if r := query(base); r.Status != xocsp.Good {
			t.Fatalf("%s: status %d, want good", base, r.Status)
		}
	}

	if _, err := client.Revoke(ctx, issued.Serial, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	// The latency itself is the ocsp package's test and benchmark; here a
	// generous bound only keeps a broken wiring from hanging the test.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := query("http://" + tc.status)
		if r.Status == xocsp.Revoked && r.RevocationReason == xocsp.KeyCompromise {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ten seconds after the revocation OCSP says %d", r.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func parsePEM(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOCSPPresign: `jpkica ocsp presign` signs and stores a response for
// every live certificate of a seeded store, then exits.
func TestOCSPPresign(t *testing.T) {
	tc := writeConfig(t)
	ctx := context.Background()
	if err := run(ctx, []string{"init", "--config", tc.path}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"dev", "seed", "--config", tc.path, "--certificates", "300", "--revoked", "0.2"}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(ctx, []string{"ocsp", "presign", "--config", tc.path}, &out, quiet()); err != nil {
		t.Fatal(err)
	}
	db := openSQLite(t, tc.dataDir)
	var live, stored int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM certificates WHERE cert_type <> 'terminal' AND expiry > ?", time.Now().UTC()).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM ocsp_responses").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if live == 0 || stored != live {
		t.Fatalf("%d live certificates, %d stored responses (%s)", live, stored, out.String())
	}
}

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

// TestReadyz: /readyz is 503 and names what is down when the database or the
// key store does not answer, 200 when both do.
func TestReadyz(t *testing.T) {
	ok := pingFunc(func(context.Context) error { return nil })
	down := pingFunc(func(context.Context) error { return errors.New("connection refused") })
	hang := pingFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	for _, tt := range []struct {
		name     string
		db, keys pinger
		status   int
		body     string
	}{
		{"both up", ok, ok, 200, "ready\n"},
		{"database gone", down, ok, 503, "not ready: database unreachable\n"},
		{"HSM hanging", ok, hang, 503, "not ready: keys unreachable\n"},
		{"both down", down, down, 503, "not ready: database, keys unreachable\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			readyHandler(map[string]pinger{"database": tt.db, "keys": tt.keys}).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if rec.Code != tt.status || rec.Body.String() != tt.body {
				t.Fatalf("readyz = %d %q, want %d %q", rec.Code, rec.Body.String(), tt.status, tt.body)
			}
		})
	}
}

// loadClient reads what `jpkica clients issue --out prefix` wrote: the
// client's key pair and the CA that signed the API's server certificate.
func loadClient(t *testing.T, prefix string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(prefix+".crt", prefix+".key")
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(prefix + "-ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s-ca.crt", prefix)
	}
	return pair, roots
}
