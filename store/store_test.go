package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

func TestSQLite(t *testing.T) { runConformance(t, sqliteDSNs) }

func TestPostgreSQL(t *testing.T) {
	postgresDSNs(t) // skips loudly without JPKICA_TEST_POSTGRES_DSN
	runConformance(t, postgresDSNs)
}

// runConformance is the behaviour every backend must show. dsn makes a fresh
// database; most subtests open one Store on it, some two.
func runConformance(t *testing.T, dsn newDSN) {
	open := func(t *testing.T) *Store { return mustOpen(t, dsn(t)) }
	tests := []struct {
		name string
		fn   func(t *testing.T, dsn newDSN, open func(*testing.T) *Store)
	}{
		{"MigrationsIdempotent", testMigrations},
		{"RoundTrip", testRoundTrip},
		{"Supersede", testSupersede},
		{"ConflictWritesNothing", testConflict},
		{"CardRules", testCardRules},
		{"OneResidentPerCardConcurrently", testCardRace},
		{"Idempotency", testIdempotency},
		{"ChangeStatus", testChangeStatus},
		{"ResidentEvents", testResidentEvents},
		{"ResidentLock", testResidentLock},
		{"AuditChain", testAuditChain},
		{"AuditChainsTampered", testAuditChainsTampered},
		{"ConcurrentWriters", testConcurrentWriters},
		{"CRLNumbers", testCRLNumbers},
		{"RevokedEntries", testRevokedEntries},
		{"IssuersAndResponders", testIssuersAndResponders},
		{"OCSP", testOCSP},
		{"BulkInsert", testBulkInsert},
		{"Unavailable", testUnavailable},
		{"CFSSLAccessor", testCFSSLAccessor},
		{"ConsoleReads", testConsoleReads},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, dsn, open)
		})
	}
}

func testMigrations(t *testing.T, dsn newDSN, _ func(*testing.T) *Store) {
	ctx := context.Background()
	d := dsn(t)
	// Two stores migrating a fresh database at once, then a third re-opening it.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, d)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open %d: %v", i, err)
		}
	}
	s := mustOpen(t, d)
	want, err := loadMigrations(s.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	if err := s.db.SelectContext(ctx, &versions, "SELECT version FROM schema_migrations ORDER BY version"); err != nil {
		t.Fatal(err)
	}
	if len(versions) != len(want) {
		t.Fatalf("schema_migrations has %v, want %d migrations", versions, len(want))
	}
	for i, m := range want {
		if versions[i] != m.version {
			t.Errorf("schema_migrations[%d] = %d, want %d", i, versions[i], m.version)
		}
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testRoundTrip(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	sig := record(t, new(big.Int).Lsh(big1(0xfe), 150), "card-rt")
	sig.Type = ca.Signature
	sig.FactsHash = make([]byte, 32)
	sig.FactsHash[31] = 7
	sig.NotBefore = t0.Add(-time.Minute)
	sig.IssuedAt = t0.Add(time.Second)
	revoked := record(t, big1(0x10), "card-rt2")
	revoked.Status, revoked.Reason, revoked.RevokedAt = ca.Revoked, ca.KeyCompromise, t0.Add(time.Hour)
	held := record(t, big1(0x11), "card-rt3")
	held.Status, held.Reason, held.RevokedAt = ca.OnHold, ca.CertificateHold, t0.Add(2*time.Hour)
	term := record(t, big1(0x12), "")
	term.Type, term.ResidentID, term.Municipality = ca.Terminal, "", ""
	for _, tc := range []struct {
		name string
		r    ca.Record
	}{{"signature", sig}, {"revoked", revoked}, {"held", held}, {"terminal", term}} {
		t.Run(tc.name, func(t *testing.T) {
			in := issuance(tc.r)
			in.Supersede = tc.r.CardID != ""
			mustInsert(t, s, in)
			got, err := s.Certificate(ctx, tc.r.Serial)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.r) {
				t.Errorf("Certificate round trip:\n got %+v\nwant %+v", got, tc.r)
			}
		})
	}
	if _, err := s.Certificate(ctx, ca.SerialFromBig(big1(999))); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("unknown serial: err = %v, want ErrNotFound", err)
	}
	byRes, err := s.CertificatesByResident(ctx, sig.ResidentID)
	if err != nil || len(byRes) != 1 || byRes[0].Serial != sig.Serial {
		t.Errorf("CertificatesByResident = %v, %v; want [%s]", byRes, err, sig.Serial)
	}
}

