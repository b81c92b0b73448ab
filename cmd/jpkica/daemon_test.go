package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/jpkica/jpkica/internal/config"
)

// TestStatusStacks runs `serve` on each HTTP stack of the status listener
// (listen.status_stack) and makes the same requests of both: OCSP by GET,
// POST and HEAD with its cache headers and 304, a CRL and its 304,
// /readyz, /metrics, a client outside listen.status_clients, an oversized
// POST, other methods and paths that are not served.
func TestStatusStacks(t *testing.T) {
	for _, stack := range []string{config.StackFastHTTP, config.StackNetHTTP} {
		t.Run(stack, func(t *testing.T) { testStatusStack(t, stack) })
	}
}

func testStatusStack(t *testing.T, stack string) {
	tc := writeConfig(t)
	// Only 127.0.0.1 may have revocation data; the outsider below
	// connects from 127.0.0.2.
	appendConfig(t, tc.path, "  status_stack: "+stack+"\n  status_clients: [127.0.0.1]\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, args := range [][]string{{"init", "--config", tc.path}, {"dev", "seed", "--config", tc.path, "--certificates", "20", "--revoked", "0"}} {
		if err := run(ctx, args, io.Discard, quiet()); err != nil {
			t.Fatal(err)
		}
	}
	leaf, issuer := seededCertificate(t, tc)
	reqDER, err := xocsp.CreateRequest(leaf, issuer, &xocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	serveUntilEnd(t, "--config", tc.path)
	base := "http://" + tc.status
	ocspGET := base + "/ocsp/" + url.PathEscape(base64.StdEncoding.EncodeToString(reqDER))

	// The first answers wait for the pre-signer and the first CRLs.
	get := retryUntil200(t, http.DefaultClient, ocspGET)
	if r, err := xocsp.ParseResponseForCert(get.body, leaf, issuer); err != nil || r.Status != xocsp.Good {
		t.Fatalf("OCSP GET: %v, status %v", err, r)
	}
	etag := get.header.Get("ETag")
	for _, h := range []string{"ETag", "Last-Modified", "Expires", "Cache-Control"} {
		if get.header.Get(h) == "" {
			t.Errorf("OCSP GET lacks %s", h)
		}
	}
	if ct := get.header.Get("Content-Type"); ct != "application/ocsp-response" {
		t.Errorf("OCSP GET Content-Type %q", ct)
	}
	crlURL := base + "/crl/" + firstCRL(t, tc)
	crlGET := retryUntil200(t, http.DefaultClient, crlURL)
	if _, err := x509.ParseRevocationList(crlGET.body); err != nil {
		t.Fatalf("GET %s: %v", crlURL, err)
	}

	tests := []struct {
		name, method, url string
		header            map[string]string
		body              []byte
		client            *http.Client
		code              int
		check             func(t *testing.T, a answer)
	}{
		{name: "OCSP GET, If-None-Match", method: "GET", url: ocspGET, header: map[string]string{"If-None-Match": etag}, code: 304},
		{name: "OCSP GET, if-none-match in lower case", method: "GET", url: ocspGET, header: map[string]string{"if-none-match": etag}, code: 304},
		{name: "OCSP POST", method: "POST", url: base + "/ocsp", body: reqDER, header: map[string]string{"Content-Type": "application/ocsp-request"}, code: 200,
			check: func(t *testing.T, a answer) {
				if r, err := xocsp.ParseResponseForCert(a.body, leaf, issuer); err != nil || r.Status != xocsp.Good {
					t.Errorf("OCSP POST: %v", err)
				}
				if cc := a.header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("OCSP POST Cache-Control %q, want no-store", cc)
				}
			}},
		{name: "OCSP HEAD", method: "HEAD", url: ocspGET, code: 200, check: func(t *testing.T, a answer) {
			if len(a.body) != 0 || a.header.Get("Content-Length") != strconv.Itoa(len(get.body)) || a.header.Get("ETag") != etag {
				t.Errorf("HEAD: %d octets of body, Content-Length %q, ETag %q; GET had %d octets, ETag %q",
					len(a.body), a.header.Get("Content-Length"), a.header.Get("ETag"), len(get.body), etag)
			}
		}},
		{name: "OCSP GET, not base64", method: "GET", url: base + "/ocsp/%21%21", code: 200, check: wantOCSPError(xocsp.Malformed)},
		{name: "OCSP POST, content-type in lower case", method: "POST", url: base + "/ocsp", body: reqDER, header: map[string]string{"content-type": "text/plain"},
			code: 200, check: wantOCSPError(xocsp.Malformed)},
		{name: "OCSP PUT", method: "PUT", url: base + "/ocsp", body: reqDER, code: 405},
		{name: "OCSP POST over the limit", method: "POST", url: base + "/ocsp", body: bytes.Repeat([]byte{0x30}, 11<<10),
			header: map[string]string{"Content-Type": "application/ocsp-request"}, code: 413},
		{name: "CRL GET, If-None-Match", method: "GET", url: crlURL, header: map[string]string{"If-None-Match": crlGET.header.Get("ETag")}, code: 304},
		{name: "CRL GET, If-Modified-Since", method: "GET", url: crlURL, header: map[string]string{"If-Modified-Since": crlGET.header.Get("Last-Modified")}, code: 304},
		{name: "CRL HEAD", method: "HEAD", url: crlURL, code: 200, check: func(t *testing.T, a answer) {
			if len(a.body) != 0 || a.header.Get("Content-Length") != strconv.Itoa(len(crlGET.body)) || a.header.Get("Content-Type") != "application/pkix-crl" {
				t.Errorf("CRL HEAD: %d octets of body, Content-Length %q, Content-Type %q; GET had %d octets",
					len(a.body), a.header.Get("Content-Length"), a.header.Get("Content-Type"), len(crlGET.body))
			}
		}},
		{name: "CRL not published", method: "GET", url: base + "/crl/nope.crl", code: 404},
		{name: "readyz", method: "GET", url: base + "/readyz", code: 200},
		{name: "metrics", method: "GET", url: base + "/metrics", code: 200, check: func(t *testing.T, a answer) {
			if !bytes.Contains(a.body, []byte(`jpkica_ocsp_requests_total{status="good"}`)) {
				t.Errorf("/metrics lacks the OCSP answers counted")
			}
		}},
		{name: "metrics POST", method: "POST", url: base + "/metrics", code: 405},
		{name: "no such path", method: "GET", url: base + "/nope", code: 404},
		{name: "no such path beside /ocsp", method: "GET", url: base + "/ocspx/" + base64.StdEncoding.EncodeToString(reqDER), code: 404},
		{name: "outsider OCSP GET", method: "GET", url: ocspGET, client: outsider(), code: 200, check: wantOCSPError(xocsp.Unauthorized)},
		{name: "outsider OCSP POST", method: "POST", url: base + "/ocsp", body: reqDER, client: outsider(), code: 200, check: wantOCSPError(xocsp.Unauthorized)},
		{name: "outsider CRL", method: "GET", url: crlURL, client: outsider(), code: 403},
		{name: "outsider healthz", method: "GET", url: base + "/healthz", client: outsider(), code: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.client
			if c == nil {
				c = http.DefaultClient
			}
			a, err := do(c, tt.method, tt.url, tt.header, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if a.code != tt.code {
				t.Fatalf("%s %s = %d, want %d (%q)", tt.method, tt.url, a.code, tt.code, a.body[:min(len(a.body), 80)])
			}
			if tt.check != nil {
				tt.check(t, a)
			}
		})
	}
}

