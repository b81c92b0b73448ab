package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/counter"
)

// screenshots, when set, is where TestConsoleInBrowser writes its
// screenshots (docs/images to refresh the documentation's); else a
// temporary directory.
var screenshots = flag.String("screenshots", "", "directory for the console's screenshots (e.g. ../../docs/images)")

// consoleDaemon is a daemon with every role, serving seeded data, and the
// client certificates of an admin and a counter.
type consoleDaemon struct {
	tc     testConfig
	admin  tls.Certificate
	ctr    tls.Certificate
	roots  *x509.CertPool
	serial string // the revoked certificate
}

// startConsoleDaemon runs `init`, issues an admin and a counter client
// certificate, serves every role, and seeds it through the API: three
// issuances in municipality 302015, one revocation, one card on hold.
func startConsoleDaemon(t *testing.T, ctx context.Context) *consoleDaemon {
	t.Helper()
	tc := writeConfig(t)
	if err := run(ctx, []string{"init", "--config", tc.path}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"--role", "admin", "--name", "alice"}, {"--role", "counter", "--municipality", "302015", "--name", "c1"}} {
		args := append([]string{"issue", "--config", tc.path, "--out", filepath.Join(tc.dataDir, c[1])}, c...)
		if err := cmdClients(ctx, args, io.Discard, quiet()); err != nil {
			t.Fatal(err)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(sctx, []string{"serve", "--config", tc.path}, io.Discard, quiet()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	d := &consoleDaemon{tc: tc}
	var roots *x509.CertPool
	d.admin, roots = loadClient(t, filepath.Join(tc.dataDir, "admin"))
	d.ctr, _ = loadClient(t, filepath.Join(tc.dataDir, "counter"))
	d.roots = roots
	client := func(pair tls.Certificate) *counter.Client {
		c, err := counter.NewClient(counter.ClientConfig{BaseURL: "https://" + tc.api, Certificate: pair, ServerCAs: roots, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctr, adm := client(d.ctr), client(d.admin)
	// Each issuance certifies a key of its own: the store refuses a key
	// certified for another card.
	issue := func(typ, card, resident string) wire.Issued {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		csr, err := counter.CSR(key)
		if err != nil {
			t.Fatal(err)
		}
		req := wire.IssueRequest{Type: typ, CSR: csr, Card: wire.Card{ID: card, Expires: "2036-05-02"},
			Resident: wire.Resident{ID: resident, Municipality: "302015", Name: "和歌山　太郎", BirthDate: "1990-05-02", Sex: "male",
				Address: "和歌山県和歌山市七番丁２３番地"}}
		for i := 0; ; i++ {
			is, err := ctr.Issue(ctx, "console-"+card+"-"+typ, req)
			if err == nil {
				return is
			}
			if i == 100 {
				t.Fatalf("issuing through the API: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	issue("signature", "CARD-A", "R-A")
	revoked := issue("authentication", "CARD-A", "R-A")
	issue("authentication", "CARD-B", "R-B")
	if _, err := ctr.Revoke(ctx, revoked.Serial, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Hold(ctx, "CARD-B"); err != nil {
		t.Fatal(err)
	}
	d.serial = revoked.Serial
	return d
}

// adminProxy is a plain-HTTP reverse proxy on 127.0.0.1 that presents the
// admin client certificate to the daemon's /v1 listener. It is test-only:
// chromedp cannot easily make Chromium present a client certificate, so the
// browser talks to this proxy, and the proxy does the mutual TLS an
// administrator's browser does with the imported certificate.
func adminProxy(t *testing.T, d *consoleDaemon) *httptest.Server {
	t.Helper()
	target := &url.URL{Scheme: "https", Host: d.tc.api}
	p := httputil.NewSingleHostReverseProxy(target)
	p.Transport = &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{d.admin}, RootCAs: d.roots, MinVersion: tls.VersionTLS12}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

// TestConsoleRefusesOtherRoles: a counter's certificate gets 403 from
// /admin/, with the API's JSON error; no certificate at all does not get
// through the handshake's identification either (401).
func TestConsoleRefusesOtherRoles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := startConsoleDaemon(t, ctx)
	for _, tt := range []struct {
		name   string
		certs  []tls.Certificate
		status int
		code   string
	}{
		{"counter", []tls.Certificate{d.ctr}, http.StatusForbidden, wire.CodeRoleForbidden},
		{"no certificate", nil, http.StatusUnauthorized, wire.CodeClientCertRequired},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{Certificates: tt.certs, RootCAs: d.roots, MinVersion: tls.VersionTLS12}}}
			for _, path := range []string{"/admin/", "/admin/lookup?by=serial&q=" + d.serial, "/admin/assets/console.css"} {
				resp, err := c.Get("https://" + d.tc.api + path)
				if err != nil {
					t.Fatal(err)
				}
				var body wire.ErrorBody
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != tt.status || err != nil || body.Error.Code != tt.code {
					t.Errorf("GET %s: %d %q (%v), want %d %q", path, resp.StatusCode, body.Error.Code, err, tt.status, tt.code)
				}
			}
		})
	}
}

// findChromium finds Debian's chromium, or skips loudly.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("JPKICA_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("SKIPPING the console's browser test: no chromium (apt-get install -y chromium, or set JPKICA_TEST_CHROMIUM)")
	return ""
}

// TestConsoleInBrowser opens every view of the console in headless
// Chromium, against a daemon serving seeded data, checks what each shows
// and takes a screenshot of it.
func TestConsoleInBrowser(t *testing.T) {
	chromium := findChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := startConsoleDaemon(t, ctx)
	proxy := adminProxy(t, d)

	// The crl role publishes at start; wait for the CRLs before looking.
	waitFor(t, ctx, proxy.URL+"/admin/crls", "complete")

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.WindowSize(1200, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// Start the browser on bctx itself: a browser started on a derived
	// context would end with it.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	views := []struct {
		name, path string
		want       []string
	}{
		{"overview", "/admin/", []string{"Issuer generations", "Ready", "Today"}},
		{"issuers", "/admin/issuers", []string{"signature-g1", "authentication-g1", "issuing", "Renewal due"}},
		{"crls", "/admin/crls", []string{"signature-g1 / full", "authentication-g1 / 302015", "complete", "delta", "0 late"}},
		{"ocsp", "/admin/ocsp", []string{"Responses held", "Signing errors since start"}},
		{"health", "/admin/health", []string{"database", "keys", "reachable", "no replication reported"}},
		{"activity", "/admin/activity", []string{"302015", "3 issued, 1 revoked, 0 superseded, 1 held"}},
		{"audit", "/admin/audit", []string{"certificate.hold", "certificate.revoke", "certificate.issue", "Chains verified"}},
		{"lookup", "/admin/lookup?by=serial&q=" + d.serial, []string{d.serial, "revoked", "keyCompromise", "Status history", "certificate.revoke"}},
		{"lookup-card", "/admin/lookup?by=card&q=CARD-B", []string{"on_hold", "certificate.hold", "CARD-B"}},
	}
	for _, v := range views {
		t.Run(v.name, func(t *testing.T) {
			// Navigate waits for the page's load event.
			nctx, ncancel := context.WithTimeout(bctx, 20*time.Second)
			defer ncancel()
			if err := chromedp.Do(nctx, chromedp.Navigate(proxy.URL+v.path)); err != nil {
				t.Fatalf("opening %s: %v", v.path, err)
			}
			text, err := chromedp.Run(nctx, chromedp.Text("main"))
			if err != nil {
				t.Fatalf("reading %s: %v", v.path, err)
			}
			png, err := chromedp.Run(nctx, chromedp.CaptureScreenshot()) // the 1200×900 window: small files
			if err != nil {
				t.Fatalf("screenshot of %s: %v", v.path, err)
			}
			for _, w := range v.want {
				if !strings.Contains(text, w) {
					t.Errorf("%s does not show %q; it shows:\n%s", v.path, w, text)
				}
			}
			if strings.Contains(text, "Could not read") {
				t.Errorf("%s failed to read a view:\n%s", v.path, text)
			}
			if err := os.WriteFile(filepath.Join(dir, "console-"+v.name+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// waitFor polls url until its body contains want, for up to 30 seconds.
func waitFor(t *testing.T, ctx context.Context, url, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last string
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if last = string(b); strings.Contains(last, want) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never showed %q; last:\n%s", url, want, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
