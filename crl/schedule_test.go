package crl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
)

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
		Reason: ca.KeyCompromise, At: clock.now(), Audit: audit.Entry{Actor: "admin:test", Action: audit.ActionCertificateRevoke}}); err != nil {
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

// TestDeltaUnderSteadyIssuance: issuances every 10 s, as at a busy hour,
// do not hold back the deltas, and neither does a steady stream of
// revocations (one every 20 s for three minutes). Each revocation is on its
// issuer's full delta CRL within DeltaDelay and one Tick, running RunDue
// when Run would (every Tick, or sooner when a delay runs out), on SQLite
// and PostgreSQL.
func TestDeltaUnderSteadyIssuance(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": sqliteDSN, "postgres": postgresDSN} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, dsn(t))
			ctx := context.Background()
			clock := newClock(crlNow)
			const delay, tick = time.Minute, 30 * time.Second
			u := f.updater(t, clock, crl.Config{DeltaInterval: time.Hour, DeltaDelay: delay, Tick: tick}, nil)

			var template fixtureCert
			var targets []fixtureCert
			for _, c := range f.certs {
				if c.want != wantGood || c.issuer.Issuer.Generation != 2 {
					continue
				}
				if template.rec.DER == nil {
					template = c
				}
				if c.issuer.Issuer.ID == template.issuer.Issuer.ID {
					targets = append(targets, c)
				}
			}
			if len(targets) < 2 {
				t.Fatalf("%d good certificates of one issuer in the fixture", len(targets))
			}
			steady := func(sec int) ca.Serial { return ca.SerialFromBig(big.NewInt(int64(1_000_000 + sec))) }
			revokeAt := map[int]ca.Serial{95: targets[0].rec.Serial, 242: targets[1].rec.Serial} // seconds after the start
			for sec := 300; sec <= 480; sec += 20 {
				revokeAt[sec] = steady(sec - 30) // issued half a minute before
			}
			revokedAt := map[ca.Serial]time.Time{}
			seenAt := map[ca.Serial]time.Time{}
			delta := filepath.Join(f.dir, template.issuer.Issuer.ID, "full-delta.crl")
			start, next := clock.now(), clock.now()
			for sec := 0; sec <= 600; sec++ {
				clock.set(start.Add(time.Duration(sec) * time.Second))
				if sec%10 == 0 { // an issuance: a new certificate, no revocation
					r := template.rec
					r.Serial = steady(sec)
					r.CardID, r.ResidentID, r.IssuedAt = fmt.Sprintf("STEADY-%d", sec), fmt.Sprintf("R-STEADY-%d", sec), clock.now()
					r.KeyHash = nil // the template's key, not checked here
					if _, err := f.st.InsertCertificate(ctx, ca.Issuance{Record: r, Supersede: true,
						Audit: audit.Entry{Actor: "counter:302015:test", Action: audit.ActionCertificateIssue}}); err != nil {
						t.Fatal(err)
					}
				}
				if sn, ok := revokeAt[sec]; ok {
					if _, err := f.st.ChangeStatus(ctx, ca.StatusChange{Serials: []ca.Serial{sn}, Status: ca.Revoked,
						Reason: ca.KeyCompromise, At: clock.now(),
						Audit: audit.Entry{Actor: "admin:test", Action: audit.ActionCertificateRevoke}}); err != nil {
						t.Fatal(err)
					}
					revokedAt[sn] = clock.now()
				}
				if clock.now().Before(next) {
					continue
				}
				if err := u.RunDue(ctx); err != nil {
					t.Fatal(err)
				}
				next = clock.now().Add(u.NextRun(clock.now()))
				_, entries := readCRL(t, delta, template.issuer.Cert)
				for sn := range revokedAt {
					if _, ok := entries[sn]; ok && seenAt[sn].IsZero() {
						seenAt[sn] = clock.now()
					}
				}
			}
			for sn, at := range revokedAt {
				switch late := seenAt[sn].Sub(at); {
				case seenAt[sn].IsZero():
					t.Errorf("revocation of %s at %v never reached the delta CRL", sn, at.Sub(start))
				case late > delay+tick:
					t.Errorf("revocation of %s reached the delta CRL after %v, over %v", sn, late, delay+tick)
				default:
					t.Logf("revocation of %s reached the delta CRL after %v", sn, late)
				}
			}
		})
	}
}

// TestStrayPartitionsAndRestart: a partition that left the configuration
// with nothing revoked in it is reported as stray and left as it is, not
// extended; and an updater that starts over a publication directory shows
// every published CRL's gauges at once, each under its own label.
func TestStrayPartitionsAndRestart(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	ctx := context.Background()
	clock := newClock(crlNow)
	cfg := crl.Config{DeltaInterval: time.Hour, Municipalities: []string{"131016", "472018"}}
	if err := f.updater(t, clock, cfg, nil).RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	id := f.kr.Issuers[0].Issuer.ID
	stray := crl.Scope{Issuer: id, Partition: "472018"}
	before, ok, err := f.updater(t, clock, cfg, nil).Dir().Last(stray)
	if err != nil || !ok {
		t.Fatalf("472018 was not published: %v", err)
	}

	// 472018 leaves the configuration; a day later everything else is
	// renewed, and it is not.
	cfg.Municipalities = []string{"131016"}
	reg := prometheus.NewRegistry()
	u := f.updater(t, clock, cfg, func(d *crl.Deps) { d.Metrics = reg })
	clock.add(25 * time.Hour)
	if err := u.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	after, _, _ := u.Dir().Last(stray)
	if after.Number.Cmp(before.Number) != 0 {
		t.Errorf("stray partition 472018 extended: number %v, then %v", before.Number, after.Number)
	}
	if full, _, _ := u.Dir().Last(crl.Scope{Issuer: id}); !full.ThisUpdate.Equal(clock.now()) {
		t.Errorf("the full CRL was not renewed: thisUpdate %v", full.ThisUpdate)
	}
	if n, _ := metricValue(reg, "jpkica_crl_stray_partitions", map[string]string{"issuer": id}); n != 1 {
		t.Errorf("jpkica_crl_stray_partitions{issuer=%q} = %v, want 1", id, n)
	}

	// A restart: the gauges come from the directory before any CRL is made.
	restarted := prometheus.NewRegistry()
	f.updater(t, clock, cfg, func(d *crl.Deps) { d.Metrics = restarted })
	ps, err := u.Dir().Published(id)
	if err != nil || len(ps) < 4 {
		t.Fatalf("%d CRLs published for %s (%v)", len(ps), id, err)
	}
	for _, p := range ps {
		name := strings.TrimSuffix(path.Base(p.Scope.File()), ".crl")
		labels := map[string]string{"issuer": id, "crl": name}
		if v, ok := metricValue(restarted, "jpkica_crl_next_update_timestamp_seconds", labels); !ok || int64(v) != p.NextUpdate.Unix() {
			t.Errorf("after a restart, nextUpdate of %s = %v (present %v), want %d", name, v, ok, p.NextUpdate.Unix())
		}
		if v, ok := metricValue(restarted, "jpkica_crl_entries", labels); !ok || int64(v) != p.Entries {
			t.Errorf("after a restart, entries of %s = %v (present %v), want %d", name, v, ok, p.Entries)
		}
	}
}
