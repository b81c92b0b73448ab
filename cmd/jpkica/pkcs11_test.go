package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/config"
	"github.com/jpkica/jpkica/internal/softhsmtest"
)

// TestInitWithSoftHSM runs the key ceremony into a SoftHSM2 token with the
// PIN read from a file the config names, and checks that the PIN shows up in
// no output.
func TestInitWithSoftHSM(t *testing.T) {
	tok := softhsmtest.New(t)
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "jpkica.yaml")
	cfg := fmt.Sprintf(`data_dir: %[1]s
store:
  dsn: sqlite:%[1]s/jpkica.db
keys:
  backend: pkcs11
  pkcs11:
    module: %[2]s
    token_label: %[3]s
    pin_file: %[4]s
    max_sessions: 2
`, dir, tok.Module, tok.Label, pinFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, logs bytes.Buffer
	logger := newTextLogger(&logs)
	if err := run(context.Background(), []string{"init", "--config", cfgPath}, &out, logger); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "issuer signature-g1") {
		t.Fatalf("init output:\n%s", out.String())
	}
	if strings.Contains(out.String()+logs.String(), tok.PIN) {
		t.Fatal("the HSM PIN appears in the output or the logs")
	}

	// A wrong PIN fails without naming it.
	if err := os.WriteFile(pinFile+"-wrong", []byte("999999\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(cfg, pinFile, pinFile+"-wrong", 1)
	if err := os.WriteFile(cfgPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"init", "--config", cfgPath}, io.Discard, logger)
	if err == nil {
		t.Fatal("init with a wrong PIN succeeded")
	}
	if strings.Contains(err.Error(), "999999") || strings.Contains(logs.String(), "999999") {
		t.Fatalf("the wrong PIN appears in the error or the logs: %v", err)
	}

	// A PIN file that others may read is refused at start, with the fix.
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pinFile, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"serve", "init"} {
		// Bounded, so that a serve that does start stops again.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := run(ctx, []string{cmd, "--config", cfgPath}, io.Discard, logger)
		cancel()
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "chmod 600 "+pinFile) {
			t.Errorf("%s with a PIN file of mode 0644: %v, want config.ErrInvalid saying chmod 600 %s", cmd, err, pinFile)
		}
		if err != nil && strings.Contains(err.Error()+logs.String(), tok.PIN) {
			t.Errorf("%s: the PIN appears in the error or the logs", cmd)
		}
	}
}

// TestKeyStoreMetrics: /metrics carries the PKCS #11 store's counters, and
// nothing for the software store.
func TestKeyStoreMetrics(t *testing.T) {
	_, keys, s := tokenWithKey(t, 0)
	digest := sha256.Sum256([]byte("metrics"))
	for range 3 {
		if _, err := s.Sign(nil, digest[:], crypto.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	if err := registerKeyStoreMetrics(reg, keys); err != nil {
		t.Fatal(err)
	}
	got := gatherValues(t, reg)
	// Which way each call went depends on the scheduler's load; together
	// they are the three signatures.
	for name, want := range map[string]float64{
		"jpkica_hsm_signing_calls_total":     3,
		"jpkica_hsm_signature_errors_total":  0,
		"jpkica_hsm_reinitialisations_total": 0,
		"jpkica_hsm_reinit_attempts_total":   0,
		"jpkica_hsm_sessions_open":           1,
		"jpkica_hsm_sessions_in_use":         0,
		"jpkica_hsm_login_refused":           0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (exported: %t), want %v", name, v, ok, want)
		}
	}

	softDir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(softDir, 0o700); err != nil {
		t.Fatal(err)
	}
	soft, err := hsm.OpenSoftware(softDir)
	if err != nil {
		t.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	if err := registerKeyStoreMetrics(reg, soft); err != nil {
		t.Fatal(err)
	}
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Errorf("the software store exports %d metric families, want none", len(mfs))
	}
}

// tokenWithKey opens a new SoftHSM2 token (with the given cap on the
// re-initialisation backoff; 0 for the default) and makes an ECDSA key on it.
func tokenWithKey(t *testing.T, maxBackoff time.Duration) (*softhsmtest.Token, *hsm.PKCS11, crypto.Signer) {
	t.Helper()
	tok := softhsmtest.New(t)
	keys, err := hsm.OpenPKCS11(context.Background(), hsm.PKCS11Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN,
		MaxReinitBackoff: maxBackoff}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	s, err := keys.GenerateKey(context.Background(), hsm.GenerateKeyRequest{Label: "test-key", Algorithm: hsm.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	return tok, keys, s
}

// gatherValues reads every metric of reg, summing a family's series.
func gatherValues(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return got
}

// TestKeyStoreLoginRefused: the token goes away and comes back
// re-initialised with another PIN. The key store stops trying the PIN, and
// an operator can tell from /readyz and /metrics that waiting will not
// help, without either naming the PIN.
func TestKeyStoreLoginRefused(t *testing.T) {
	tok, keys, s := tokenWithKey(t, 100*time.Millisecond)
	reg := prometheus.NewRegistry()
	if err := registerKeyStoreMetrics(reg, keys); err != nil {
		t.Fatal(err)
	}
	if v := gatherValues(t, reg)["jpkica_hsm_login_refused"]; v != 0 {
		t.Fatalf("jpkica_hsm_login_refused = %v before the PIN was refused, want 0", v)
	}
	database := pingFunc(func(context.Context) error { return nil })
	ready := readyHandler(map[string]pinger{"database": database, "keys": keys})

	tok.Unplug(t)
	tok.InitToken(t, tok.Label, "another-pin-0000")
	digest := sha256.Sum256([]byte("refused"))
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := s.Sign(nil, digest[:], crypto.SHA256)
		if errors.Is(err, hsm.ErrLogin) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the key store never gave up on the refused PIN: last error %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	rec := httptest.NewRecorder()
	ready.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	const want = "not ready: keys: the HSM refused the PIN: an operator must act\n"
	if rec.Code != 503 || rec.Body.String() != want {
		t.Errorf("readyz = %d %q, want 503 %q", rec.Code, rec.Body.String(), want)
	}
	if v := gatherValues(t, reg)["jpkica_hsm_login_refused"]; v != 1 {
		t.Errorf("jpkica_hsm_login_refused = %v after the PIN was refused, want 1", v)
	}
	out := rec.Body.String()
	if mfs, err := reg.Gather(); err == nil {
		out += fmt.Sprint(mfs)
	}
	if strings.Contains(out, tok.PIN) {
		t.Error("/readyz or /metrics names the PIN")
	}
}
