package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ca"
)

var (
	cardExpiry = ca.Date{Year: 2036, Month: time.May, Day: 2}
	keyOne     = []byte("key hash one: 32 bytes of sha256")
	keyTwo     = []byte("key hash two: 32 bytes of sha256")
)

// cardRecord is record with the card's expiry and a key.
func cardRecord(t testing.TB, n int64, card, resident string, key []byte) ca.Record {
	r := record(t, big1(n), card)
	r.ResidentID, r.CardExpires, r.KeyHash = resident, cardExpiry, key
	return r
}

// testCardRules: InsertCertificate applies ca.Issuance.Plan in its own
// transaction, so a refusal that the Authority's check before signing did
// not see (another node's issuance in between) still writes nothing; the
// card's expiry and the key hash round-trip.
func testCardRules(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	first := cardRecord(t, 1, "card-x", "res-a", keyOne)
	mustInsert(t, s, issuance(first))
	got, err := s.Certificate(ctx, first.Serial)
	if err != nil || got.CardExpires != cardExpiry || !reflect.DeepEqual(got.KeyHash, keyOne) {
		t.Fatalf("round trip: card expires %v, key hash %x (%v); want %v, %x", got.CardExpires, got.KeyHash, err, cardExpiry, keyOne)
	}
	before := auditEntries(t, s)

	otherExpiry := cardRecord(t, 3, "card-x", "res-a", keyTwo)
	otherExpiry.CardExpires = ca.Date{Year: 2035, Month: time.January, Day: 1}
	otherCaller := issuance(cardRecord(t, 5, "card-x", "res-a", keyTwo))
	otherCaller.CallerMunicipality = "131016"
	for _, tc := range []struct {
		name string
		in   ca.Issuance
		want error
	}{
		{"another resident on the card", issuance(cardRecord(t, 2, "card-x", "res-b", keyTwo)), ca.ErrCardInUse},
		{"another card expiry", issuance(otherExpiry), ca.ErrCardExpiry},
		{"the key on another card", issuance(cardRecord(t, 4, "card-y", "res-a", keyOne)), ca.ErrKeyReused},
		{"another municipality's counter", otherCaller, ca.ErrCardInUse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sup, err := s.InsertCertificate(ctx, tc.in)
			if !errors.Is(err, tc.want) || sup != nil {
				t.Fatalf("InsertCertificate = %v, %v; want %v", sup, err, tc.want)
			}
			if _, err := s.Certificate(ctx, tc.in.Record.Serial); !errors.Is(err, ca.ErrNotFound) {
				t.Fatalf("the refused record: %v, want ErrNotFound", err)
			}
			if r, _ := s.Certificate(ctx, first.Serial); r.Status != ca.Good {
				t.Fatalf("the card's certificate is %v after the refusal", r.Status)
			}
			if after := auditEntries(t, s); !reflect.DeepEqual(after, before) {
				t.Fatalf("the refusal wrote the audit log: %d entries, was %d", len(after), len(before))
			}
		})
	}

	// The resident's renewal with the same key supersedes the first.
	renew := cardRecord(t, 6, "card-x", "res-a", keyOne)
	if sup := mustInsert(t, s, issuance(renew)); len(sup) != 1 || sup[0] != first.Serial {
		t.Fatalf("renewal superseded %s, want %s", serials(sup), first.Serial)
	}
}

// testCardRace: residents issued onto one new card at the same moment, from
// as many connections: one certificate is stored, every other issuance is
// ErrCardInUse.
func testCardRace(t *testing.T, dsn newDSN, _ func(*testing.T) *Store) {
	d := dsn(t)
	const n = 6
	stores := make([]*Store, n)
	for i := range stores {
		stores[i] = mustOpen(t, d)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := cardRecord(t, int64(100+i), "card-race", fmt.Sprintf("res-%d", i), []byte(fmt.Sprintf("key hash %d: 32 bytes of sha256", i)))
			_, errs[i] = stores[i].InsertCertificate(context.Background(), issuance(r))
		}()
	}
	wg.Wait()
	stored := 0
	for i, err := range errs {
		switch {
		case err == nil:
			stored++
		case !errors.Is(err, ca.ErrCardInUse):
			t.Errorf("issuance %d: %v, want nil or ErrCardInUse", i, err)
		}
	}
	recs, err := stores[0].CertificatesByCard(context.Background(), "card-race")
	if err != nil || stored != 1 || len(recs) != 1 {
		t.Fatalf("%d issuances stored, %d records on the card (%v); want 1", stored, len(recs), err)
	}
}
