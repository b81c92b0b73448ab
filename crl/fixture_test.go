package crl_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/crl"
	"github.com/jpkica/jpkica/internal/catest"
	"github.com/jpkica/jpkica/internal/pgtest"
	"github.com/jpkica/jpkica/store"
)

// issueNow is when the fixture issues: 2026-11-25 12:00 JST.
var issueNow = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

// crlNow is when the fixture's CRLs are made: ten days later, after the
// short-lived certificates expired.
var crlNow = issueNow.Add(10 * 24 * time.Hour)

const baseURL = "http://127.0.0.1:8080/crl"

var municipalities = map[string]ca.Municipality{
	"302015": {Prefecture: "Wakayama-ken", Name: "Wakayama-shi"},
	"082201": {Prefecture: "Ibaraki-ken", Name: "Tsukuba-shi"},
}

// fixedClock is a clock tests move.
type fixedClock struct{ t atomic.Int64 }

func newClock(t time.Time) *fixedClock {
	c := &fixedClock{}
	c.set(t)
	return c
}
func (c *fixedClock) set(t time.Time)     { c.t.Store(t.UnixNano()) }
func (c *fixedClock) now() time.Time      { return time.Unix(0, c.t.Load()).UTC() }
func (c *fixedClock) add(d time.Duration) { c.set(c.now().Add(d)) }

// want is a certificate's status as jpkica sees it at crlNow.
type want string

const (
	wantGood    want = "good"
	wantRevoked want = "revoked"
	wantHeld    want = "held"
	wantExpired want = "expired"
)

type fixtureCert struct {
	rec    ca.Record
	cert   *x509.Certificate
	issuer ca.IssuerKey
	want   want
}

type fixture struct {
	st       *store.Store
	kr       *ceremony.Keyring
	profiles *ca.Profiles
	certs    []fixtureCert
	dir      string
}

// newFixture makes two issuer generations in a software key store and a
// fresh store at dsn, and issues from each generation certificates of both
// types in two municipalities: good, revoked (keyCompromise), held, and
// revoked but expired by crlNow.
func newFixture(t testing.TB, dsn string) *fixture {
	t.Helper()
	ctx := context.Background()
	c := catest.New(t, catest.Options{DSN: dsn, Generations: 2, Clock: func() time.Time { return issueNow },
		Municipalities: municipalities})
	st, kr := c.Store, c.Keyring
	f := &fixture{st: st, kr: kr, profiles: c.Profiles, dir: t.TempDir()}
	for gen := 1; gen <= 2; gen++ {
		auth := c.Auth[gen]
		for _, typ := range []ca.CertType{ca.Signature, ca.Authentication} {
			for _, muni := range []string{"302015", "082201"} {
				for _, w := range []want{wantGood, wantRevoked, wantHeld, wantExpired} {
					card := fmt.Sprintf("G%d-%s-%s-%s", gen, typ, muni, w)
					expires := ca.Date{Year: 2036, Month: time.May, Day: 2}
					if w == wantExpired {
						expires = ca.Date{Year: 2026, Month: time.November, Day: 28}
					}
					req := catest.Request(typ, card)
					req.CardExpires, req.Municipality, req.Actor = expires, muni, "counter:"+muni+":test"
					got, err := auth.Issue(ctx, req)
					if err != nil {
						t.Fatalf("issuing %s: %v", card, err)
					}
					cert, err := x509.ParseCertificate(got.Record.DER)
					if err != nil {
						t.Fatal(err)
					}
					var ik ca.IssuerKey
					for _, cur := range kr.Issuers {
						if cur.Issuer.ID == got.Record.IssuerID {
							ik = cur
						}
					}
					f.certs = append(f.certs, fixtureCert{rec: got.Record, cert: cert, issuer: ik, want: w})
				}
			}
		}
	}
	for _, c := range f.certs {
		var ch ca.StatusChange
		switch c.want {
		case wantRevoked, wantExpired:
			ch = ca.StatusChange{Status: ca.Revoked, Reason: ca.KeyCompromise}
		case wantHeld:
			ch = ca.StatusChange{Status: ca.OnHold, Reason: ca.CertificateHold}
		default:
			continue
		}
		ch.Serials, ch.At = []ca.Serial{c.rec.Serial}, issueNow.Add(time.Hour)
		ch.Audit.Actor, ch.Audit.Action = "admin:test", audit.ActionCertificateRevoke
		if _, err := st.ChangeStatus(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// updater builds an Updater over the fixture publishing into dir.
func (f *fixture) updater(t testing.TB, clock *fixedClock, cfg crl.Config, edit func(*crl.Deps)) *crl.Updater {
	t.Helper()
	if cfg.BaseURL == "" {
		cfg.BaseURL = baseURL
	}
	if cfg.Dir == "" {
		cfg.Dir = f.dir
	}
	deps := crl.Deps{Store: f.st, Issuers: f.kr.Issuers, Clock: clock.now, Logger: slog.New(slog.DiscardHandler)}
	if edit != nil {
		edit(&deps)
	}
	u, err := crl.NewUpdater(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func sqliteDSN(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "jpkica.db") }

func openStore(dsn string) (*store.Store, error) { return store.Open(context.Background(), dsn) }

// postgresDSN gives the test a private schema (internal/pgtest), or skips
// it loudly.
func postgresDSN(t testing.TB) string { return pgtest.DSN(t) }

// readCRL reads a published CRL back with its entries.
func readCRL(t testing.TB, path string, issuer *x509.Certificate) (crl.Parsed, map[ca.Serial]crl.Entry) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[ca.Serial]crl.Entry{}
	p, err := crl.ReadBack(f, issuer, func(e crl.Entry) error {
		entries[e.Serial] = e
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p, entries
}

// metricValue reads the counter or gauge name with exactly labels from reg.
func metricValue(reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if maps.Equal(got, labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue(), true
				}
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}
