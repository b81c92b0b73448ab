package ocsp_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/pgcluster"
	"github.com/jpkica/jpkica/ocsp"
)

// TestLossyFailover is the repro of a failover that loses transactions:
// replication to the standby is cut, certificates are issued on the
// primary only, the primary crashes and the standby is promoted. The
// promoted database's change_seq starts again below what the OCSP nodes
// had followed. Each node notices that the newest change it saw is gone,
// resynchronises without a restart, and answers the revocations made after
// the failover within 5 s; the certificates the failover lost are no longer
// answered good.
func TestLossyFailover(t *testing.T) {
	c := pgcluster.Start(t, pgcluster.Options{Standbys: 1})
	primary, standby := c.Primary, c.Standbys[0]
	// The nodes reach whichever server takes writes, as a deployment with
	// a multi-host DSN does.
	dsn := c.WritableDSN()
	f := newFixtureKeys(t, dsn, hsm.ECDSAP256, nil)
	var kept []*wantCert
	for i := range 3 {
		w := &wantCert{gen: 1, typ: ca.Authentication, status: ca.Good}
		w.rec = f.issue(t, 1, ca.Authentication, fmt.Sprintf("CARD-KEPT-%d", i))
		kept = append(kept, w)
	}
	c.CatchUp()

	var nodes []*ocsp.Presigner
	var regs []*prometheus.Registry
	for range 2 {
		reg := prometheus.NewRegistry()
		p, stop := runPresigner(t, ocsp.Config{PollInterval: 50 * time.Millisecond},
			ocsp.Deps{Issuers: f.issuers(), Source: openStore(t, dsn), Clock: time.Now, Rand: rand.Reader, Metrics: reg})
		t.Cleanup(stop)
		waitCached(t, p, kept, 20*time.Second)
		nodes, regs = append(nodes, p), append(regs, reg)
	}

	c.CutReplication()
	// More than PostgreSQL caches of a sequence (32): the promoted
	// standby's change_seq starts below the nodes' marks.
	var lost []*wantCert
	for i := range 50 {
		w := &wantCert{gen: 1, typ: ca.Authentication, status: ca.Good}
		w.rec = f.issue(t, 1, ca.Authentication, fmt.Sprintf("CARD-LOST-%d", i))
		lost = append(lost, w)
	}
	for _, p := range nodes {
		waitCached(t, p, lost, 20*time.Second) // the nodes followed past what the standby has
	}
	primary.Stop("immediate")
	standby.Promote()

	// The first attempts may meet connections to the crashed primary (503,
	// safe to retry), as a client would.
	var revokedAt time.Time
	for try := 0; ; try++ {
		revokedAt = time.Now()
		_, err := f.st.ChangeStatus(context.Background(), ca.StatusChange{
			Serials: []ca.Serial{kept[0].rec.Serial, kept[1].rec.Serial, kept[2].rec.Serial},
			Status:  ca.Revoked, Reason: ca.KeyCompromise, At: issueNow.Add(time.Hour),
			Audit: audit.Entry{Actor: "operator:test", Action: audit.ActionCertificateRevoke}})
		if err == nil {
			break
		}
		if !errors.Is(err, ca.ErrUnavailable) || try == 50 {
			t.Fatalf("revoking on the promoted standby: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, p := range nodes {
		deadline := revokedAt.Add(5 * time.Second)
		for _, w := range kept {
			for {
				it, ok := p.Lookup(w.rec.IssuerID, w.rec.Serial, crypto.SHA1)
				if ok && it.Status == ocsp.StatusRevoked {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %d: %s not answered revoked 5 s after the revocation on the promoted standby", i, w.rec.Serial)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		for _, w := range lost {
			if it, ok := p.Lookup(w.rec.IssuerID, w.rec.Serial, crypto.SHA1); ok && it.Status == ocsp.StatusGood {
				t.Errorf("node %d: %s, which the failover lost, is still cached good", i, w.rec.Serial)
			}
		}
		if n := counter(t, regs[i], "jpkica_ocsp_resyncs_total"); n != 1 {
			t.Errorf("node %d: jpkica_ocsp_resyncs_total = %v, want 1", i, n)
		}
	}
	t.Logf("revocations answered on both nodes %v after they were made", time.Since(revokedAt))
	if _, err := f.st.Certificate(context.Background(), lost[0].rec.Serial); err == nil {
		t.Fatal("the promoted standby has a certificate issued after replication was cut: not a lossy failover")
	}
}
