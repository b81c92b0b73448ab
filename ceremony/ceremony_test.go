package ceremony

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/store"
)

var ceremonyNow = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

func testConfig() Config {
	return Config{IssuerValidity: 10 * 365 * 24 * time.Hour, ResponderValidity: 30 * 24 * time.Hour,
		ResponderAlgorithm: hsm.ECDSAP256, ClientCAValidity: 365 * 24 * time.Hour, Actor: "admin:test"}
}

func testDeps(t *testing.T) Deps {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "ca.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := hsm.OpenSoftware(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return Deps{Store: st, Keys: keys, Clock: func() time.Time { return ceremonyNow }, Rand: rand.Reader, Logger: slog.New(slog.DiscardHandler)}
}

var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

func TestRunAndLoad(t *testing.T) {
	ctx := context.Background()
	deps := testDeps(t)
	res, err := Run(ctx, testConfig(), deps, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Issuers) != 2 || len(res.Responders) != 2 || res.ClientCA == nil {
		t.Fatalf("created %d issuers, %d responders, client CA %v", len(res.Issuers), len(res.Responders), res.ClientCA != nil)
	}
	kr, err := Load(ctx, deps.Store, deps.Keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, ik := range kr.Current {
		if err := ik.Cert.CheckSignatureFrom(ik.Cert); err != nil {
			t.Fatalf("issuer %s is not self-signed: %v", ik.Issuer.ID, err)
		}
		rk, ok := kr.Responders[ik.Issuer.ID]
		if !ok {
			t.Fatalf("no responder for %s", ik.Issuer.ID)
		}
		if err := rk.Cert.CheckSignatureFrom(ik.Cert); err != nil {
			t.Fatalf("responder of %s not signed by it: %v", ik.Issuer.ID, err)
		}
		if len(rk.Cert.ExtKeyUsage) != 1 || rk.Cert.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
			t.Fatalf("responder EKU %v", rk.Cert.ExtKeyUsage)
		}
		nocheck := false
		for _, e := range rk.Cert.Extensions {
			nocheck = nocheck || e.Id.Equal(oidOCSPNoCheck)
		}
		if !nocheck {
			t.Fatal("responder certificate lacks id-pkix-ocsp-nocheck")
		}
	}

	// The ceremony refuses to run twice, and writes nothing when it refuses.
	if _, err := Run(ctx, testConfig(), deps, false); !errors.Is(err, ErrInitialised) {
		t.Fatalf("second run = %v, want ErrInitialised", err)
	}
	if is, _ := deps.Store.Issuers(ctx); len(is) != 3 {
		t.Fatalf("%d issuers after a refused run, want 3", len(is))
	}

	// A new generation: same names, new keys; Load makes it current.
	res2, err := Run(ctx, testConfig(), deps, true)
	if err != nil {
		t.Fatal(err)
	}
	if res2.ClientCA != nil || len(res2.Issuers) != 2 {
		t.Fatalf("new generation made %d issuers and client CA %v", len(res2.Issuers), res2.ClientCA != nil)
	}
	kr2, err := Load(ctx, deps.Store, deps.Keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(kr2.Issuers) != 4 {
		t.Fatalf("%d issuer generations loaded, want 4", len(kr2.Issuers))
	}
	for i, ik := range kr2.Current {
		old := kr.Current[i]
		if ik.Issuer.Generation != 2 || string(ik.Cert.RawSubject) != string(old.Cert.RawSubject) ||
			string(ik.Cert.SubjectKeyId) == string(old.Cert.SubjectKeyId) {
			t.Fatalf("generation %d of %v: same name %v, same key id %v", ik.Issuer.Generation, ik.Issuer.Type,
				string(ik.Cert.RawSubject) == string(old.Cert.RawSubject), string(ik.Cert.SubjectKeyId) == string(old.Cert.SubjectKeyId))
		}
		if rk := kr2.Responders[ik.Issuer.ID]; rk.Cert.CheckSignatureFrom(ik.Cert) != nil {
			t.Fatalf("generation 2 responder of %s", ik.Issuer.ID)
		}
	}
}

func TestRunRefusesExistingKey(t *testing.T) {
	ctx := context.Background()
	deps := testDeps(t)
	if _, err := deps.Keys.GenerateKey(ctx, hsm.GenerateKeyRequest{Label: issuerLabel(IssuerID(ca.Authentication, 1)), Algorithm: hsm.RSA2048}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, testConfig(), deps, false); !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("Run over an existing key = %v, want ErrKeyExists", err)
	}
	if is, _ := deps.Store.Issuers(ctx); len(is) != 0 {
		t.Fatalf("%d issuers recorded after a refused ceremony", len(is))
	}
}