func testSupersede(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	const card = "card-sup"
	old := record(t, big1(1), card) // authentication, good
	heldSig := record(t, big1(2), card)
	heldSig.Type = ca.Signature
	gone := record(t, big1(3), card)
	gone.Status, gone.Reason, gone.RevokedAt = ca.Revoked, ca.KeyCompromise, t0
	oldHeld := record(t, big1(4), card)
	oldHeld.Status, oldHeld.Reason, oldHeld.RevokedAt = ca.OnHold, ca.CertificateHold, t0
	// The resident's lost card: its held certificate of the type is
	// superseded too, its held one of the other type is not, and another
	// resident's held certificate is not.
	lost := record(t, big1(6), "card-sup-lost")
	lost.ResidentID = old.ResidentID
	lost.Status, lost.Reason, lost.RevokedAt = ca.OnHold, ca.CertificateHold, t0
	lostSig := lost
	lostSig.Serial, lostSig.Type = ca.SerialFromBig(big1(7)), ca.Signature
	stranger := record(t, big1(8), "card-stranger")
	stranger.Status, stranger.Reason, stranger.RevokedAt = ca.OnHold, ca.CertificateHold, t0
	// oldHeld goes in before old, so that the database's own order is not
	// the serials' order.
	for _, r := range []ca.Record{oldHeld, old, heldSig, gone, lost, lostSig, stranger} {
		in := issuance(r)
		in.Supersede = false
		mustInsert(t, s, in)
	}
	if _, err := s.ChangeStatus(ctx, ca.StatusChange{Serials: []ca.Serial{heldSig.Serial}, Status: ca.OnHold, Reason: ca.CertificateHold, At: t0,
		Audit: audit.Entry{Actor: "operator:loss-line", Action: audit.ActionCertificateHold}}); err != nil {
		t.Fatal(err)
	}
	auditBefore := len(auditEntries(t, s))

	// Superseding without a card or a resident to look under is refused,
	// and nothing is written.
	for _, clear := range []func(*ca.Record){func(r *ca.Record) { r.CardID = "" }, func(r *ca.Record) { r.ResidentID = "" }} {
		r := record(t, big1(9), card)
		clear(&r)
		if _, err := s.InsertCertificate(ctx, issuance(r)); !errors.Is(err, ca.ErrInvalid) {
			t.Fatalf("superseding without IDs: err = %v, want ErrInvalid", err)
		}
	}
	if _, err := s.Certificate(ctx, ca.SerialFromBig(big1(9))); !errors.Is(err, ca.ErrNotFound) {
		t.Fatalf("refused issuance stored: %v", err)
	}

	renew := record(t, big1(5), card)
	renew.IssuedAt = t0.Add(24 * time.Hour)
	sup := mustInsert(t, s, issuance(renew))
	if got, want := serials(sup), serials([]ca.Serial{old.Serial, oldHeld.Serial, lost.Serial}); got != want {
		t.Fatalf("superseded %s, want %s", got, want)
	}
	for _, tc := range []struct {
		r         ca.Record
		status    ca.Status
		reason    ca.Reason
		revokedAt time.Time
	}{
		{old, ca.Revoked, ca.Superseded, renew.IssuedAt},
		{oldHeld, ca.Revoked, ca.Superseded, renew.IssuedAt},
		{lost, ca.Revoked, ca.Superseded, renew.IssuedAt},
		{heldSig, ca.OnHold, ca.CertificateHold, t0},  // other type: untouched
		{lostSig, ca.OnHold, ca.CertificateHold, t0},  // other type: untouched
		{stranger, ca.OnHold, ca.CertificateHold, t0}, // another resident: untouched
		{gone, ca.Revoked, ca.KeyCompromise, t0},      // already revoked: untouched
		{renew, ca.Good, ca.Unspecified, time.Time{}},
	} {
		got, err := s.Certificate(ctx, tc.r.Serial)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != tc.status || got.Reason != tc.reason || !got.RevokedAt.Equal(tc.revokedAt) {
			t.Errorf("%s: %v/%v at %v, want %v/%v at %v", tc.r.Serial, got.Status, got.Reason, got.RevokedAt, tc.status, tc.reason, tc.revokedAt)
		}
	}
	es := auditEntries(t, s)[auditBefore:]
	var actions []string
	for _, e := range es {
		actions = append(actions, string(e.Action)+" "+e.Subject)
	}
	want := []string{"certificate.issue 05", "certificate.supersede 01", "certificate.supersede 04", "certificate.supersede 06"}
	if !reflect.DeepEqual(actions, want) {
		t.Errorf("audit entries %q, want %q", actions, want)
	}
	byCard, err := s.CertificatesByCard(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if len(byCard) != 5 || byCard[0].Serial != renew.Serial {
		t.Errorf("CertificatesByCard: %d records, first %v; want 5, newest %s first", len(byCard), byCard[0].Serial, renew.Serial)
	}
}

func testConflict(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	first := record(t, big1(100), "card-c")
	in := issuance(first)
	in.IdempotencyKey, in.ClientID, in.RequestHash = "key-1", "terminal-7", []byte{1, 2, 3}
	mustInsert(t, s, in)
	before := auditEntries(t, s)

	dupSerial := record(t, big1(100), "card-c") // same serial: would supersede first
	dupSerial.IssuedAt = t0.Add(time.Hour)
	dupKey := record(t, big1(101), "card-c") // new serial, reused idempotency key
	dupKey.IssuedAt = t0.Add(time.Hour)
	inKey := issuance(dupKey)
	inKey.IdempotencyKey, inKey.ClientID, inKey.RequestHash = "key-1", "terminal-7", []byte{9}
	for _, tc := range []struct {
		name string
		in   ca.Issuance
	}{{"serial", issuance(dupSerial)}, {"idempotency key", inKey}} {
		t.Run(tc.name, func(t *testing.T) {
			sup, err := s.InsertCertificate(ctx, tc.in)
			if !errors.Is(err, ca.ErrConflict) {
				t.Fatalf("err = %v, want ErrConflict", err)
			}
			if !noDriverText(t, err) {
				t.Errorf("the driver's error is not in the chain: %v", err)
			}
			if sup != nil {
				t.Errorf("superseded %v on conflict", sup)
			}
			got, err := s.Certificate(ctx, first.Serial)
			if err != nil || got.Status != ca.Good {
				t.Errorf("first certificate after conflict: %v, %v; want good", got.Status, err)
			}
			if _, err := s.Certificate(ctx, dupKey.Serial); !errors.Is(err, ca.ErrNotFound) {
				t.Errorf("certificate of the failed issuance: err = %v, want ErrNotFound", err)
			}
			if after := auditEntries(t, s); !reflect.DeepEqual(after, before) {
				t.Errorf("audit log changed on conflict: %d entries, was %d", len(after), len(before))
			}
		})
	}
}

func testIdempotency(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	r := record(t, big1(0xabcdef), "card-i")
	in := issuance(r)
	in.IdempotencyKey, in.ClientID, in.RequestHash = "k", "client-a", []byte("request-hash")
	mustInsert(t, s, in)
	for _, tc := range []struct {
		client, key string
		wantErr     error
	}{
		{"client-a", "k", nil},
		{"client-b", "k", ca.ErrNotFound}, // keys are per client
		{"client-a", "other", ca.ErrNotFound},
	} {
		t.Run(tc.client+"/"+tc.key, func(t *testing.T) {
			hash, sn, err := s.Idempotent(ctx, tc.client, tc.key)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (string(hash) != "request-hash" || sn != r.Serial) {
				t.Errorf("Idempotent = %q, %s; want request-hash, %s", hash, sn, r.Serial)
			}
		})
	}
}

func testChangeStatus(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	sn := func(n int64) ca.Serial { return ca.SerialFromBig(big1(n)) }
	for i := int64(1); i <= 4; i++ {
		mustInsert(t, s, issuance(record(t, big1(i), fmt.Sprintf("card-%d", i))))
	}
	tpl := audit.Entry{Actor: "admin:alice", Action: "certificate.status"}
	steps := []struct {
		name       string
		serials    []ca.Serial
		status     ca.Status
		reason     ca.Reason
		wantErr    error
		wantChange string
		check      ca.Serial
		wantStatus ca.Status
		wantReason ca.Reason
	}{
		{"hold good", []ca.Serial{sn(1), sn(2)}, ca.OnHold, ca.CertificateHold, nil, "01,02", sn(1), ca.OnHold, ca.CertificateHold},
		{"hold held again", []ca.Serial{sn(1)}, ca.OnHold, ca.CertificateHold, nil, "", sn(1), ca.OnHold, ca.CertificateHold},
		{"revoke held", []ca.Serial{sn(2), sn(1)}, ca.Revoked, ca.CessationOfOperation, nil, "01,02", sn(1), ca.Revoked, ca.CessationOfOperation},
		{"revoked stays revoked", []ca.Serial{sn(1)}, ca.Revoked, ca.KeyCompromise, nil, "", sn(1), ca.Revoked, ca.CessationOfOperation},
		{"no hold of revoked", []ca.Serial{sn(2)}, ca.OnHold, ca.CertificateHold, nil, "", sn(2), ca.Revoked, ca.CessationOfOperation},
		{"revoke good, duplicates once", []ca.Serial{sn(3), sn(3)}, ca.Revoked, ca.AffiliationChanged, nil, "03", sn(3), ca.Revoked, ca.AffiliationChanged},
		{"unknown serial changes nothing", []ca.Serial{sn(4), sn(99)}, ca.Revoked, ca.KeyCompromise, ca.ErrNotFound, "", sn(4), ca.Good, ca.Unspecified},
		{"good is no target", []ca.Serial{sn(4)}, ca.Good, 0, ca.ErrInvalid, "", sn(4), ca.Good, ca.Unspecified},
		{"revoked with reason hold", []ca.Serial{sn(4)}, ca.Revoked, ca.CertificateHold, ca.ErrInvalid, "", sn(4), ca.Good, ca.Unspecified},
	}
	at := t0
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			at = at.Add(time.Minute)
			before := verifyChain(t, s)
			changed, err := s.ChangeStatus(ctx, ca.StatusChange{Serials: st.serials, Status: st.status, Reason: st.reason, At: at, Audit: tpl})
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("err = %v, want %v", err, st.wantErr)
			}
			noDriverText(t, err)
			if got := serials(changed); got != st.wantChange {
				t.Errorf("changed %q, want %q", got, st.wantChange)
			}
			got, err := s.Certificate(ctx, st.check)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != st.wantStatus || got.Reason != st.wantReason {
				t.Errorf("%s is %v/%v, want %v/%v", st.check, got.Status, got.Reason, st.wantStatus, st.wantReason)
			}
			if n := verifyChain(t, s) - before; n != int64(len(changed)) {
				t.Errorf("%d audit entries for %d changes", n, len(changed))
			}
		})
	}
}

