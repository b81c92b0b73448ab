package store

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
)

func TestCRLFeedSQLite(t *testing.T) { testCRLFeed(t, sqliteDSNs) }

func TestCRLFeedPostgreSQL(t *testing.T) {
	postgresDSNs(t) // skips loudly without JPKICA_TEST_POSTGRES_DSN
	testCRLFeed(t, postgresDSNs)
}

type revokedRow struct {
	serial ca.Serial
	at     time.Time
	reason ca.Reason
}

func collect(t *testing.T, fn func(func(ca.Serial, time.Time, ca.Reason) error) error) []revokedRow {
	t.Helper()
	var out []revokedRow
	if err := fn(func(sn ca.Serial, at time.Time, r ca.Reason) error {
		out = append(out, revokedRow{sn, at, r})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// raw adapts a typed callback to crl.Yield.
func raw(fn func(ca.Serial, time.Time, ca.Reason) error) crl.Yield {
	return func(sn []byte, at time.Time, r ca.Reason) error { return fn(ca.SerialFromBytes(sn), at, r) }
}

func testCRLFeed(t *testing.T, dsn newDSN) {
	ctx := context.Background()
	s := mustOpen(t, dsn(t))
	issuer := testFixtures(t).issuer.ID

	if parts, err := s.CRLPartitions(ctx, issuer); err != nil || len(parts) != 0 {
		t.Fatalf("empty store: partitions %v, %v", parts, err)
	}
	if m, sn, err := s.CRLChangeMark(ctx); err != nil || m != 0 || !sn.IsZero() {
		t.Fatalf("empty store: mark %d, %v", m, err)
	}
	// Serials 1..6 over three municipalities; 0x100 sorts after 0xff as a
	// number, not as text.
	munis := []string{"302015", "082201", "302015", "131016", "082201", "302015"}
	serials := []int64{0x100, 0xff, 3, 4, 5, 6}
	for i, n := range serials {
		r := record(t, big.NewInt(n), "CARD-"+big.NewInt(n).String())
		r.Municipality = munis[i]
		if i == 5 {
			r.NotAfter = t0.Add(time.Hour) // expires soon
		}
		mustInsert(t, s, issuance(r))
	}
	revoke := func(st ca.Status, reason ca.Reason, at time.Time, ns ...int64) {
		t.Helper()
		var sns []ca.Serial
		for _, n := range ns {
			sns = append(sns, ca.SerialFromBig(big.NewInt(n)))
		}
		if _, err := s.ChangeStatus(ctx, ca.StatusChange{Serials: sns, Status: st, Reason: reason, At: at,
			Audit: audit.Entry{Actor: "admin:test", Action: audit.ActionCertificateRevoke}}); err != nil {
			t.Fatal(err)
		}
	}
	revoke(ca.Revoked, ca.KeyCompromise, t0.Add(time.Minute), 0x100, 0xff, 6)
	revoke(ca.OnHold, ca.CertificateHold, t0.Add(2*time.Minute), 4)

	parts, err := s.CRLPartitions(ctx, issuer)
	if err != nil || len(parts) != 3 || parts[0] != "082201" || parts[1] != "131016" || parts[2] != "302015" {
		t.Fatalf("partitions %v, %v", parts, err)
	}
	if parts, _ := s.CRLPartitions(ctx, "other-g1"); len(parts) != 0 {
		t.Fatalf("partitions of another issuer: %v", parts)
	}
	mark, _, err := s.CRLChangeMark(ctx)
	if err != nil || mark == 0 {
		t.Fatalf("mark %d, %v", mark, err)
	}

	// After the base: a new revocation and a hold turned into a revocation.
	revoke(ca.Revoked, ca.AffiliationChanged, t0.Add(3*time.Minute), 5, 4)
	changes := collect(t, func(fn func(ca.Serial, time.Time, ca.Reason) error) error {
		return s.RevokedChangesSince(ctx, issuer, "", mark, t0, raw(fn))
	})
	if len(changes) != 2 || changes[0].serial.Big().Int64() != 4 || changes[0].reason != ca.AffiliationChanged ||
		changes[1].serial.Big().Int64() != 5 || !changes[1].at.Equal(t0.Add(3*time.Minute).Truncate(time.Second)) {
		t.Fatalf("changes since %d: %+v", mark, changes)
	}
	cs, err := s.CRLChanges(ctx, mark)
	if err != nil || len(cs) != 2 || cs[0].Partition != "082201" || cs[1].Partition != "131016" || cs[0].Issuer != issuer ||
		cs[0].Seq <= mark || cs[1].Seq <= mark {
		t.Fatalf("changes since %d: %+v, %v", mark, cs, err)
	}
	part := collect(t, func(fn func(ca.Serial, time.Time, ca.Reason) error) error {
		return s.RevokedChangesSince(ctx, issuer, "082201", mark, t0, raw(fn))
	})
	if len(part) != 1 || part[0].serial.Big().Int64() != 5 {
		t.Fatalf("changes in 082201: %+v", part)
	}
	// The expiring certificate leaves once expired; serial order is
	// numeric.
	all := collect(t, func(fn func(ca.Serial, time.Time, ca.Reason) error) error {
		return s.RevokedEntries(ctx, issuer, "", t0.Add(2*time.Hour), fn)
	})
	var got []int64
	for _, r := range all {
		got = append(got, r.serial.Big().Int64())
	}
	if len(got) != 4 || got[0] != 4 || got[1] != 5 || got[2] != 0xff || got[3] != 0x100 {
		t.Fatalf("revoked entries %x", got)
	}
	// CRLEntries is RevokedEntries with the index forced: the same rows,
	// through the partial indexes and, once they exist, the covering ones.
	compare := func() {
		t.Helper()
		for _, muni := range []string{"", "302015", "082201"} {
			a := collect(t, func(fn func(ca.Serial, time.Time, ca.Reason) error) error {
				return s.RevokedEntries(ctx, issuer, muni, t0.Add(30*time.Minute), fn)
			})
			b := collect(t, func(fn func(ca.Serial, time.Time, ca.Reason) error) error {
				return s.CRLEntries(ctx, issuer, muni, t0.Add(30*time.Minute), raw(fn))
			})
			if len(a) != len(b) || len(b) == 0 {
				t.Fatalf("%q: RevokedEntries %d rows, CRLEntries %d", muni, len(a), len(b))
			}
			for i := range a {
				if a[i].serial != b[i].serial || !a[i].at.Truncate(time.Second).Equal(b[i].at) || a[i].reason != b[i].reason {
					t.Fatalf("%q row %d: %+v vs %+v", muni, i, a[i], b[i])
				}
			}
		}
	}
	compare()
	if m2, _, _ := s.CRLChangeMark(ctx); m2 <= mark {
		t.Fatalf("mark did not move: %d then %d", mark, m2)
	}
}

// TestCRLNumbersTwoStores allocates CRL numbers through two Store instances
// on one database, as two `--role crl` processes would.
func TestCRLNumbersTwoStoresSQLite(t *testing.T) { testCRLNumbersTwoStores(t, sqliteDSNs) }

func TestCRLNumbersTwoStoresPostgreSQL(t *testing.T) {
	postgresDSNs(t)
	testCRLNumbersTwoStores(t, postgresDSNs)
}

func testCRLNumbersTwoStores(t *testing.T, dsn newDSN) {
	ctx := context.Background()
	d := dsn(t)
	a, b := mustOpen(t, d), mustOpen(t, d)
	type res struct {
		who int
		n   int64
		err error
	}
	out := make(chan res)
	for who, s := range []*Store{a, b} {
		go func() {
			for range 25 {
				n, err := s.NextCRLNumber(ctx, "signature-g1", "302015")
				r := res{who: who, err: err}
				if err == nil {
					r.n = n.Int64()
				}
				out <- r
			}
		}()
	}
	seen := map[int64]bool{}
	last := [2]int64{}
	for range 50 {
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		if seen[r.n] || r.n <= last[r.who] {
			t.Fatalf("store %d got %d after %d (seen before: %v)", r.who, r.n, last[r.who], seen[r.n])
		}
		seen[r.n], last[r.who] = true, r.n
	}
	for n := int64(1); n <= 50; n++ {
		if !seen[n] {
			t.Fatalf("number %d never allocated", n)
		}
	}
}
