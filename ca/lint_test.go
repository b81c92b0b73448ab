package ca

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/jpkica/jpkica/lint"
)

// TestLintWeakKey: a card template whose key's primes are neighbours is
// refused by Lint under an issuer, through package lint's Fermat check,
// with ErrLint and ErrWeakKey and under the name of zlint's lint, and the
// error does not carry the factors (they are the private key). The same
// template with a sound key passes.
func TestLintWeakKey(t *testing.T) {
	f := newFixture(t)
	q, err := rand.Prime(rand.Reader, 1024) // its top two bits set: p*q has 2048 bits
	if err != nil {
		t.Fatal(err)
	}
	p := new(big.Int).Add(q, big.NewInt(2))
	for !p.ProbablyPrime(20) {
		p.Add(p, big.NewInt(2))
	}
	weak := &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}
	req := f.request(Authentication)
	req.PublicKey = weak
	tmpl, err := testProfiles(t).Template(req)
	if err != nil {
		t.Fatal(err)
	}
	err = Lint(lint.Linter{}, tmpl, f.issuers[Authentication])
	if !errors.Is(err, ErrLint) || !errors.Is(err, ErrWeakKey) || !strings.Contains(err.Error(), "e_rsa_fermat_factorization") {
		t.Fatalf("Lint(lint.Linter{}, weak key) = %v, want ErrLint and ErrWeakKey naming e_rsa_fermat_factorization", err)
	}
	if strings.Contains(err.Error(), p.String()) || strings.Contains(err.Error(), q.String()) {
		t.Errorf("Lint's error carries a factor of the key: %v", err)
	}
	// The same template with a sound key passes.
	req.PublicKey = f.card.Public()
	if tmpl, err = testProfiles(t).Template(req); err != nil {
		t.Fatal(err)
	}
	if err := Lint(lint.Linter{}, tmpl, f.issuers[Authentication]); err != nil {
		t.Errorf("Lint(lint.Linter{}, sound key) = %v", err)
	}
}

// TestLintSelfSignedInvalid: a self-signed template that package lint
// cannot lint (no public key, or a key type it has no throwaway key for)
// is ErrInvalid here, as a template x509 refuses is, and not ErrLint.
func TestLintSelfSignedInvalid(t *testing.T) {
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, tmpl := range map[string]*x509.Certificate{
		"nil":           nil,
		"no public key": {SerialNumber: big.NewInt(1)},
		"Ed25519":       {SerialNumber: big.NewInt(1), PublicKey: edPub},
	} {
		if err := Lint(lint.Linter{}, tmpl, nil); !errors.Is(err, ErrInvalid) || errors.Is(err, ErrLint) {
			t.Errorf("Lint(lint.Linter{}, %s, nil) = %v, want ErrInvalid, not ErrLint", name, err)
		}
	}
}
