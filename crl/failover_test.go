package crl_test

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
	"github.com/jpkica/jpkica/internal/pgcluster"
)

// TestLossyFailover: CRLs are published with change marks that a failover
// then takes away (revocations committed on the primary only, more than a
// sequence's cache). A revocation made on the promoted standby has a
// sequence number below the published marks; the updater notices that the
// store no longer holds its newest mark, makes every CRL again, and the
// revocation is on the issuer's CRLs at the next run.
func TestLossyFailover(t *testing.T) {
	c := pgcluster.Start(t, pgcluster.Options{Standbys: 1})
	primary, standby := c.Primary, c.Standbys[0]
	// The nodes reach whichever server takes writes, as a deployment with
	// a multi-host DSN does.
	dsn := c.WritableDSN()
	f := newFixture(t, dsn)
	ctx := context.Background()
	clock := newClock(crlNow)
	reg := prometheus.NewRegistry()
	u := f.updater(t, clock, crl.Config{DeltaInterval: time.Hour, DeltaDelay: time.Minute}, func(d *crl.Deps) { d.Metrics = reg })
	if err := u.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	var target, lost fixtureCert
	for _, fc := range f.certs {
		if fc.want == wantGood && fc.issuer.Issuer.Generation == 1 {
			if target.rec.DER == nil {
				target = fc
			} else if lost.rec.DER == nil && fc.issuer.Issuer.ID == target.issuer.Issuer.ID {
				lost = fc
			}
		}
	}
	c.CatchUp()

	// On the primary only: 40 issuances and a revocation, published.
	c.CutReplication()
	for i := range 40 {
		r := target.rec
		r.Serial = ca.SerialFromBig(big.NewInt(int64(2_000_000 + i)))
		r.CardID, r.ResidentID, r.KeyHash = fmt.Sprintf("LOST-%d", i), fmt.Sprintf("R-LOST-%d", i), nil
		if _, err := f.st.InsertCertificate(ctx, ca.Issuance{Record: r, Supersede: true,
			Audit: audit.Entry{Actor: "counter:302015:test", Action: audit.ActionCertificateIssue}}); err != nil {
			t.Fatal(err)
		}
	}
	revoke(t, f, lost.rec.Serial, clock.now())
	for range 2 { // seen, then published after DeltaDelay
		clock.add(2 * time.Minute)
		if err := u.RunDue(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, d := readCRL(t, filepath.Join(f.dir, lost.issuer.Issuer.ID, "full-delta.crl"), lost.issuer.Cert); len(d) == 0 {
		t.Fatal("the revocation on the primary was not published on a delta before the failover")
	}
	primary.Stop("immediate")
	standby.Promote()

	// On the promoted standby: a revocation below the published marks.
	revoke(t, f, target.rec.Serial, clock.now())
	clock.add(2 * time.Minute)
	for try := 0; ; try++ {
		err := u.RunDue(ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, ca.ErrUnavailable) || try == 50 {
			t.Fatalf("RunDue after the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	id := target.issuer.Issuer.ID
	_, full := readCRL(t, filepath.Join(f.dir, id, "full.crl"), target.issuer.Cert)
	if _, ok := full[target.rec.Serial]; !ok {
		t.Fatal("the revocation made after the failover is not on the issuer's full CRL")
	}
	if _, ok := full[lost.rec.Serial]; ok {
		t.Error("the revocation the failover lost is still on the full CRL")
	}
	if n, _ := metricValue(reg, "jpkica_crl_resyncs_total", map[string]string{}); n != 1 {
		t.Errorf("jpkica_crl_resyncs_total = %v, want 1", n)
	}
}

// revoke revokes a certificate, retrying while the store is unavailable
// (connections to a crashed primary), as a client would.
func revoke(t *testing.T, f *fixture, sn ca.Serial, at time.Time) {
	t.Helper()
	for try := 0; ; try++ {
		_, err := f.st.ChangeStatus(context.Background(), ca.StatusChange{Serials: []ca.Serial{sn}, Status: ca.Revoked,
			Reason: ca.KeyCompromise, At: at, Audit: audit.Entry{Actor: "admin:test", Action: audit.ActionCertificateRevoke}})
		if err == nil {
			return
		}
		if !errors.Is(err, ca.ErrUnavailable) || try == 50 {
			t.Fatalf("revoking %s: %v", sn, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
