package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

func TestStatusFeedSQLite(t *testing.T) { testStatusFeed(t, sqliteDSNs) }

func TestStatusFeedPostgreSQL(t *testing.T) { testStatusFeed(t, postgresDSNs) }

// testStatusFeed: the feed lists changes in change_seq order after a given
// seq, StatusOf agrees with it, and NewestChange is the newest.
func testStatusFeed(t *testing.T, dsn newDSN) {
	s := mustOpen(t, dsn(t))
	ctx := context.Background()
	if n, _, err := s.NewestChange(ctx); err != nil || n != 0 {
		t.Fatalf("empty store: NewestChange = %d, %v", n, err)
	}
	a := record(t, big1(101), "card-a")
	b := record(t, big1(102), "card-b")
	mustInsert(t, s, issuance(a))
	mustInsert(t, s, issuance(b))
	if _, err := s.ChangeStatus(ctx, ca.StatusChange{Serials: []ca.Serial{a.Serial}, Status: ca.OnHold,
		Reason: ca.CertificateHold, At: t0.Add(time.Hour), Audit: audit.Entry{Actor: "operator:1", Action: audit.ActionCertificateHold}}); err != nil {
		t.Fatal(err)
	}
	type got struct {
		seq int64
		r   ca.Record
	}
	feed := func(after int64) []got {
		var out []got
		if err := s.StatusFeed(ctx, after, func(seq int64, r ca.Record) error {
			out = append(out, got{seq, r})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := feed(0)
	if len(all) != 2 || all[0].r.Serial != b.Serial || all[1].r.Serial != a.Serial || all[0].seq >= all[1].seq {
		t.Fatalf("feed order: %+v", all)
	}
	held := all[1].r
	if held.Status != ca.OnHold || held.Reason != ca.CertificateHold || !held.RevokedAt.Equal(dbTime(t0.Add(time.Hour))) ||
		held.IssuerID != a.IssuerID || !held.NotAfter.Equal(dbTime(a.NotAfter)) || held.DER != nil {
		t.Fatalf("held record: %+v", held)
	}
	if rest := feed(all[0].seq); len(rest) != 1 || rest[0].r.Serial != a.Serial {
		t.Fatalf("feed after %d: %+v", all[0].seq, rest)
	}
	if max, _, err := s.NewestChange(ctx); err != nil || max != all[1].seq {
		t.Fatalf("NewestChange = %d, %v; want %d", max, err, all[1].seq)
	}
	seq, r, err := s.StatusOf(ctx, a.Serial)
	if err != nil || seq != all[1].seq || r.Status != ca.OnHold {
		t.Fatalf("StatusOf = %d, %+v, %v", seq, r, err)
	}
	if _, _, err := s.StatusOf(ctx, ca.SerialFromBig(big1(999))); !errors.Is(err, ca.ErrNotFound) {
		t.Fatalf("StatusOf unknown: %v", err)
	}
	stop := errors.New("stop")
	if err := s.StatusFeed(ctx, 0, func(int64, ca.Record) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("fn's error: %v", err)
	}
	// Stored responses of unexpired certificates.
	if err := s.UpsertOCSP(ctx, ca.OCSPResponse{Serial: b.Serial, AKI: b.AKI, Body: []byte{0x30, 0x00}, Expiry: t0}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.OCSPResponses(ctx, t0, func(seq int64, r ca.Record, body []byte) error {
		if r.Serial != b.Serial || string(body) != "\x30\x00" || seq != all[0].seq || r.Status != ca.Good {
			t.Errorf("response %d %s %v %x", seq, r.Serial, r.Status, body)
		}
		n++
		return nil
	}); err != nil || n != 1 {
		t.Fatalf("OCSPResponses: %d, %v", n, err)
	}
	if err := s.OCSPResponses(ctx, b.NotAfter.Add(time.Second), func(int64, ca.Record, []byte) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("OCSPResponses after expiry: %d, %v", n, err)
	}
}
