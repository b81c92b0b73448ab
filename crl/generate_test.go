package crl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
)

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
		ch.Audit.Actor, ch.Audit.Action = "admin:test", audit.ActionCertificateRevoke
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
// including a configured municipality with nothing revoked. A code that is
// neither configured nor named by a revoked certificate is refused, and
// nothing is published.
func TestGenerateIssuerOnly(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	u := f.updater(t, newClock(crlNow), crl.Config{Municipalities: []string{"131016"}}, nil)
	id := f.kr.Issuers[0].Issuer.ID
	for _, only := range [][]string{{"999999"}, {"full", "999999"}} {
		if ps, err := u.GenerateIssuer(context.Background(), id, false, only...); !errors.Is(err, crl.ErrInvalid) || len(ps) != 0 {
			t.Fatalf("GenerateIssuer(%q) = %d CRLs, %v; want ErrInvalid", only, len(ps), err)
		}
	}
	if ps, err := u.Dir().Published(id); err != nil || len(ps) != 0 {
		t.Fatalf("after the refusals, %d CRLs are published (%v), want none", len(ps), err)
	}
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
		if e.Action == audit.ActionCRLPublish {
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