func testAuditChain(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	f := testFixtures(t)
	if err := s.InsertIssuer(ctx, f.issuer, audit.Entry{Time: t0, Actor: "admin:alice", Action: audit.ActionIssuerCreate}); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, s, issuance(record(t, big1(1), "card-a")))
	detail := json.RawMessage(`{"crl_number": 1, "partition": "302015"}`)
	if err := s.AppendAudit(ctx, audit.Entry{Time: t0.Add(time.Nanosecond * 1500), Actor: "system", Action: "crl.sign", Subject: "authentication-g1", Detail: detail}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, audit.Entry{Actor: "system", Action: "crl.sign"}); !errors.Is(err, ca.ErrInvalid) {
		t.Errorf("entry without time: err = %v, want ErrInvalid", err)
	}
	es := auditEntries(t, s)
	if len(es) != 3 || es[2].Seq != es[1].Seq+1 || string(es[2].Detail) != string(detail) || !es[2].Time.Equal(t0.Add(time.Microsecond)) {
		t.Fatalf("audit log: %+v", es)
	}
	if n := verifyChain(t, s); n != 3 {
		t.Errorf("verified %d entries, want 3", n)
	}
	// Tampering is caught: the test can fail.
	if _, err := s.db.ExecContext(ctx, s.q("UPDATE audit_log SET actor = ? WHERE id = ?"), "admin:mallory", es[1].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyAudit(ctx, nil); !errors.Is(err, audit.ErrBroken) {
		t.Errorf("tampered log verifies: err = %v, want ErrBroken", err)
	}
}

