package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// TestAuditVerifyTamperings: an edited, a deleted and a reordered entry
// each break `jpkica audit verify`, and so does deleting the last entry
// (what remains is a valid shorter chain, but it no longer ends at the head
// the store recorded).
func TestAuditVerifyTamperings(t *testing.T) {
	for _, c := range []struct {
		name string
		sql  []string
	}{
		{"edited", []string{"UPDATE audit_log SET detail = '{}' WHERE seq = 3"}},
		{"deleted", []string{"DELETE FROM audit_log WHERE seq = 3"}},
		{"last deleted", []string{"DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)"}},
		{"reordered", []string{
			// Swap entries 2 and 3 but keep the seq column in order.
			"UPDATE audit_log SET seq = -2 WHERE seq = 2",
			"UPDATE audit_log SET seq = 2 WHERE seq = 3",
			"UPDATE audit_log SET seq = 3 WHERE seq = -2",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc := writeConfig(t)
			cfg, dataDir := tc.path, tc.dataDir
			ctx := context.Background()
			if err := run(ctx, []string{"init", "--config", cfg}, io.Discard, quiet()); err != nil {
				t.Fatal(err)
			}
			if err := run(ctx, []string{"audit", "verify", "--config", cfg}, io.Discard, quiet()); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			db := openSQLite(t, dataDir)
			for _, q := range c.sql {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			err := run(ctx, []string{"audit", "verify", "--config", cfg}, io.Discard, quiet())
			if !errors.Is(err, audit.ErrBroken) {
				t.Fatalf("audit verify after the %s entry = %v, want ErrBroken", c.name, err)
			}
		})
	}
}

// TestAdminCommands: clients issue, revoke and renewals against one store.
func TestAdminCommands(t *testing.T) {
	tc := writeConfig(t)
	cfg, dataDir := tc.path, tc.dataDir
	ctx := context.Background()
	if err := run(ctx, []string{"init", "--config", cfg}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dataDir, "counter-1")
	var out bytes.Buffer
	err := cmdClients(ctx, []string{"issue", "--config", cfg, "--role", "counter", "--municipality", "302015",
		"--name", "counter-1", "--out", prefix}, &out, quiet())
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(out.String(), "serial ")
	serial, _, _ := strings.Cut(after, ":")
	if !ok || serial == "" {
		t.Fatalf("clients issue output: %s", out.String())
	}
	if err := cmdClients(ctx, []string{"issue", "--config", cfg, "--role", "counter", "--name", "x", "--out", prefix + "x"},
		io.Discard, quiet()); err == nil {
		t.Fatal("a counter without a municipality was enrolled")
	}
	out.Reset()
	if err := cmdRevoke(ctx, []string{serial, "--config", cfg, "--reason", "keyCompromise"}, &out, quiet()); err != nil {
		t.Fatal(err)
	}
	var revoked wire.Certificate
	if err := json.Unmarshal(out.Bytes(), &revoked); err != nil {
		t.Fatal(err)
	}
	if revoked.Serial != serial || revoked.Status != "revoked" || revoked.Reason != "keyCompromise" {
		t.Fatalf("revoke output: %s", out.String())
	}
	// The same record as the API's: the certificate with it.
	if c := parsePEM(t, revoked.Certificate); c.SerialNumber.Text(16) != strings.TrimLeft(serial, "0") {
		t.Fatalf("revoke output: certificate %x, want serial %s", c.SerialNumber, serial)
	}
	// The serial may stand after the flags too; revoking again is refused.
	if err := cmdRevoke(ctx, []string{"--config", cfg, serial, "--reason", "keyCompromise"}, io.Discard, quiet()); !errors.Is(err, ca.ErrConflict) {
		t.Fatalf("revoked twice: %v, want ErrConflict", err)
	}
	if err := cmdRevoke(ctx, []string{"--config", cfg, serial, serial, "--reason", "keyCompromise"}, io.Discard, quiet()); !errors.Is(err, errUsage) {
		t.Fatalf("two serials: %v, want a usage error", err)
	}
	if err := cmdRevoke(ctx, []string{"--config", cfg, "--reason", "keyCompromise"}, io.Discard, quiet()); !errors.Is(err, errUsage) {
		t.Fatalf("revoke without a serial: %v", err)
	}
	out.Reset()
	// JSON by default, as GET /v1/renewal-notices answers; CSV when asked.
	if err := cmdRenewals(ctx, []string{"--config", cfg, "--municipality", "302015", "--on", "2031-03-01"}, &out, quiet()); err != nil {
		t.Fatal(err)
	}
	var notices wire.RenewalNotices
	if err := json.Unmarshal(out.Bytes(), &notices); err != nil || notices.Notices == nil {
		t.Fatalf("renewals (default, JSON): %q, %v", out.String(), err)
	}
	out.Reset()
	if err := cmdRenewals(ctx, []string{"--config", cfg, "--municipality", "302015", "--on", "2031-03-01", "--format", "csv"}, &out, quiet()); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "serial,type,resident_id,card_id,municipality,not_after,window_opens" {
		t.Fatalf("renewals --format csv: %q", out.String())
	}
	if err := run(ctx, []string{"audit", "verify", "--config", cfg}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
}

// TestServeAPI: `serve` runs the /v1 API over mutual TLS with a server
// certificate from the client CA that names listen.api_names; an enrolled
// counter reaches it, a client without a certificate gets a JSON 401, and
// it stops with the context.
func TestServeAPI(t *testing.T) {
	tc := writeConfig(t)
	cfg, dataDir := tc.path, tc.dataDir
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("  api_names: [ca.jpkica.test]\n"); err != nil { // under listen:
		t.Fatal(err)
	}
	f.Close()
	apiAddr := tc.api
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := run(ctx, []string{"init", "--config", cfg}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dataDir, "c1")
	if err := cmdClients(ctx, []string{"issue", "--config", cfg, "--role", "counter", "--municipality", "302015",
		"--name", "c1", "--out", prefix}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", cfg}, io.Discard, quiet()) }()
	pair, roots := loadClient(t, prefix)
	get := func(certs []tls.Certificate) (*http.Response, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		return c.Get("https://" + apiAddr + "/v1/renewal-notices?municipality=302015&on=2031-03-01")
	}
	var resp *http.Response
	for range 100 {
		if resp, err = get([]tls.Certificate{pair}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"notices":[]`) {
		t.Fatalf("counter: %d %s", resp.StatusCode, body)
	}
	// Counters that reach the API by its configured name verify it; by
	// another name they do not.
	for name, ok := range map[string]bool{"ca.jpkica.test": true, "elsewhere.jpkica.test": false} {
		c, err := tls.Dial("tcp", apiAddr, &tls.Config{RootCAs: roots, ServerName: name})
		if err == nil {
			c.Close()
		}
		if (err == nil) != ok {
			t.Errorf("server certificate for %s: %v, want verified %v", name, err, ok)
		}
	}
	resp, err = get(nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), "client_certificate_required") {
		t.Fatalf("no certificate: %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	for i := 0; ; i++ {
		if _, err := get([]tls.Certificate{pair}); err != nil {
			break
		}
		if i == 100 {
			t.Fatal("the API still answers after shutdown")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAuditVerifyAnchor: a head printed by an earlier run, kept outside the
// database, catches a truncation that also rewrote the recorded head.
func TestAuditVerifyAnchor(t *testing.T) {
	tc := writeConfig(t)
	ctx := context.Background()
	if err := run(ctx, []string{"init", "--config", tc.path}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(ctx, []string{"audit", "verify", "--config", tc.path}, &out, quiet()); err != nil {
		t.Fatal(err)
	}
	_, head, ok := strings.Cut(strings.TrimSpace(out.String()), "heads ")
	if !ok {
		t.Fatalf("no head in %q", out.String())
	}
	if err := run(ctx, []string{"audit", "verify", "--config", tc.path, "--anchor", head}, io.Discard, quiet()); err != nil {
		t.Fatalf("verify against its own head: %v", err)
	}
	db := openSQLite(t, tc.dataDir)
	for _, q := range []string{
		"DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)",
		"UPDATE audit_heads SET seq = (SELECT max(seq) FROM audit_log), hash = (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1)",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(ctx, []string{"audit", "verify", "--config", tc.path}, io.Discard, quiet()); err != nil {
		t.Fatalf("a consistent truncation is invisible without the anchor, got %v", err)
	}
	if err := run(ctx, []string{"audit", "verify", "--config", tc.path, "--anchor", head}, io.Discard, quiet()); !errors.Is(err, audit.ErrBroken) {
		t.Fatalf("verify against the anchor after truncation = %v, want ErrBroken", err)
	}
}
