package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
