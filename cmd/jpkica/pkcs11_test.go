package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/hsm"
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
}

// TestKeyStoreMetrics: /metrics carries the PKCS #11 store's counters, and
// nothing for the software store.
func TestKeyStoreMetrics(t *testing.T) {
	tok := softhsmtest.New(t)
	keys, err := hsm.OpenPKCS11(context.Background(), hsm.PKCS11Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	s, err := keys.GenerateKey(context.Background(), hsm.GenerateKeyRequest{Label: "metrics", Algorithm: hsm.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
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
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	// Which way each call went depends on the scheduler's load; together
	// they are the three signatures.
	for name, want := range map[string]float64{
		"jpkica_hsm_signing_calls_total":     3,
		"jpkica_hsm_signature_errors_total":  0,
		"jpkica_hsm_reinitialisations_total": 0,
		"jpkica_hsm_reinit_attempts_total":   0,
		"jpkica_hsm_sessions_open":           1,
		"jpkica_hsm_sessions_in_use":         0,
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
