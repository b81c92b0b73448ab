package ocsp_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/catest"
	"github.com/jpkica/jpkica/internal/pgtest"
	"github.com/jpkica/jpkica/ocsp"
	"github.com/jpkica/jpkica/store"
)

var _ ocsp.Source = (*store.Store)(nil)

// issueNow is the fixed issuance time of these tests.
var issueNow = catest.Now

// fixture is a key ceremony with two issuer generations in a software key
// store and a store, and an Authority per generation.
type fixture struct {
	st   *store.Store
	keys hsm.KeyStore
	kr   *ceremony.Keyring
	auth map[int]*ca.Authority // by generation
}

// newFixture runs the ceremony twice (generations 1 and 2) into a fresh
// software key store and the store at dsn (a fresh SQLite file when "").
func newFixture(t testing.TB, dsn string, responderAlg hsm.Algorithm) *fixture {
	t.Helper()
	return newFixtureKeys(t, dsn, responderAlg, nil)
}

// newFixtureKeys is newFixture with the keys in the given key store.
func newFixtureKeys(t testing.TB, dsn string, responderAlg hsm.Algorithm, keys hsm.KeyStore) *fixture {
	t.Helper()
	c := catest.New(t, catest.Options{Keys: keys, DSN: dsn, Generations: 2, ResponderAlgorithm: responderAlg})
	return &fixture{st: c.Store, keys: c.Keys, kr: c.Keyring, auth: c.Auth}
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

// issue makes one certificate of typ on a new card with generation gen.
func (f *fixture) issue(t testing.TB, gen int, typ ca.CertType, card string) ca.Record {
	t.Helper()
	got, err := f.auth[gen].Issue(context.Background(), catest.Request(typ, card))
	if err != nil {
		t.Fatal(err)
	}
	return got.Record
}

func (f *fixture) changeStatus(t testing.TB, st ca.Status, reason ca.Reason, serials ...ca.Serial) {
	t.Helper()
	action := audit.ActionCertificateRevoke
	if st == ca.OnHold {
		action = audit.ActionCertificateHold
	}
	_, err := f.st.ChangeStatus(context.Background(), ca.StatusChange{Serials: serials, Status: st, Reason: reason,
		At: issueNow.Add(time.Hour), Audit: audit.Entry{Actor: "operator:test", Action: action}})
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
	p, stop := runPresigner(t, cfg, ocsp.Deps{Issuers: iss, Source: src, Clock: time.Now, Rand: rand.Reader})
	t.Cleanup(stop)
	return p
}

// runPresigner starts a Presigner; stop ends it and waits for it.
func runPresigner(t testing.TB, cfg ocsp.Config, deps ocsp.Deps) (p *ocsp.Presigner, stop func()) {
	t.Helper()
	p, err := ocsp.NewPresigner(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	return p, func() { cancel(); <-done }
}

func mustParse(t testing.TB, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
