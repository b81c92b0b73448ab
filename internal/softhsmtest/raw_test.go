package softhsmtest_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"testing"

	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/softhsmtest"
)

// TestRawSigner: the raw signer finds an RSA and an EC key of the token by
// label, and each signature verifies with the key's public half.
func TestRawSigner(t *testing.T) {
	tk := softhsmtest.New(t)
	ctx := context.Background()
	keys, err := hsm.OpenPKCS11(ctx, hsm.PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	digest := sha256.Sum256([]byte("raw"))
	for _, alg := range []hsm.Algorithm{hsm.RSA2048, hsm.ECDSAP256} {
		t.Run(alg.String(), func(t *testing.T) {
			s, err := keys.GenerateKey(ctx, hsm.GenerateKeyRequest{Label: "raw-" + alg.String(), Algorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			sig, err := tk.RawSigner(t, "raw-"+alg.String(), 2).SignSHA256(digest[:])
			if err != nil {
				t.Fatal(err)
			}
			switch pub := s.Public().(type) {
			case *rsa.PublicKey:
				err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
			case *ecdsa.PublicKey:
				half := len(sig) / 2
				if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:half]), new(big.Int).SetBytes(sig[half:])) {
					t.Fatal("ECDSA signature does not verify")
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
