package store

import (
	"context"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// testConsoleReads: the console's reads. Today's activity counts each
// action by the municipality of its certificate, whatever the serial's
// length (subjects have no leading zeros, serial_hex has), and leaves out
// other days; the tail is newest first; a subject's entries are its own.
func testConsoleReads(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	f := testFixtures(t)
	if err := s.InsertIssuer(ctx, f.issuer, audit.Entry{Time: t0, Actor: "admin:alice", Action: audit.ActionIssuerCreate}); err != nil {
		t.Fatal(err)
	}
	long, _ := new(big.Int).SetString("7f0102030405060708090a0b0c0d0e0f10111213", 16)
	a := record(t, big1(1), "card-a")
	b := record(t, long, "card-b")
	b.Municipality, b.ResidentID = "011002", "resident-b"
	yesterday := record(t, big1(0x0203), "card-c")
	yesterday.IssuedAt = t0.AddDate(0, 0, -1)
	for _, r := range []ca.Record{a, b, yesterday} {
		in := issuance(r)
		in.Audit.Subject = r.Serial.Hex()
		mustInsert(t, s, in)
	}
	for _, ch := range []ca.StatusChange{
		{Serials: []ca.Serial{a.Serial}, Status: ca.Revoked, Reason: ca.KeyCompromise, At: t0.Add(time.Minute),
			Audit: audit.Entry{Actor: "admin:alice", Action: audit.ActionCertificateRevoke}},
		{Serials: []ca.Serial{b.Serial}, Status: ca.OnHold, Reason: ca.CertificateHold, At: t0.Add(time.Minute),
			Audit: audit.Entry{Actor: "lossline:x", Action: audit.ActionCertificateHold}},
	} {
		if _, err := s.ChangeStatus(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	day := time.Date(t0.Year(), t0.Month(), t0.Day(), 0, 0, 0, 0, time.UTC)
	got, err := s.AuditActivity(ctx, day, day.AddDate(0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	want := []ActivityCount{
		{"011002", audit.ActionCertificateHold, 1}, {"011002", audit.ActionCertificateIssue, 1},
		{"302015", audit.ActionCertificateIssue, 1}, {"302015", audit.ActionCertificateRevoke, 1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("AuditActivity = %v, want %v", got, want)
	}

	tail, err := s.AuditTail(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(tail) != 2 || tail[0].ID <= tail[1].ID || tail[0].Action != audit.ActionCertificateHold {
		t.Errorf("AuditTail(2) = %v, want the hold first, then the revocation", tail)
	}
	hist, err := s.AuditBySubject(ctx, a.Serial.Hex(), 10)
	if err != nil {
		t.Fatal(err)
	}
	var actions []audit.Action
	for _, e := range hist {
		actions = append(actions, e.Action)
	}
	if !slices.Equal(actions, []audit.Action{audit.ActionCertificateIssue, audit.ActionCertificateRevoke}) {
		t.Errorf("AuditBySubject(%s) = %v, want issue, revoke", a.Serial.Hex(), actions)
	}
}
