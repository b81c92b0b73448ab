package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/store"

	_ "github.com/mattn/go-sqlite3"
)

// testConfig is a config file for a scratch data directory and free ports.
type testConfig struct {
	path, status, api, ocsp, dataDir string
}

func writeConfig(t *testing.T) testConfig {
	t.Helper()
	dir := t.TempDir()
	c := testConfig{path: filepath.Join(dir, "jpkica.yaml"), status: freeAddr(t), api: freeAddr(t), ocsp: freeAddr(t), dataDir: filepath.Join(dir, "data")}
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`data_dir: %[1]s
store:
  dsn: sqlite:%[1]s/jpkica.db
keys:
  backend: software
  software_dir: %[1]s/keys
listen:
  status: %[2]s
  api: %[3]s
  ocsp: %[4]s
`, c.dataDir, c.status, c.api, c.ocsp)
	if err := os.WriteFile(c.path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestInitRefusesToOverwrite(t *testing.T) {
	cfg := writeConfig(t).path
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"init", "--config", cfg}, &out, quiet()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"issuer signature-g1", "issuer authentication-g1", "client CA terminal-g1", "OCSP responder"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("init output lacks %q:\n%s", want, out.String())
		}
	}
	if err := run(ctx, []string{"init", "--config", cfg}, io.Discard, quiet()); !errors.Is(err, ceremony.ErrInitialised) {
		t.Fatalf("second init = %v, want ErrInitialised", err)
	}
	out.Reset()
	if err := run(ctx, []string{"init", "--config", cfg, "--new-generation"}, &out, quiet()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "issuer signature-g2") || strings.Contains(out.String(), "client CA") {
		t.Fatalf("new generation output:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"audit", "verify", "--config", cfg}, &out, quiet()); err != nil {
		t.Fatal(err)
	}
	// Two issuers, two responders and the client CA, then two of each again.
	if !strings.Contains(out.String(), "9 entries") {
		t.Fatalf("audit verify: %s", out.String())
	}
}

