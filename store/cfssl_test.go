package store

import (
	"context"
	"encoding/hex"
	"math/big"
	"testing"
	"time"

	cfsql "github.com/cloudflare/cfssl/certdb/sql"

	"github.com/jpkica/jpkica/ca"
)

// testCFSSLAccessor reads a jpkica store with cfssl's own certdb accessor.
// cfssl compares expiry with the database's CURRENT_TIMESTAMP, so these
// records are dated from the real clock.
func testCFSSLAccessor(t *testing.T, _ newDSN, open func(*testing.T) *Store) {
	s := open(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	mk := func(n int64, card string) ca.Record {
		r := record(t, big.NewInt(n), card)
		r.NotBefore, r.IssuedAt, r.NotAfter = now.Add(-time.Hour), now.Add(-time.Hour), now.AddDate(5, 0, 0)
		return r
	}
	good := mk(1001, "cf-1")
	revoked := mk(1002, "cf-2")
	held := mk(1003, "cf-3")
	expired := mk(1004, "cf-4")
	expired.NotAfter = now.Add(-time.Minute)
	for _, r := range []ca.Record{good, revoked, held, expired} {
		mustInsert(t, s, issuance(r))
	}
	if _, err := s.ChangeStatus(ctx, ca.StatusChange{Serials: []ca.Serial{revoked.Serial, expired.Serial}, Status: ca.Revoked,
		Reason: ca.KeyCompromise, At: now, Audit: issuance(good).Audit}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChangeStatus(ctx, ca.StatusChange{Serials: []ca.Serial{held.Serial}, Status: ca.OnHold,
		Reason: ca.CertificateHold, At: now, Audit: issuance(good).Audit}); err != nil {
		t.Fatal(err)
	}
	body := []byte{0x30, 0x82, 0x00, 0x00, 0x5c, 0x00, 0xff}
	if err := s.UpsertOCSP(ctx, ca.OCSPResponse{Serial: revoked.Serial, AKI: revoked.AKI, Body: body, Expiry: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	acc := cfsql.NewAccessor(s.db)
	aki := hex.EncodeToString(good.AKI)
	for _, tc := range []struct {
		r      ca.Record
		status string
		reason int
	}{
		{good, "good", 0},
		{revoked, "revoked", int(ca.KeyCompromise)},
		{held, "revoked", int(ca.CertificateHold)},
	} {
		crs, err := acc.GetCertificate(tc.r.Serial.Decimal(), aki)
		if err != nil {
			t.Fatalf("cfssl GetCertificate: %v", err)
		}
		if len(crs) != 1 {
			t.Fatalf("cfssl GetCertificate(%s) found %d records", tc.r.Serial.Decimal(), len(crs))
		}
		cr := crs[0]
		if cr.Status != tc.status || cr.Reason != tc.reason || !cr.Expiry.Equal(tc.r.NotAfter) || cr.CALabel != tc.r.IssuerID || cr.AKI != aki {
			t.Errorf("cfssl sees %s as %s/%d expiring %v (label %q, aki %s); want %s/%d, %v", cr.Serial, cr.Status, cr.Reason, cr.Expiry, cr.CALabel, cr.AKI, tc.status, tc.reason, tc.r.NotAfter)
		}
		if cr.IssuedAt == nil || !cr.IssuedAt.Equal(tc.r.IssuedAt) || !cr.CommonName.Valid || cr.CommonName.String != "ABCDEFGHIJKLMNOPQRSTUVW" {
			t.Errorf("cfssl sees issued_at %v, common_name %v", cr.IssuedAt, cr.CommonName)
		}
		if tc.status == "revoked" && !cr.RevokedAt.Equal(now) {
			t.Errorf("cfssl sees revoked_at %v, want %v", cr.RevokedAt, now)
		}
	}
	revs, err := acc.GetRevokedAndUnexpiredCertificates()
	if err != nil {
		t.Fatalf("cfssl GetRevokedAndUnexpiredCertificates: %v", err)
	}
	got := map[string]bool{}
	for _, cr := range revs {
		got[cr.Serial] = true
	}
	if len(revs) != 2 || !got[revoked.Serial.Decimal()] || !got[held.Serial.Decimal()] {
		t.Errorf("cfssl revoked and unexpired: %v; want %s and %s", got, revoked.Serial.Decimal(), held.Serial.Decimal())
	}
	byLabel, err := acc.GetRevokedAndUnexpiredCertificatesByLabelSelectColumns(good.IssuerID)
	if err != nil || len(byLabel) != 2 {
		t.Errorf("cfssl revoked by label: %d, %v; want 2", len(byLabel), err)
	}
	ors, err := acc.GetOCSP(revoked.Serial.Decimal(), aki)
	if err != nil || len(ors) != 1 || ors[0].Body != string(body) {
		t.Errorf("cfssl GetOCSP = %+v, %v; want body %x", ors, err, body)
	}
}