func testConcurrentWriters(t *testing.T, dsn newDSN, _ func(*testing.T) *Store) {
	d := dsn(t)
	stores := []*Store{mustOpen(t, d), mustOpen(t, d)}
	ctx := context.Background()
	const workers, each = 4, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[w%len(stores)]
			for i := range each {
				n := int64(w*1000 + i + 1)
				r := record(t, big1(n), fmt.Sprintf("card-w%d", w)) // same card: supersedes
				r.IssuedAt = t0.Add(time.Duration(i) * time.Second)
				if _, err := s.InsertCertificate(ctx, issuance(r)); err != nil {
					errs <- err
				}
				if err := s.AppendAudit(ctx, audit.Entry{Time: t0, Actor: "system", Action: audit.ActionOCSPSign, Subject: r.Serial.Hex()}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Per worker: each issue entries, each-1 supersede entries, each standalone.
	want := int64(workers * (3*each - 1))
	if n := verifyChain(t, stores[1]); n != want {
		t.Errorf("chain of %d entries, want %d", n, want)
	}
	var seqs []int64
	if err := stores[0].db.SelectContext(ctx, &seqs, "SELECT change_seq FROM certificates ORDER BY change_seq"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] == seqs[i-1] {
			t.Errorf("change_seq %d used twice", seqs[i])
		}
	}
}

func testCRLNumbers(t *testing.T, dsn newDSN, _ func(*testing.T) *Store) {
	d := dsn(t)
	stores := []*Store{mustOpen(t, d), mustOpen(t, d)}
	ctx := context.Background()
	const workers, each = 4, 10
	got := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				n, err := stores[w%2].NextCRLNumber(ctx, "authentication-g1", "302015")
				if err != nil {
					t.Error(err)
					return
				}
				got[w] = append(got[w], n.Int64())
			}
		}()
	}
	wg.Wait()
	var all []int64
	for w, ns := range got {
		for i := 1; i < len(ns); i++ {
			if ns[i] <= ns[i-1] {
				t.Errorf("worker %d got %d after %d", w, ns[i], ns[i-1])
			}
		}
		all = append(all, ns...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for i, n := range all {
		if n != int64(i+1) {
			t.Fatalf("CRL numbers %v: want 1..%d, each once", all, workers*each)
		}
	}
	// Partitions count separately.
	if n, err := stores[0].NextCRLNumber(ctx, "authentication-g1", ""); err != nil || n.Int64() != 1 {
		t.Errorf("first number of another partition = %v, %v; want 1", n, err)
	}
}

func testRevokedEntries(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	now := t0.AddDate(1, 0, 0)
	type ent struct {
		serial *big.Int
		muni   string
		issuer string
		status ca.Status
		expiry time.Time
	}
	huge := new(big.Int).Lsh(big1(1), 150)
	ents := []ent{
		{huge, "302015", "authentication-g1", ca.Revoked, now.AddDate(1, 0, 0)},
		{big1(0x100), "302015", "authentication-g1", ca.Revoked, now.AddDate(1, 0, 0)},
		{big1(0xff), "131016", "authentication-g1", ca.OnHold, now.AddDate(1, 0, 0)},
		{big1(0x2), "302015", "authentication-g1", ca.Revoked, now.Add(-time.Second)}, // expired
		{big1(0x3), "302015", "authentication-g1", ca.Good, now.AddDate(1, 0, 0)},
		{big1(0x4), "302015", "authentication-g2", ca.Revoked, now.AddDate(1, 0, 0)}, // other issuer
		{big1(0x1000), "302015", "authentication-g1", ca.Revoked, now},               // expires now: out
	}
	for i, e := range ents {
		r := record(t, e.serial, fmt.Sprintf("card-r%d", i))
		r.IssuerID, r.Municipality, r.Status, r.NotAfter = e.issuer, e.muni, e.status, e.expiry
		if e.status != ca.Good {
			r.Reason, r.RevokedAt = ca.KeyCompromise, t0.Add(time.Duration(i)*time.Hour)
			if e.status == ca.OnHold {
				r.Reason = ca.CertificateHold
			}
		}
		mustInsert(t, s, issuance(r))
	}
	for _, tc := range []struct {
		muni string
		want string
	}{
		{"", "ff/certificateHold,0100/keyCompromise," + ca.SerialFromBig(huge).Hex() + "/keyCompromise"},
		{"302015", "0100/keyCompromise," + ca.SerialFromBig(huge).Hex() + "/keyCompromise"},
		{"999999", ""},
	} {
		t.Run("partition "+tc.muni, func(t *testing.T) {
			var got []string
			err := s.RevokedEntries(ctx, "authentication-g1", tc.muni, now, func(sn ca.Serial, at time.Time, r ca.Reason) error {
				got = append(got, sn.Hex()+"/"+r.String())
				if at.IsZero() {
					t.Errorf("%s without revocation time", sn)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if s := join(got); s != tc.want {
				t.Errorf("RevokedEntries = %s\nwant %s", s, tc.want)
			}
		})
	}
	stop := errors.New("stop")
	if err := s.RevokedEntries(ctx, "authentication-g1", "", now, func(ca.Serial, time.Time, ca.Reason) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("callback error: got %v", err)
	}
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

func testIssuersAndResponders(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	f := testFixtures(t)
	e := audit.Entry{Time: t0, Actor: "admin:alice", Action: audit.ActionIssuerCreate}
	if err := s.InsertIssuer(ctx, f.issuer, e); err != nil {
		t.Fatal(err)
	}
	sameGen := f.issuer
	sameGen.ID = "authentication-g1-bis"
	for _, tc := range []struct {
		name string
		is   ca.Issuer
		want error
	}{
		{"duplicate ID", f.issuer, ca.ErrConflict},
		{"duplicate generation", sameGen, ca.ErrConflict},
		{"not a certificate", ca.Issuer{ID: "x", Type: ca.Signature, KeyRef: "k", CertDER: []byte{1}, CreatedAt: t0}, ca.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.InsertIssuer(ctx, tc.is, e); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	got, err := s.Issuer(ctx, f.issuer.ID)
	if err != nil || !reflect.DeepEqual(got, f.issuer) {
		t.Errorf("Issuer = %+v, %v; want %+v", got, err, f.issuer)
	}
	if all, err := s.Issuers(ctx); err != nil || len(all) != 1 {
		t.Errorf("Issuers = %d, %v; want 1", len(all), err)
	}
	if _, err := s.Issuer(ctx, "nope"); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("unknown issuer: err = %v, want ErrNotFound", err)
	}
	resp := Responder{ID: "ocsp-authentication-g1-1", IssuerID: f.issuer.ID, KeyRef: "ocsp-1", CertDER: f.leafDER, NotAfter: t0.AddDate(0, 3, 0), CreatedAt: t0}
	re := audit.Entry{Time: t0, Actor: "admin:alice", Action: "responder.create"}
	if err := s.InsertResponder(ctx, resp, re); err != nil {
		t.Fatal(err)
	}
	orphan := resp
	orphan.ID, orphan.IssuerID = "orphan", "nope"
	if err := s.InsertResponder(ctx, orphan, re); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("responder of unknown issuer: err = %v, want ErrNotFound", err)
	}
	if err := s.InsertResponder(ctx, resp, re); !errors.Is(err, ca.ErrConflict) {
		t.Errorf("duplicate responder: err = %v, want ErrConflict", err)
	}
	rs, err := s.Responders(ctx)
	if err != nil || len(rs) != 1 || !reflect.DeepEqual(rs[0], resp) {
		t.Errorf("Responders = %+v, %v; want [%+v]", rs, err, resp)
	}
	// A renewal is recorded only against the issuer's newest responder.
	renewed := resp
	renewed.ID, renewed.KeyRef, renewed.CreatedAt = "ocsp-authentication-g1-2", "ocsp-2", t0.Add(time.Hour)
	stale := renewed
	stale.ID, stale.KeyRef = "ocsp-authentication-g1-3", "ocsp-3"
	if err := s.ReplaceResponder(ctx, renewed, "some-other", re); !errors.Is(err, ca.ErrConflict) {
		t.Errorf("renewing a responder that is not the newest: err = %v, want ErrConflict", err)
	}
	if err := s.ReplaceResponder(ctx, renewed, resp.ID, re); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceResponder(ctx, stale, resp.ID, re); !errors.Is(err, ca.ErrConflict) {
		t.Errorf("a second renewal of the same responder: err = %v, want ErrConflict", err)
	}
	if rs, err := s.Responders(ctx); err != nil || len(rs) != 2 || rs[0].ID != renewed.ID {
		t.Errorf("after renewal, Responders = %+v, %v; want the renewal first of 2", rs, err)
	}
	if n := verifyChain(t, s); n != 3 {
		t.Errorf("%d audit entries, want 3 (issuer, responder, renewal)", n)
	}
}

func testOCSP(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	r := record(t, big1(77), "card-o")
	mustInsert(t, s, issuance(r))
	if _, _, err := s.OCSP(ctx, r.Serial, r.AKI); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("before upsert: err = %v, want ErrNotFound", err)
	}
	for i, body := range [][]byte{{0x30, 0x03, 0x0a, 0x01, 0x00}, {0x30, 0x00, 0xff, 0x5c, 0x27}} {
		exp := t0.Add(time.Duration(i+1) * time.Hour)
		if err := s.UpsertOCSP(ctx, ca.OCSPResponse{Serial: r.Serial, AKI: r.AKI, Body: body, Expiry: exp}); err != nil {
			t.Fatal(err)
		}
		got, gotExp, err := s.OCSP(ctx, r.Serial, r.AKI)
		if err != nil || string(got) != string(body) || !gotExp.Equal(exp) {
			t.Errorf("OCSP = %x, %v, %v; want %x, %v", got, gotExp, err, body, exp)
		}
	}
	if err := s.UpsertOCSP(ctx, ca.OCSPResponse{Serial: ca.SerialFromBig(big1(78)), AKI: r.AKI, Body: []byte{1}, Expiry: t0}); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("response for unknown certificate: err = %v, want ErrNotFound", err)
	}
	// One transaction: a batch with an unknown certificate stores nothing.
	r2 := record(t, big1(79), "card-p")
	mustInsert(t, s, issuance(r2))
	before, _, _ := s.OCSP(ctx, r.Serial, r.AKI)
	err := s.UpsertOCSP(ctx, ca.OCSPResponse{Serial: r.Serial, AKI: r.AKI, Body: []byte{7}, Expiry: t0},
		ca.OCSPResponse{Serial: r2.Serial, AKI: r2.AKI, Body: []byte{8}, Expiry: t0},
		ca.OCSPResponse{Serial: ca.SerialFromBig(big1(80)), AKI: r.AKI, Body: []byte{9}, Expiry: t0})
	if !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("batch with an unknown certificate: err = %v, want ErrNotFound", err)
	}
	if got, _, _ := s.OCSP(ctx, r.Serial, r.AKI); string(got) != string(before) {
		t.Errorf("after a failed batch: %x, want %x", got, before)
	}
	if _, _, err := s.OCSP(ctx, r2.Serial, r2.AKI); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("after a failed batch: err = %v, want ErrNotFound", err)
	}
	if err := s.UpsertOCSP(ctx, ca.OCSPResponse{Serial: r.Serial, AKI: r.AKI, Body: []byte{7}, Expiry: t0},
		ca.OCSPResponse{Serial: r2.Serial, AKI: r2.AKI, Body: []byte{8}, Expiry: t0}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		r    ca.Record
		body string
	}{{r, "\x07"}, {r2, "\x08"}} {
		if got, _, err := s.OCSP(ctx, c.r.Serial, c.r.AKI); err != nil || string(got) != c.body {
			t.Errorf("after a batch: %s = %x, %v", c.r.Serial, got, err)
		}
	}
	if err := s.UpsertOCSP(ctx, ca.OCSPResponse{Serial: r.Serial, AKI: r.AKI}); !errors.Is(err, ca.ErrInvalid) {
		t.Errorf("no body: err = %v, want ErrInvalid", err)
	}
}

func testBulkInsert(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	if real, err := s.HasRealCertificates(ctx); err != nil || real {
		t.Fatalf("empty store: HasRealCertificates = %v, %v", real, err)
	}
	var recs []ca.Record
	for i := range 500 {
		r := record(t, big1(int64(i+1)), fmt.Sprintf("seed-%d", i))
		r.Synthetic = true
		if i%10 == 0 {
			r.Status, r.Reason, r.RevokedAt = ca.Revoked, ca.CessationOfOperation, t0
		}
		recs = append(recs, r)
	}
	if err := s.BulkInsert(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Certificate(ctx, recs[10].Serial)
	if err != nil || !reflect.DeepEqual(got, recs[10]) {
		t.Errorf("bulk record round trip: %+v, %v", got, err)
	}
	if real, err := s.HasRealCertificates(ctx); err != nil || real {
		t.Errorf("seeded store: HasRealCertificates = %v, %v; want false", real, err)
	}
	if n := verifyChain(t, s); n != 0 {
		t.Errorf("%d audit entries for synthetic rows, want 0", n)
	}
	notSynthetic := record(t, big1(10000), "x")
	if err := s.BulkInsert(ctx, []ca.Record{notSynthetic}); !errors.Is(err, ca.ErrInvalid) {
		t.Errorf("bulk insert of a real record: err = %v, want ErrInvalid", err)
	}
	fresh := recs[0]
	fresh.Serial = ca.SerialFromBig(big1(20000))
	if err := s.BulkInsert(ctx, []ca.Record{fresh, recs[1]}); !errors.Is(err, ca.ErrConflict) {
		t.Errorf("bulk insert of a stored serial: err = %v, want ErrConflict", err)
	}
	if _, err := s.Certificate(ctx, fresh.Serial); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("failed bulk insert left a row behind: err = %v", err)
	}
	mustInsert(t, s, issuance(record(t, big1(30000), "real")))
	if real, err := s.HasRealCertificates(ctx); err != nil || !real {
		t.Errorf("after an issuance: HasRealCertificates = %v, %v; want true", real, err)
	}
}

func testUnavailable(t *testing.T, dsn newDSN, open func(*testing.T) *Store) {
	ctx := context.Background()
	s := open(t)
	s.Close()
	r := record(t, big1(1), "card-u")
	for _, tc := range []struct {
		name string
		fn   func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"Certificate", func() error { _, err := s.Certificate(ctx, r.Serial); return err }},
		{"InsertCertificate", func() error { _, err := s.InsertCertificate(ctx, issuance(r)); return err }},
		{"NextCRLNumber", func() error { _, err := s.NextCRLNumber(ctx, "i", ""); return err }},
		{"AuditEntries", func() error { return s.AuditEntries(ctx, func(audit.Entry) error { return nil }) }},
	} {
		t.Run("closed/"+tc.name, func(t *testing.T) {
			if err := tc.fn(); !errors.Is(err, ca.ErrUnavailable) {
				t.Errorf("err = %v, want ErrUnavailable", err)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		var bad string
		if s.Dialect() == PostgreSQL {
			bad = "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2"
		} else {
			bad = "sqlite:" + filepath.Join(t.TempDir(), "no", "such", "dir", "jpkica.db")
		}
		if _, err := Open(ctx, bad); !errors.Is(err, ca.ErrUnavailable) {
			t.Errorf("Open(%s): err = %v, want ErrUnavailable", bad, err)
		}
	})
}

// testResidentEvents: a death revokes the resident's good and held
// certificates of both types in one transaction and marks the resident;
// a good certificate for them is then refused and writes nothing, while a
// discarded (revoked) one is still recorded; a removal of a resident with
// no certificates is recorded all the same; "registered" lifts the mark.
func testResidentEvents(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	auth := record(t, big1(1), "card-gone")
	sig := record(t, big1(2), "card-gone")
	sig.Type = ca.Signature
	other := record(t, big1(3), "card-other") // another resident
	for _, r := range []ca.Record{auth, sig, other} {
		mustInsert(t, s, issuance(r))
	}
	if _, err := s.ChangeStatus(ctx, ca.StatusChange{Serials: []ca.Serial{sig.Serial}, Status: ca.OnHold, Reason: ca.CertificateHold,
		At: t0, Audit: audit.Entry{Actor: "operator:loss-line", Action: audit.ActionCertificateHold}}); err != nil {
		t.Fatal(err)
	}
	event := func(id string, k ca.EventKind) ([]ca.Serial, error) {
		types, reason, err := ca.EventRule(k)
		if err != nil {
			t.Fatal(err)
		}
		return s.ApplyResidentEvent(ctx, ca.ResidentChange{ResidentID: id, Event: k, Effective: ca.Date{Year: 2026, Month: 11, Day: 24},
			Types: types, Reason: reason, At: t0.Add(time.Hour), Audit: audit.Entry{Time: t0.Add(time.Hour), Actor: "register:302015", Action: audit.ActionCertificateRevoke}})
	}
	changed, err := event(auth.ResidentID, ca.Deceased)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := serials(changed), serials([]ca.Serial{auth.Serial, sig.Serial}); got != want {
		t.Fatalf("death revoked %s, want %s", got, want)
	}
	for _, sn := range []ca.Serial{auth.Serial, sig.Serial} {
		if r, _ := s.Certificate(ctx, sn); r.Status != ca.Revoked || r.Reason != ca.CessationOfOperation {
			t.Errorf("%s after the death: %v %v", sn.Hex(), r.Status, r.Reason)
		}
	}
	if r, _ := s.Certificate(ctx, other.Serial); r.Status != ca.Good {
		t.Errorf("another resident's certificate is %v", r.Status)
	}

	auditBefore := len(auditEntries(t, s))
	again := record(t, big1(4), "card-gone")
	if _, err := s.InsertCertificate(ctx, issuance(again)); !errors.Is(err, ca.ErrResidentGone) || !errors.Is(err, ca.ErrNotEligible) {
		t.Fatalf("a new certificate for a dead resident: %v, want ErrResidentGone", err)
	}
	if _, err := s.Certificate(ctx, again.Serial); !errors.Is(err, ca.ErrNotFound) {
		t.Fatalf("the refused certificate was stored: %v", err)
	}
	if n := len(auditEntries(t, s)); n != auditBefore {
		t.Fatalf("the refusal wrote %d audit entries", n-auditBefore)
	}
	app := ca.ProxyApplication{ID: "app-gone", ResidentID: auth.ResidentID, Municipality: "302015", CardID: "card-gone",
		Types: []ca.CertType{ca.Signature}, AnswerCodeHash: []byte("hash"), NotBefore: t0.Add(24 * time.Hour), CreatedAt: t0, CreatedBy: "counter:302015:t"}
	if err := s.InsertProxyApplication(ctx, app, audit.Entry{Time: t0, Actor: "counter:302015:t", Action: audit.ActionProxyOpen}); !errors.Is(err, ca.ErrResidentGone) {
		t.Fatalf("a proxy application for a dead resident: %v, want ErrResidentGone", err)
	}
	discarded := again
	discarded.Status, discarded.Reason, discarded.RevokedAt = ca.Revoked, ca.Unspecified, t0
	in := issuance(discarded)
	in.Supersede = false
	mustInsert(t, s, in)

	// A removal with nothing to revoke is recorded, and refuses issuance.
	if changed, err := event("resident-nobody", ca.Removed); err != nil || len(changed) != 0 {
		t.Fatalf("removal without certificates: %v, %v", changed, err)
	}
	nobody := record(t, big1(5), "card-nobody")
	nobody.ResidentID = "resident-nobody"
	if _, err := s.InsertCertificate(ctx, issuance(nobody)); !errors.Is(err, ca.ErrResidentGone) {
		t.Fatalf("a new certificate for a removed resident: %v, want ErrResidentGone", err)
	}
	if _, err := event("resident-nobody", ca.Registered); err != nil {
		t.Fatal(err)
	}
	mustInsert(t, s, issuance(nobody))

	var marks []string
	for _, e := range auditEntries(t, s) {
		if strings.HasPrefix(string(e.Action), "resident.") {
			marks = append(marks, string(e.Action)+" "+e.Subject)
		}
	}
	want := []string{"resident.deceased " + auth.ResidentID, "resident.removed resident-nobody", "resident.registered resident-nobody"}
	if !slices.Equal(marks, want) {
		t.Fatalf("resident audit entries %q, want %q", marks, want)
	}
}

// testResidentLock: on PostgreSQL, an issuance for a resident waits for a
// register event's transaction on that resident, and then sees its mark.
// (Under READ COMMITTED it would otherwise miss the uncommitted mark and
// insert a certificate the event's transaction never saw.) SQLite's single
// writer serialises them without a lock.
func testResidentLock(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	if s.Dialect() != PostgreSQL {
		t.Skip("SQLite serialises writers; there is no lock to test")
	}
	ctx := context.Background()
	// An event's transaction, held open: the lock, then the mark.
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := s.lockResident(ctx, tx, "resident-locked"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO resident_status (resident_id, event, effective, recorded_at) VALUES ($1, 'deceased', '2026-11-24', $2)",
		"resident-locked", dbTime(t0)); err != nil {
		t.Fatal(err)
	}
	r := record(t, big1(7), "card-locked")
	r.ResidentID = "resident-locked"
	in := issuance(r)
	in.Supersede = false
	done := make(chan error, 1)
	go func() { _, err := s.InsertCertificate(ctx, in); done <- err }()
	time.Sleep(200 * time.Millisecond) // let the issuance reach the lock (ordering only)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ca.ErrResidentGone) {
		t.Fatalf("an issuance during the event's transaction: %v, want ErrResidentGone", err)
	}
}

// TestSQLiteFileModes: a new SQLite database, which holds every resident's
// 4 facts, and the -wal and -shm files SQLite makes beside it are readable
// by their owner only, whatever the umask lets SQLite do by itself (0644
// under the usual 022).
func TestSQLiteFileModes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jpkica.db")
	s := mustOpen(t, "sqlite:"+file)
	r := record(t, big1(0x21), "card-mode")
	mustInsert(t, s, issuance(r))
	if _, err := s.Certificate(context.Background(), r.Serial); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{file, file + "-wal", file + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(f), perm)
		}
	}
}
