package ceremony

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
)

// TestRenewResponders: nothing is renewed while the responders have more
// than renewBefore left; then each card issuer gets a new responder, which
// Load picks and the issuer certifies, with an audit entry naming the one
// it replaces. A renewal against a responder that is no longer the newest
// (another node's won) records nothing.
func TestRenewResponders(t *testing.T) {
	ctx := context.Background()
	deps := testDeps(t)
	cfg := testConfig() // responders valid 30 days
	if _, err := Run(ctx, cfg, deps, false); err != nil {
		t.Fatal(err)
	}
	const renewBefore = 10 * 24 * time.Hour
	if _, err := RenewResponders(ctx, cfg, deps, cfg.ResponderValidity); !errors.Is(err, ca.ErrInvalid) {
		t.Fatalf("renewing as soon as made: %v, want ErrInvalid", err)
	}
	at := func(d time.Duration) Deps {
		d2 := deps
		d2.Clock = func() time.Time { return ceremonyNow.Add(d) }
		return d2
	}
	got, err := RenewResponders(ctx, cfg, at(19*24*time.Hour), renewBefore)
	if err != nil || len(got) != 0 {
		t.Fatalf("with 11 days left: renewed %d (%v), want none", len(got), err)
	}
	before, err := Load(ctx, deps.Store, deps.Keys)
	if err != nil {
		t.Fatal(err)
	}
	// An earlier attempt made signature-g1's new key and then failed: the
	// renewal takes that key. A key of another algorithm under the label
	// stops the renewal.
	sigOld := before.Responders["signature-g1"].Responder
	leftover, err := deps.Keys.GenerateKey(ctx, hsm.GenerateKeyRequest{Label: sigOld.ID + "-next", Algorithm: hsm.ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	authOld := before.Responders["authentication-g1"].Responder
	if _, err := deps.Keys.GenerateKey(ctx, hsm.GenerateKeyRequest{Label: authOld.ID + "-next", Algorithm: hsm.RSA2048}); err != nil {
		t.Fatal(err)
	}
	if _, err := createResponder(ctx, cfg, at(21*24*time.Hour), before.Current[1].Issuer, &authOld); !errors.Is(err, ca.ErrInvalid) {
		t.Fatalf("with an RSA key where an ECDSA one belongs: %v, want ErrInvalid", err)
	}
	cfgRSA := cfg
	cfgRSA.ResponderAlgorithm = hsm.RSA2048
	if _, err := createResponder(ctx, cfgRSA, at(21*24*time.Hour), before.Current[1].Issuer, &authOld); err != nil {
		t.Fatal(err) // authentication-g1 renewed with its RSA key, as configured then
	}
	got, err = RenewResponders(ctx, cfg, at(21*24*time.Hour), renewBefore)
	if err != nil || len(got) != 1 || got[0].IssuerID != "signature-g1" {
		t.Fatalf("with 9 days left: renewed %+v (%v), want signature-g1 (authentication-g1 was)", got, err)
	}
	kr, err := Load(ctx, deps.Store, deps.Keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, ik := range kr.Current {
		r := kr.Responders[ik.Issuer.ID]
		if r.Responder.ID == before.Responders[ik.Issuer.ID].Responder.ID {
			t.Fatalf("%s: Load still picks the old responder", ik.Issuer.ID)
		}
		if err := r.Cert.CheckSignatureFrom(ik.Cert); err != nil {
			t.Fatalf("%s: new responder: %v", ik.Issuer.ID, err)
		}
		if ik.Issuer.ID == "signature-g1" && !leftover.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(r.Cert.PublicKey) {
			t.Fatalf("signature-g1: the renewal made another key instead of taking the one left by the failed attempt")
		}
		if want := ceremonyNow.Add(21*24*time.Hour + cfg.ResponderValidity); !r.Cert.NotAfter.Equal(want) ||
			!slices.Contains(r.Cert.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			t.Fatalf("%s: new responder until %v (want %v), EKU %v", ik.Issuer.ID, r.Cert.NotAfter, want, r.Cert.ExtKeyUsage)
		}
	}
	renewals := 0
	if err := deps.Store.AuditEntries(ctx, func(e audit.Entry) error {
		if e.Action == audit.ActionResponderRenew {
			renewals++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if renewals != 2 {
		t.Fatalf("%d ocsp_responder.renew audit entries, want 2", renewals)
	}
	// Another node that read the store before this renewal loses the race,
	// with the key the winner made: no new key.
	counting := &countingKeys{KeyStore: deps.Keys}
	late := at(21*24*time.Hour + time.Minute)
	late.Keys = counting
	_, err = createResponder(ctx, cfg, late, before.Current[0].Issuer, &sigOld)
	if !errors.Is(err, ca.ErrConflict) || counting.made != 0 {
		t.Fatalf("renewing a responder that is no longer the newest: %v and %d keys made, want ErrConflict and none", err, counting.made)
	}
	all, err := deps.Store.Responders(ctx)
	if err != nil || len(all) != 4 {
		t.Fatalf("%d responders recorded (%v), want 4", len(all), err)
	}
}

// countingKeys counts the keys it makes.
type countingKeys struct {
	hsm.KeyStore
	made int
}

func (k *countingKeys) GenerateKey(ctx context.Context, req hsm.GenerateKeyRequest) (crypto.Signer, error) {
	s, err := k.KeyStore.GenerateKey(ctx, req)
	if err == nil {
		k.made++
	}
	return s, err
}