// serveUntilEnd runs `serve` with args until the test ends, then checks
// that it shut down cleanly.
func serveUntilEnd(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), io.Discard, quiet()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

// answer is an HTTP answer read whole.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

func do(c *http.Client, method, u string, header map[string]string, body []byte) (answer, error) {
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	for k, v := range header {
		req.Header[k] = []string{v} // as spelled, lower case included
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}, err
}

// retryUntil200 GETs u until it answers 200, for up to ten seconds.
func retryUntil200(t *testing.T, c *http.Client, u string) answer {
	t.Helper()
	var a answer
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if a, err = do(c, "GET", u, nil, nil); err == nil && a.code == 200 {
			return a
		}
	}
	t.Fatalf("GET %s: %v, %d %q", u, err, a.code, a.body)
	return a
}

// wantOCSPError checks that an answer is the unsuccessful OCSP response s.
func wantOCSPError(s xocsp.ResponseStatus) func(t *testing.T, a answer) {
	return func(t *testing.T, a answer) {
		var re xocsp.ResponseError
		if _, err := xocsp.ParseResponse(a.body, nil); !errors.As(err, &re) || re.Status != s {
			t.Errorf("OCSP answer: %v, want %v", err, s)
		}
	}
}

// outsider is an HTTP client that connects from 127.0.0.2, outside the
// test's listen.status_clients.
func outsider() *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
}

// firstCRL waits for the crl role's first CRL and is its path under the
// CRL directory, as it is under urls.crl_base ("ISSUER/FILE").
func firstCRL(t *testing.T, tc testConfig) string {
	t.Helper()
	dir := filepath.Join(tc.dataDir, "crl")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if files, _ := filepath.Glob(filepath.Join(dir, "*", "*.crl")); len(files) > 0 {
			rel, err := filepath.Rel(dir, files[0])
			if err != nil {
				t.Fatal(err)
			}
			return filepath.ToSlash(rel)
		}
	}
	t.Fatalf("no CRL in %s after ten seconds", dir)
	return ""
}

// appendConfig appends lines to the listen section, the last of the
// config file writeConfig writes.
func appendConfig(t *testing.T, path, lines string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(lines); err != nil {
		t.Fatal(err)
	}
}

// seededCertificate is a live certificate of the store and its issuer's
// certificate, as `jpkica issuers` writes it.
func seededCertificate(t *testing.T, tc testConfig) (leaf, issuer *x509.Certificate) {
	t.Helper()
	var der []byte
	var label string
	if err := openSQLite(t, tc.dataDir).QueryRow(
		"SELECT der, ca_label FROM certificates WHERE status = 'good' AND cert_type <> 'terminal' LIMIT 1").Scan(&der, &label); err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := run(context.Background(), []string{"issuers", "--config", tc.path, "--out", out}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, label+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s.pem holds no PEM", label)
	}
	if issuer, err = x509.ParseCertificate(block.Bytes); err != nil {
		t.Fatal(err)
	}
	return leaf, issuer
}