// TestIssuers: `jpkica issuers` writes each card issuer generation's
// certificate and its newest OCSP responder's, which that issuer
// certifies for OCSP signing, and not the client CA; on a store without
// issuers it says so.
func TestIssuers(t *testing.T) {
	cfg := writeConfig(t).path
	ctx := context.Background()
	out := t.TempDir()
	if err := run(ctx, []string{"issuers", "--config", cfg, "--out", out}, io.Discard, quiet()); !errors.Is(err, ca.ErrNotFound) {
		t.Fatalf("issuers before init = %v, want ErrNotFound", err)
	}
	for _, args := range [][]string{{"init", "--config", cfg}, {"init", "--config", cfg, "--new-generation"}} {
		if err := run(ctx, args, io.Discard, quiet()); err != nil {
			t.Fatal(err)
		}
	}
	var listed bytes.Buffer
	if err := run(ctx, []string{"issuers", "--config", cfg, "--out", out}, &listed, quiet()); err != nil {
		t.Fatal(err)
	}
	read := func(name string) *x509.Certificate {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != "CERTIFICATE" {
			t.Fatalf("%s is not a PEM certificate", name)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, id := range []string{"signature-g1", "signature-g2", "authentication-g1", "authentication-g2"} {
		issuer, responder := read(id+".pem"), read(id+"-ocsp.pem")
		if !issuer.IsCA || issuer.CheckSignatureFrom(issuer) != nil {
			t.Errorf("%s.pem is not a self-signed CA certificate", id)
		}
		if err := responder.CheckSignatureFrom(issuer); err != nil || !slices.Contains(responder.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			t.Errorf("%s-ocsp.pem: %v, EKU %v", id, err, responder.ExtKeyUsage)
		}
		if !strings.Contains(listed.String(), filepath.Join(out, id+".pem")) {
			t.Errorf("output does not list %s.pem:\n%s", id, listed.String())
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 8 {
		t.Errorf("%d files written, want 8 (4 issuers, 4 responders)", len(entries))
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	tc := writeConfig(t)
	cfg, dataDir := tc.path, tc.dataDir
	ctx := context.Background()
	if err := run(ctx, []string{"init", "--config", cfg}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	db := openSQLite(t, dataDir)
	if _, err := db.ExecContext(ctx, "UPDATE audit_log SET actor = 'someone else' WHERE seq = 2"); err != nil {
		t.Fatal(err)
	}
	err := run(ctx, []string{"audit", "verify", "--config", cfg}, io.Discard, quiet())
	if !errors.Is(err, audit.ErrBroken) {
		t.Fatalf("audit verify after an edit = %v, want ErrBroken", err)
	}
}

func TestServeHealthAndShutdown(t *testing.T) {
	tc := writeConfig(t)
	cfg, addr := tc.path, tc.status
	ctx, cancel := context.WithCancel(context.Background())
	if err := run(ctx, []string{"init", "--config", cfg}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", cfg}, io.Discard, quiet()) }()
	base := "http://" + addr
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		if resp, err = http.Get(base + "/healthz"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("serve never answered /healthz: %v", err)
	}
	resp.Body.Close()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/nope": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	// The CPS page the certificates' policy qualifiers name is served at
	// the path of its URL (urls.cps_*: /cps.html by default).
	resp, err = http.Get(base + "/cps.html")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /cps.html = %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{ca.OIDPolicySignature.String(), ca.OIDPolicyAuthentication.String(), "cACompromise", "6th birthday"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the CPS page lacks %q", want)
		}
	}
	// The expiries worth an alert are on /metrics: the issuers' and the
	// OCSP responders'.
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`jpkica_ca_issuer_not_after_seconds{issuer="signature-g1"}`,
		`jpkica_ocsp_responder_not_after_seconds{issuer="authentication-g1"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve after shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not shut down")
	}
}

func TestServeEmbeddedDefaultsFirstStart(t *testing.T) {
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := os.Stat("jpkica-data")
	if err == nil || st != nil {
		t.Fatal("scratch directory not empty")
	}
	// The embedded defaults listen on 127.0.0.1:8080, which another process
	// may hold; bootstrap alone is what this test is about.
	if err := run(ctx, []string{"dev", "seed", "--certificates", "2000", "--municipalities", "3"}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"jpkica-data/jpkica.db", "jpkica-data/clients/dev-counter-302015.crt", "jpkica-data/clients/dev-admin.key",
		"jpkica-data/issuers/signature-g1.pem", "jpkica-data/issuers/authentication-g1-ocsp.pem"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("first start did not write %s: %v", f, err)
		}
	}
	// What only its owner may read: the keys, and the database with every
	// resident's 4 facts, in a directory only its owner may enter.
	for f, want := range map[string]os.FileMode{"jpkica-data/clients/dev-admin.key": 0o600, "jpkica-data/jpkica.db": 0o600,
		"jpkica-data": 0o700} {
		info, err := os.Stat(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
		} else if perm := info.Mode().Perm(); perm != want {
			t.Errorf("%s has mode %04o, want %04o", f, perm, want)
		}
	}
}

func TestSeed(t *testing.T) {
	tc := writeConfig(t)
	cfg, dataDir := tc.path, tc.dataDir
	ctx := context.Background()
	if err := run(ctx, []string{"dev", "seed", "--config", cfg, "--certificates", "100"}, io.Discard, quiet()); err == nil {
		t.Fatal("seed without issuers succeeded")
	}
	if err := run(ctx, []string{"init", "--config", cfg}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"dev", "seed", "--config", cfg, "--certificates", "25000", "--revoked", "0.2", "--municipalities", "10"}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, "sqlite:"+dataDir+"/jpkica.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var total, revoked, held, synthetic, municipalities int
	db := openSQLite(t, dataDir)
	if err := db.QueryRowContext(ctx, `SELECT count(*), sum(status = 'revoked' AND reason <> 6), sum(status = 'revoked' AND reason = 6),
		sum(synthetic), count(DISTINCT municipality) FROM certificates`).Scan(&total, &revoked, &held, &synthetic, &municipalities); err != nil {
		t.Fatal(err)
	}
	if total != 25000 || synthetic != total || municipalities != 10 {
		t.Fatalf("seeded %d (synthetic %d) over %d municipalities", total, synthetic, municipalities)
	}
	// 20% revoked or held, a tenth of those held: allow for chance.
	if frac := float64(revoked+held) / float64(total); frac < 0.17 || frac > 0.23 || held == 0 {
		t.Fatalf("revoked %d held %d of %d", revoked, held, total)
	}

	// A store that holds a real certificate is refused.
	keys, err := hsm.OpenSoftware(dataDir + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := ceremony.Load(ctx, st, keys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ceremony.IssueClient(ctx, st, kr, ceremony.ClientRequest{Role: "admin", Name: "real", Validity: time.Hour, Actor: "admin:test"}, time.Now(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if err := run(ctx, []string{"dev", "seed", "--config", cfg, "--certificates", "10"}, io.Discard, quiet()); !errors.Is(err, errRealStore) {
		t.Fatalf("seeding a real store = %v, want errRealStore", err)
	}
}

// openSQLite opens the daemon's database file directly, as an attacker with
// file access (or a curious test) would.
func openSQLite(t *testing.T, dataDir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", filepath.Join(dataDir, "jpkica.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"dev"}, {"dev", "seed"}, {"serve", "--role", "dns"}, {"serve", "extra"}, {"audit"}} {
		if err := run(context.Background(), args, io.Discard, quiet()); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}

// freeAddr is a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestHelp: -h after a command lists its line of usage and its flags and
// is no failure; an unknown flag is a usage error that lists them too.
func TestHelp(t *testing.T) {
	for args, want := range map[string][]string{
		"revoke -h":        {"usage: jpkica revoke ", "-reason", "-config"},
		"crl generate -h":  {"usage: jpkica crl generate ", "-partition", "-delta"},
		"serve --help":     {"usage: jpkica serve ", "-role"},
		"clients issue -h": {"-municipality", "-out"},
	} {
		err := run(context.Background(), strings.Fields(args), io.Discard, slog.New(slog.DiscardHandler))
		var help helpText
		if !errors.As(err, &help) {
			t.Errorf("run(%q) = %v, want help", args, err)
			continue
		}
		for _, w := range want {
			if !strings.Contains(string(help), w) {
				t.Errorf("run(%q) help lacks %q:\n%s", args, w, help)
			}
		}
	}
	err := run(context.Background(), []string{"revoke", "--nope"}, io.Discard, slog.New(slog.DiscardHandler))
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "-reason") {
		t.Errorf("an unknown flag: %v, want a usage error listing the flags", err)
	}
}

// TestCRLGenerateUnknownPartition: `crl generate --partition` with a code
// that is no configured municipality (and no revoked certificate's) is a
// usage error that names the rule, and publishes nothing; a configured one
// is published.
func TestCRLGenerateUnknownPartition(t *testing.T) {
	tc := writeConfig(t)
	ctx := context.Background()
	if err := run(ctx, []string{"init", "--config", tc.path}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	err := run(ctx, []string{"crl", "generate", "--config", tc.path, "--partition", "999999", "--out", out}, io.Discard, quiet())
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "not a configured municipality") {
		t.Fatalf("crl generate --partition 999999 = %v, want a usage error naming the rule", err)
	}
	if files, _ := filepath.Glob(filepath.Join(out, "*", "*.crl")); len(files) != 0 {
		t.Fatalf("published %v for an unknown partition", files)
	}
	var stdout bytes.Buffer
	if err := run(ctx, []string{"crl", "generate", "--config", tc.path, "--partition", "302015", "--out", out}, &stdout, quiet()); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(out, "*", "302015.crl")); len(files) != 2 {
		t.Fatalf("crl generate --partition 302015 published %v, want one per card issuer\n%s", files, stdout.String())
	}
}
