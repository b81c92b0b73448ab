package crl_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
	"github.com/jpkica/jpkica/internal/pgtest"
)

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

func TestRefusedCRLIsNotPublished(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	ctx := context.Background()
	clock := newClock(crlNow)
	ik := f.kr.Issuers[len(f.kr.Issuers)-1]
	scope := crl.Scope{Issuer: ik.Issuer.ID, Partition: "302015"}
	path := filepath.Join(f.dir, filepath.FromSlash(scope.File()))

	t.Run("signed by the wrong key", func(t *testing.T) {
		wrong, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		var logs bytes.Buffer
		u := f.updater(t, clock, crl.Config{}, func(d *crl.Deps) {
			d.Issuers = nil
			for _, k := range f.kr.Issuers {
				if k.Issuer.ID == ik.Issuer.ID {
					k.Signer = wrong // an HSM label pointing at another key
				}
				d.Issuers = append(d.Issuers, k)
			}
			d.Metrics = reg
			d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
		_, err = u.Generate(ctx, scope)
		if !errors.Is(err, crl.ErrCheck) || !errors.Is(err, crl.ErrMalformed) {
			t.Fatalf("err = %v, want ErrCheck (read back)", err)
		}
		wantCheck(t, err, scope, crl.CheckReadBack)
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("refused CRL was published: %v", err)
		}
		if left, _ := filepath.Glob(filepath.Join(f.dir, ik.Issuer.ID, ".tmp-*")); len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
		if n := failures(reg, ik.Issuer.ID, "partition", "readback"); n != 1 {
			t.Fatalf("check failure metric = %v", n)
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "CRL REFUSED") {
			t.Fatalf("no loud log: %s", logs.String())
		}
	})

	reg := prometheus.NewRegistry()
	u := f.updater(t, clock, crl.Config{}, func(d *crl.Deps) { d.Metrics = reg })
	first, err := u.Generate(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	publishedDER, _ := os.ReadFile(path)

	t.Run("number not above the published one", func(t *testing.T) {
		// Another node published number 1000 into the same directory.
		meta := filepath.Join(f.dir, ik.Issuer.ID, "302015.json")
		b, _ := os.ReadFile(meta)
		var m map[string]any
		json.Unmarshal(b, &m)
		m["number"] = 1000
		b, _ = json.Marshal(m)
		os.WriteFile(meta, b, 0o644)
		defer func() { // restore for the next subtest
			m["number"] = first.Number
			b, _ = json.Marshal(m)
			os.WriteFile(meta, b, 0o644)
		}()
		clock.add(time.Minute)
		_, err := u.Generate(ctx, scope)
		wantCheck(t, err, scope, crl.CheckNumber)
		if n := failures(reg, ik.Issuer.ID, "partition", "number"); n != 1 {
			t.Fatalf("check failure metric = %v", n)
		}
		if now, _ := os.ReadFile(path); !bytes.Equal(now, publishedDER) {
			t.Fatal("the published CRL changed")
		}
	})

	t.Run("scope changed", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		moved := f.updater(t, clock, crl.Config{BaseURL: "http://crl.elsewhere.example/crl"},
			func(d *crl.Deps) { d.Metrics = reg })
		clock.add(time.Minute)
		_, err := moved.Generate(ctx, scope)
		wantCheck(t, err, scope, crl.CheckScope)
		if n := failures(reg, ik.Issuer.ID, "partition", "scope"); n != 1 {
			t.Fatalf("check failure metric = %v", n)
		}
		if now, _ := os.ReadFile(path); !bytes.Equal(now, publishedDER) {
			t.Fatal("the published CRL changed")
		}
	})

	clock.add(time.Minute)
	next, err := u.Generate(ctx, scope)
	if err != nil || next.Number.Cmp(first.Number) <= 0 {
		t.Fatalf("next CRL: %v, number %v after %v", err, next.Number, first.Number)
	}
}

// wantCheck asserts that err is a refusal of scope's CRL by check: a
// *crl.CheckError that errors.As finds and errors.Is matches to ErrCheck.
func wantCheck(t *testing.T, err error, scope crl.Scope, check crl.Check) {
	t.Helper()
	var ce *crl.CheckError
	if !errors.As(err, &ce) || !errors.Is(err, crl.ErrCheck) {
		t.Fatalf("err = %v, want a CheckError", err)
	}
	if ce.Check != check || ce.Scope != scope {
		t.Fatalf("refused by %q for %s, want %q for %s (err %v)", ce.Check, ce.Scope, check, scope, err)
	}
}

// failures reads jpkica_crl_check_failures_total for one label set.
func failures(reg *prometheus.Registry, issuer, kind, check string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "jpkica_crl_check_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["issuer"] == issuer && labels["kind"] == kind && labels["check"] == check {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestDeltaPlusBaseIsNextFull: a delta CRL applied to its base gives the
// entries of the next complete CRL, for the full CRL and each partition.
func TestDeltaPlusBaseIsNextFull(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	ctx := context.Background()
	clock := newClock(crlNow)
	u := f.updater(t, clock, crl.Config{DeltaInterval: time.Hour}, nil)
	ik := f.kr.Issuers[len(f.kr.Issuers)-1]
	id := ik.Issuer.ID
	bases, err := u.GenerateIssuer(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	type snapshot struct {
		parsed  crl.Parsed
		entries map[ca.Serial]crl.Entry
	}
	base := map[crl.Scope]snapshot{}
	for _, p := range bases {
		parsed, entries := readCRL(t, filepath.Join(f.dir, filepath.FromSlash(p.Scope.File())), ik.Cert)
		if want := u.URL(crl.Scope{Issuer: id, Partition: p.Scope.Partition, Delta: true}); parsed.FreshestCRL != want {
			t.Fatalf("%s: freshestCRL %q, want %q", p.Scope, parsed.FreshestCRL, want)
		}
		base[p.Scope] = snapshot{parsed, entries}
	}

	// Changes after the base: good certificates revoked and held, a hold
	// turned into a revocation, in both municipalities.
	var good, held []ca.Serial
	for _, c := range f.certs {
		if c.rec.IssuerID != id {
			continue
		}
		switch c.want {
		case wantGood:
			good = append(good, c.rec.Serial)
		case wantHeld:
			held = append(held, c.rec.Serial)
		}
	}
	clock.add(10 * time.Minute)
	change := func(ch ca.StatusChange) {
		ch.At = clock.now()
		ch.Audit.Actor, ch.Audit.Action = "admin:test", "certificate.revoke"
		if _, err := f.st.ChangeStatus(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	change(ca.StatusChange{Serials: good[:1], Status: ca.Revoked, Reason: ca.AffiliationChanged})
	change(ca.StatusChange{Serials: good[1:], Status: ca.OnHold, Reason: ca.CertificateHold})
	change(ca.StatusChange{Serials: held[:1], Status: ca.Revoked, Reason: ca.KeyCompromise})

	clock.add(time.Minute)
	deltas, err := u.GenerateIssuer(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(deltas) != len(bases) {
		t.Fatalf("%d deltas for %d bases", len(deltas), len(bases))
	}
	applied := map[crl.Scope]map[ca.Serial]crl.Entry{}
	changed := 0
	for _, d := range deltas {
		parsed, entries := readCRL(t, filepath.Join(f.dir, filepath.FromSlash(d.Scope.File())), ik.Cert)
		b := base[d.Scope.Complete()]
		if parsed.DeltaBase == nil || parsed.DeltaBase.Cmp(b.parsed.Number) != 0 || parsed.IDP != b.parsed.IDP ||
			parsed.Number.Cmp(b.parsed.Number) <= 0 || parsed.FreshestCRL != "" {
			t.Fatalf("%s: delta %+v on base %+v", d.Scope, parsed, b.parsed)
		}
		merged := map[ca.Serial]crl.Entry{}
		for sn, e := range b.entries {
			merged[sn] = e
		}
		for sn, e := range entries {
			if e.Reason == ca.RemoveFromCRL {
				delete(merged, sn)
				continue
			}
			merged[sn] = e
		}
		changed += len(entries)
		applied[d.Scope.Complete()] = merged
	}
	if changed != 2*(len(good)+1) { // each change is in the full delta and its partition's
		t.Fatalf("deltas carry %d entries, want %d", changed, 2*(len(good)+1))
	}

	clock.add(time.Minute)
	fulls, err := u.GenerateIssuer(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range fulls {
		_, next := readCRL(t, filepath.Join(f.dir, filepath.FromSlash(p.Scope.File())), ik.Cert)
		got := applied[p.Scope]
		if len(got) != len(next) {
			t.Fatalf("%s: base+delta has %d entries, next complete CRL %d", p.Scope, len(got), len(next))
		}
		for sn, e := range next {
			if g, ok := got[sn]; !ok || g.Reason != e.Reason || !g.RevokedAt.Equal(e.RevokedAt) {
				t.Fatalf("%s: %s is %+v in base+delta, %+v in the next complete CRL", p.Scope, sn, g, e)
			}
		}
	}
}

// TestNumbersIncreaseAcrossProcesses runs two updaters on two Store
// instances of one database (two `--role crl` processes) publishing the same
// scope: every CRL number is new and above the one before it.
func TestNumbersIncreaseAcrossProcesses(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"SQLite": sqliteDSN, "PostgreSQL": postgresDSN} {
		t.Run(name, func(t *testing.T) {
			d := dsn(t)
			f := newFixture(t, d)
			second := *f
			st2, err := openStore(d)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st2.Close() })
			second.st = st2
			clock := newClock(crlNow)
			// Separate directories: the check against the last published
			// number is per directory; the store is what keeps them apart.
			u1 := f.updater(t, clock, crl.Config{Dir: t.TempDir()}, nil)
			u2 := second.updater(t, clock, crl.Config{Dir: t.TempDir()}, nil)
			scope := crl.Scope{Issuer: f.kr.Issuers[0].Issuer.ID, Partition: "302015"}
			var (
				mu   sync.Mutex
				all  []*big.Int
				wg   sync.WaitGroup
				errs = make(chan error, 2)
			)
			for _, u := range []*crl.Updater{u1, u2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var last *big.Int
					for range 8 {
						p, err := u.Generate(context.Background(), scope)
						if err != nil {
							errs <- err
							return
						}
						if last != nil && p.Number.Cmp(last) <= 0 {
							errs <- fmt.Errorf("number %v after %v", p.Number, last)
							return
						}
						last = p.Number
						mu.Lock()
						all = append(all, p.Number)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, n := range all {
				if seen[n.String()] {
					t.Fatalf("CRL number %v used twice", n)
				}
				seen[n.String()] = true
			}
			if len(seen) != 16 {
				t.Fatalf("%d numbers", len(seen))
			}
		})
	}
}

// postgresDSN gives the test a private schema (internal/pgtest), or skips
// it loudly.
func postgresDSN(t testing.TB) string { return pgtest.DSN(t) }

// TestRunDue: everything missing is published at once; later, only what is
// due: the deltas of the partition a revocation touched (and the full
// delta), after DeltaDelay; complete CRLs after Interval.
func TestRunDue(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	ctx := context.Background()
	clock := newClock(crlNow)
	u := f.updater(t, clock, crl.Config{DeltaInterval: time.Hour, DeltaDelay: time.Minute}, nil)
	numbers := func() map[string]string {
		out := map[string]string{}
		files, _ := filepath.Glob(filepath.Join(f.dir, "*", "*.json"))
		for _, file := range files {
			b, _ := os.ReadFile(file)
			var m struct{ Number json.Number }
			json.Unmarshal(b, &m)
			rel, _ := filepath.Rel(f.dir, file)
			out[rel] = m.Number.String()
		}
		return out
	}
	if err := u.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	first := numbers()
	// 4 issuers x (full + 2 partitions) x (complete + delta)
	if len(first) != 24 {
		t.Fatalf("published %d CRLs: %v", len(first), first)
	}
	clock.add(10 * time.Minute)
	if err := u.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := numbers(); fmt.Sprint(got) != fmt.Sprint(first) {
		t.Fatalf("nothing was due, but CRLs changed:\n%v\n%v", first, got)
	}

	var target fixtureCert
	for _, c := range f.certs {
		if c.want == wantGood && c.rec.Municipality == "082201" {
			target = c
			break
		}
	}
	if _, err := f.st.ChangeStatus(ctx, ca.StatusChange{Serials: []ca.Serial{target.rec.Serial}, Status: ca.Revoked,
		Reason: ca.KeyCompromise, At: clock.now(), Audit: audit.Entry{Actor: "admin:test", Action: "certificate.revoke"}}); err != nil {
		t.Fatal(err)
	}
	if err := u.RunDue(ctx); err != nil { // change seen, DeltaDelay not over
		t.Fatal(err)
	}
	if got := numbers(); fmt.Sprint(got) != fmt.Sprint(first) {
		t.Fatal("deltas regenerated before DeltaDelay")
	}
	clock.add(2 * time.Minute)
	if err := u.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	got := numbers()
	var changed []string
	for k, v := range got {
		if first[k] != v {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	id := target.rec.IssuerID
	want := []string{id + "/082201-delta.json", id + "/full-delta.json"}
	if fmt.Sprint(changed) != fmt.Sprint(want) {
		t.Fatalf("regenerated %v, want %v", changed, want)
	}
	_, entries := readCRL(t, filepath.Join(f.dir, id, "082201-delta.crl"), target.issuer.Cert)
	if e, ok := entries[target.rec.Serial]; !ok || e.Reason != ca.KeyCompromise {
		t.Fatalf("the delta lacks the revocation: %v", entries)
	}

	clock.add(24 * time.Hour)
	if err := u.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	for k, v := range numbers() {
		if got[k] == v {
			t.Errorf("%s not regenerated after a day", k)
		}
	}
}

// TestKeepExpired: by default a revoked certificate leaves the CRLs once it
// expires; with KeepExpired it stays, and the CRL says since when with
// expiredCertsOnCRL.
func TestKeepExpired(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	ctx := context.Background()
	ik := f.kr.Issuers[0]
	var expired []ca.Serial
	for _, c := range f.certs {
		if c.want == wantExpired && c.rec.IssuerID == ik.Issuer.ID {
			expired = append(expired, c.rec.Serial)
		}
	}
	if len(expired) == 0 {
		t.Fatal("the fixture has no expired certificate")
	}
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			dir := t.TempDir()
			u := f.updater(t, newClock(crlNow), crl.Config{Dir: dir, KeepExpired: keep}, nil)
			p, err := u.Generate(ctx, crl.Scope{Issuer: ik.Issuer.ID})
			if err != nil {
				t.Fatal(err)
			}
			parsed, entries := readCRL(t, filepath.Join(dir, filepath.FromSlash(p.Scope.File())), ik.Cert)
			for _, sn := range expired {
				if _, ok := entries[sn]; ok != keep {
					t.Errorf("expired %s on the CRL: %v", sn, ok)
				}
			}
			if want := ik.Cert.NotBefore; keep != !parsed.ExpiredCertsOnCRL.IsZero() || keep && !parsed.ExpiredCertsOnCRL.Equal(want) {
				t.Errorf("expiredCertsOnCRL %v (issuer notBefore %v)", parsed.ExpiredCertsOnCRL, want)
			}
		})
	}
}

// TestGenerateIssuerOnly: only picks the full CRL and partitions by name,
// including a municipality with nothing revoked and not configured.
func TestGenerateIssuerOnly(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	u := f.updater(t, newClock(crlNow), crl.Config{}, nil)
	id := f.kr.Issuers[0].Issuer.ID
	ps, err := u.GenerateIssuer(context.Background(), id, false, "full", "082201", "131016")
	if err != nil {
		t.Fatal(err)
	}
	var got []crl.Scope
	for _, p := range ps {
		got = append(got, p.Scope)
	}
	want := []crl.Scope{{Issuer: id}, {Issuer: id, Partition: "082201"}, {Issuer: id, Partition: "131016"}}
	if !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	if _, ok, _ := u.Dir().Last(crl.Scope{Issuer: id, Partition: "302015"}); ok {
		t.Fatal("302015 published, but only the others were asked for")
	}
}

// TestPublicationAudited: every published CRL, complete or delta, is in the
// audit log with its number, base, size and URL.
func TestPublicationAudited(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	ctx := context.Background()
	clock := newClock(crlNow)
	u := f.updater(t, clock, crl.Config{DeltaInterval: time.Hour}, nil)
	scope := crl.Scope{Issuer: f.kr.Issuers[0].Issuer.ID, Partition: "302015"}
	base, err := u.Generate(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	clock.add(time.Minute)
	delta, err := u.Generate(ctx, crl.Scope{Issuer: scope.Issuer, Partition: scope.Partition, Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	type detail struct {
		Number     string    `json:"number"`
		BaseNumber string    `json:"base_number"`
		Entries    int64     `json:"entries"`
		Bytes      int64     `json:"bytes"`
		ThisUpdate time.Time `json:"this_update"`
		NextUpdate time.Time `json:"next_update"`
		URL        string    `json:"url"`
	}
	var entries []audit.Entry
	if err := f.st.AuditEntries(ctx, func(e audit.Entry) error {
		if e.Action == "crl.publish" {
			entries = append(entries, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d crl.publish entries, want 2", len(entries))
	}
	for i, p := range []crl.Published{base, delta} {
		e := entries[i]
		var d detail
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			t.Fatal(err)
		}
		wantBase := ""
		if p.BaseNumber != nil {
			wantBase = p.BaseNumber.String()
		}
		if e.Actor != "system:crl" || e.Subject != p.Scope.File() || !e.Time.Equal(p.ThisUpdate) ||
			d.Number != p.Number.String() || d.BaseNumber != wantBase || d.Entries != p.Entries || d.Bytes != p.Size ||
			!d.ThisUpdate.Equal(p.ThisUpdate) || !d.NextUpdate.Equal(p.NextUpdate) || d.URL != u.URL(p.Scope) {
			t.Errorf("%s: audited %s %s %s %+v, published %+v", p.Scope, e.Actor, e.Subject, e.Time, d, p)
		}
	}
	if delta.BaseNumber == nil || delta.BaseNumber.Cmp(base.Number) != 0 {
		t.Fatalf("delta on base %v, want %v", delta.BaseNumber, base.Number)
	}
}