func TestLoadMissingKey(t *testing.T) {
	ctx := context.Background()
	deps := testDeps(t)
	if _, err := Run(ctx, testConfig(), deps, false); err != nil {
		t.Fatal(err)
	}
	empty, err := hsm.OpenSoftware(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, deps.Store, empty); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("Load with the keys missing = %v, want ErrKeyNotFound", err)
	}
}

func TestIssueClient(t *testing.T) {
	ctx := context.Background()
	deps := testDeps(t)
	if _, err := Run(ctx, testConfig(), deps, false); err != nil {
		t.Fatal(err)
	}
	kr, err := Load(ctx, deps.Store, deps.Keys)
	if err != nil {
		t.Fatal(err)
	}
	c, err := IssueClient(ctx, deps.Store, kr, ClientRequest{Role: "counter", Municipality: "302015", Name: "wakayama-01",
		Validity: 24 * time.Hour, Actor: "admin:test"}, ceremonyNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(c.CertPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(kr.ClientCA.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: ceremonyNow.Add(time.Hour),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("terminal certificate does not verify for client auth: %v", err)
	}
	if got := cert.Subject.Organization; len(got) != 1 || got[0] != "counter" || cert.Subject.OrganizationalUnit[0] != "302015" {
		t.Fatalf("subject %v", cert.Subject)
	}
	rec, err := deps.Store.Certificate(ctx, c.Serial)
	if err != nil || rec.Type != ca.Terminal || rec.Status != ca.Good {
		t.Fatalf("stored terminal certificate: %+v, %v", rec.Type, err)
	}
	if _, err := IssueClient(ctx, deps.Store, kr, ClientRequest{Role: "counter", Name: "no-municipality",
		Validity: time.Hour, Actor: "admin:test"}, ceremonyNow, rand.Reader); !errors.Is(err, ca.ErrInvalid) {
		t.Fatalf("counter without municipality = %v, want ErrInvalid", err)
	}
}

// failingKeys is a key store whose key generation fails after a number of
// keys, as a ceremony interrupted by a crash or a lost HSM would.
type failingKeys struct {
	hsm.KeyStore
	left int
}

var errInterrupted = errors.New("interrupted")

func (k *failingKeys) GenerateKey(ctx context.Context, req hsm.GenerateKeyRequest) (crypto.Signer, error) {
	if k.left == 0 {
		return nil, errInterrupted
	}
	k.left--
	return k.KeyStore.GenerateKey(ctx, req)
}

// TestRunCompletesAnInterruptedCeremony: a ceremony that stopped after any
// number of keys completes when run again, and then refuses a third run.
func TestRunCompletesAnInterruptedCeremony(t *testing.T) {
	ctx := context.Background()
	// Keys: signature issuer, its responder, authentication issuer, its
	// responder, the client CA.
	for _, made := range []int{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("after %d keys", made), func(t *testing.T) {
			deps := testDeps(t)
			real := deps.Keys
			deps.Keys = &failingKeys{KeyStore: real, left: made}
			if _, err := Run(ctx, testConfig(), deps, false); !errors.Is(err, errInterrupted) {
				t.Fatalf("interrupted run = %v", err)
			}
			deps.Keys = real
			if _, err := Run(ctx, testConfig(), deps, false); err != nil {
				t.Fatalf("completing run: %v", err)
			}
			kr, err := Load(ctx, deps.Store, deps.Keys)
			if err != nil {
				t.Fatalf("Load after completion: %v", err)
			}
			if len(kr.Current) != 2 || len(kr.Responders) != 2 || kr.ClientCA.Signer == nil {
				t.Fatalf("after completion: %d issuers, %d responders, client CA %v", len(kr.Current), len(kr.Responders), kr.ClientCA.Signer != nil)
			}
			if _, err := Run(ctx, testConfig(), deps, false); !errors.Is(err, ErrInitialised) {
				t.Fatalf("third run = %v, want ErrInitialised", err)
			}
		})
	}
}
