package ocsp_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/pgtest"
	"github.com/jpkica/jpkica/ocsp"
	"github.com/jpkica/jpkica/store"
)

var _ ocsp.Source = (*store.Store)(nil)

// issueNow is the fixed issuance time of these tests.
var issueNow = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

// fixture is a key ceremony with two issuer generations in a software key
// store and a store, and an Authority per generation.
type fixture struct {
	st   *store.Store
	kr   *ceremony.Keyring
	auth map[int]*ca.Authority // by generation
}

// newFixture runs the ceremony twice (generations 1 and 2) into a fresh
// software key store and the store at dsn (a fresh SQLite file when "").
func newFixture(t testing.TB, dsn string, responderAlg hsm.Algorithm) *fixture {
	t.Helper()
	keys, err := hsm.OpenSoftware(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureKeys(t, dsn, responderAlg, keys)
}

// newFixtureKeys is newFixture with the keys in the given key store.
func newFixtureKeys(t testing.TB, dsn string, responderAlg hsm.Algorithm, keys hsm.KeyStore) *fixture {
	t.Helper()
	ctx := context.Background()
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(t.TempDir(), "ca.db")
	}
	st := openStore(t, dsn)
	var err error
	clock := func() time.Time { return issueNow.Add(-time.Hour) }
	for gen := 1; gen <= 2; gen++ {
		_, err = ceremony.Run(ctx, ceremony.Config{
			IssuerValidity: 10 * 365 * 24 * time.Hour, ResponderValidity: 365 * 24 * time.Hour,
			ResponderAlgorithm: responderAlg, ClientCAValidity: 24 * time.Hour,
		}, ceremony.Deps{Store: st, Keys: keys, Clock: clock, Rand: rand.Reader, Logger: slog.New(slog.DiscardHandler)}, gen == 2)
		if err != nil {
			t.Fatal(err)
		}
	}
	kr, err := ceremony.Load(ctx, st, keys)
	if err != nil {
		t.Fatal(err)
	}
	profiles, err := ca.NewProfiles(ca.ProfileConfig{
		OCSPURL: "http://127.0.0.1:8080/ocsp", CRLBaseURL: "http://127.0.0.1:8080/crl",
		SignatureCPSURL: "http://127.0.0.1:8080/cps.html", AuthenticationCPSURL: "http://127.0.0.1:8080/cps.html",
		Municipalities: map[string]ca.Municipality{"302015": {Prefecture: "Wakayama-ken", Name: "Wakayama-shi"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, kr: kr, auth: map[int]*ca.Authority{}}
	for gen := 1; gen <= 2; gen++ {
		var iks []ca.IssuerKey
		for _, ik := range kr.Issuers {
			if ik.Issuer.Generation == gen {
				iks = append(iks, ik)
			}
		}
		if len(iks) != 2 {
			t.Fatalf("generation %d has %d issuers", gen, len(iks))
		}
		f.auth[gen], err = ca.NewAuthority(ca.AuthorityConfig{RenewalWindowMonths: 3}, ca.AuthorityDeps{
			Store: st, Profiles: profiles, Issuers: iks, Clock: func() time.Time { return issueNow }, Rand: rand.Reader,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// issuers is what a Presigner serves: every generation, signed by its
// delegated responder.
func (f *fixture) issuers() []ocsp.IssuerConfig {
	var out []ocsp.IssuerConfig
	for _, ik := range f.kr.Issuers {
		r := f.kr.Responders[ik.Issuer.ID]
		out = append(out, ocsp.IssuerConfig{ID: ik.Issuer.ID, Cert: ik.Cert, Signer: r.Signer, ResponderCert: r.Cert})
	}
	return out
}

func (f *fixture) issuerCert(id string) *x509.Certificate {
	for _, ik := range f.kr.Issuers {
		if ik.Issuer.ID == id {
			return ik.Cert
		}
	}
	panic("no issuer " + id)
}

var cardKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// issue makes one certificate of typ on a new card with generation gen.
func (f *fixture) issue(t testing.TB, gen int, typ ca.CertType, card string) ca.Record {
	t.Helper()
	got, err := f.auth[gen].Issue(context.Background(), ca.IssueRequest{
		Type: typ, PublicKey: cardKey().Public(), CardID: card, CardExpires: ca.Date{Year: 2036, Month: time.May, Day: 2},
		ResidentID: "R-" + card, Municipality: "302015", Actor: "counter:302015:test",
		Facts: ca.Facts{Name: "和歌山　太郎", BirthDate: ca.Date{Year: 1990, Month: time.May, Day: 2}, Sex: ca.Male,
			Address: "和歌山県和歌山市七番丁２３番地"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return got.Record
}

func (f *fixture) changeStatus(t testing.TB, st ca.Status, reason ca.Reason, serials ...ca.Serial) {
	t.Helper()
	_, err := f.st.ChangeStatus(context.Background(), ca.StatusChange{Serials: serials, Status: st, Reason: reason,
		At: issueNow.Add(time.Hour), Audit: audit.Entry{Actor: "operator:test", Action: "certificate." + st.String()}})
	if err != nil {
		t.Fatal(err)
	}
}

func openStore(t testing.TB, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// postgresDSN gives the test a private schema (internal/pgtest), or skips
// it loudly.
func postgresDSN(t testing.TB) string { return pgtest.DSN(t) }

// startPresigner runs a Presigner on f's issuers and source until the test
// ends.
func startPresigner(t testing.TB, src ocsp.Source, iss []ocsp.IssuerConfig, cfg ocsp.Config) *ocsp.Presigner {
	t.Helper()
	p, err := ocsp.NewPresigner(cfg, ocsp.Deps{Issuers: iss, Source: src, Clock: time.Now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

func mustParse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
