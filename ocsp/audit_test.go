package ocsp_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/ocsp"
)

// TestSigningIsAudited: the signatures a presigner makes reach the audit log
// as one "ocsp.sign" entry per issuer and interval (and when it stops), the
// counts adding up to the responses signed, in a chain that still verifies.
func TestSigningIsAudited(t *testing.T) {
	f := newFixture(t, "", hsm.ECDSAP256)
	var recs []ca.Record
	for i, typ := range []ca.CertType{ca.Signature, ca.Authentication, ca.Authentication} {
		recs = append(recs, f.issue(t, 1, typ, "AUDIT-"+string(rune('A'+i))))
	}
	p, err := ocsp.NewPresigner(ocsp.Config{AuditInterval: time.Hour}, ocsp.Deps{
		Issuers: f.issuers(), Source: f.st, Audit: f.st, Clock: time.Now, Rand: rand.Reader,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	if err := p.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done

	signed := map[string]uint64{}
	var v audit.Verifier
	err = f.st.AuditEntries(context.Background(), func(e audit.Entry) error {
		if err := v.Next(e); err != nil {
			return err
		}
		if e.Action == audit.ActionOCSPSign {
			var d struct {
				Responses uint64 `json:"responses"`
				Signer    string `json:"signer"`
			}
			if err := json.Unmarshal(e.Detail, &d); err != nil {
				return err
			}
			if d.Signer == "" || e.Actor == "" {
				t.Errorf("entry %d: signer %q actor %q", e.Seq, d.Signer, e.Actor)
			}
			signed[e.Subject] += d.Responses
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	for _, r := range recs {
		want[r.IssuerID]++
	}
	for id, n := range want {
		if signed[id] < n {
			t.Errorf("issuer %s: %d signatures audited, want at least %d (one per live certificate)", id, signed[id], n)
		}
	}
}
