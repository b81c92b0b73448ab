package hsm

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSoftwareGenerateReloadSign(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ks, err := OpenSoftware(dir)
	if err != nil {
		t.Fatalf("OpenSoftware: %v", err)
	}
	ctx := context.Background()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode: %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	generated := map[Algorithm]crypto.Signer{}
	for _, alg := range []Algorithm{RSA2048, ECDSAP256} {
		label := "CA key " + alg.String() + "/2026" // spaces and a slash must survive the file name
		s, err := ks.GenerateKey(ctx, GenerateKeyRequest{Label: label, Algorithm: alg})
		if err != nil {
			t.Fatalf("GenerateKey %v: %v", alg, err)
		}
		generated[alg] = s
		if _, err := ks.GenerateKey(ctx, GenerateKeyRequest{Label: label, Algorithm: alg}); !errors.Is(err, ErrKeyExists) {
			t.Errorf("GenerateKey twice: got %v, want ErrKeyExists", err)
		}
		path, _ := ks.path(label)
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key file %s mode: %v, %v; want 0600", path, fi.Mode().Perm(), err)
		}
		if _, ok := s.(*rsa.PrivateKey); ok {
			t.Errorf("GenerateKey returned the bare private key")
		}
	}

	// A new store on the same directory finds the same keys.
	ks2, err := OpenSoftware(dir)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	labels, err := ks2.Labels()
	if err != nil || len(labels) != 2 {
		t.Fatalf("Labels = %q, %v; want 2", labels, err)
	}
	for _, tc := range signCases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ks2.Signer(ctx, "CA key "+tc.alg.String()+"/2026")
			if err != nil {
				t.Fatalf("Signer: %v", err)
			}
			if !s.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(generated[tc.alg].Public()) {
				t.Fatalf("reloaded key differs from the generated one")
			}
			d := tc.hash([]byte("software " + tc.name))
			sig, err := s.Sign(nil, d, tc.opts)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			verify(t, s.Public(), d, sig, tc.opts)
		})
	}
	if err := ks2.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestSoftwareErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ks, err := OpenSoftware(dir)
	if err != nil {
		t.Fatalf("OpenSoftware: %v", err)
	}
	ctx := context.Background()
	s, err := ks.GenerateKey(ctx, GenerateKeyRequest{Label: "k", Algorithm: ECDSAP256})
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"missing key", func() error { _, err := ks.Signer(ctx, "nope"); return err }, ErrKeyNotFound},
		{"dot-dot label", func() error { _, err := ks.Signer(ctx, ".."); return err }, ErrInvalidRequest},
		{"empty label", func() error {
			_, err := ks.GenerateKey(ctx, GenerateKeyRequest{Algorithm: RSA2048})
			return err
		}, ErrInvalidRequest},
		{"unknown algorithm", func() error {
			_, err := ks.GenerateKey(ctx, GenerateKeyRequest{Label: "x", Algorithm: 42})
			return err
		}, ErrUnsupported},
		{"wrong digest length", func() error { _, err := s.Sign(nil, []byte{1, 2, 3}, crypto.SHA256); return err }, ErrInvalidRequest},
		{"world-readable directory", func() error { _, err := OpenSoftware(open); return err }, ErrInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want errors.Is %v", err, tc.want)
			}
		})
	}
}
