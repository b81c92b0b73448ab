package ocsp_test

import (
	"crypto"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/ocsp"
)

// answeredRevokedWithin polls the responder until it answers the
// certificate revoked, and fails if that takes longer than within.
func answeredRevokedWithin(t *testing.T, url string, rec ca.Record, issuerDER []byte, within time.Duration) time.Duration {
	t.Helper()
	cert, issuer := mustParse(t, rec.DER), mustParse(t, issuerDER)
	req, err := xocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		resp, err := xocsp.ParseResponseForCert(readAll(t, post(t, url+"/ocsp", req)), cert, issuer)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status == xocsp.Revoked {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("still %d after %v", resp.Status, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRevocationSameNode: a revocation the CA announces (StatusChanged) is
// answered within a second; one it does not announce, through the
// follower's poll, within two poll intervals.
func TestRevocationSameNode(t *testing.T) {
	f := newFixture(t, "", hsm.ECDSAP256)
	p := startPresigner(t, f.st, f.issuers(), ocsp.Config{})
	srv := httptest.NewServer(ocsp.NewResponder(p, "/ocsp/"))
	defer srv.Close()
	a := f.issue(t, 2, ca.Authentication, "CARD-A")
	b := f.issue(t, 2, ca.Signature, "CARD-B")
	p.StatusChanged(t.Context(), a.Serial, b.Serial) // as the Authority does
	waitCached(t, p, []*wantCert{{rec: a, status: ca.Good}, {rec: b, status: ca.Good}}, 5*time.Second)

	f.changeStatus(t, ca.Revoked, ca.KeyCompromise, a.Serial)
	p.StatusChanged(t.Context(), a.Serial)
	d := answeredRevokedWithin(t, srv.URL, a, f.issuerCert(a.IssuerID).Raw, time.Second)
	t.Logf("announced revocation answered after %v", d)

	f.changeStatus(t, ca.Revoked, ca.AffiliationChanged, b.Serial)
	d = answeredRevokedWithin(t, srv.URL, b, f.issuerCert(b.IssuerID).Raw, 2*time.Second)
	t.Logf("unannounced revocation (follower) answered after %v", d)
}

// TestRevocationOtherNode: two responders on two stores sharing PostgreSQL;
// a revocation made through one is answered revoked by the other within
// 5 s, and so is a certificate issued through the first.
func TestRevocationOtherNode(t *testing.T) {
	dsn := postgresDSN(t)
	f := newFixture(t, dsn, hsm.ECDSAP256)
	other := openStore(t, dsn)
	p1 := startPresigner(t, f.st, f.issuers(), ocsp.Config{})
	p2 := startPresigner(t, other, f.issuers(), ocsp.Config{})
	srv1 := httptest.NewServer(ocsp.NewResponder(p1, "/ocsp/"))
	defer srv1.Close()
	srv2 := httptest.NewServer(ocsp.NewResponder(p2, "/ocsp/"))
	defer srv2.Close()

	a := f.issue(t, 2, ca.Authentication, "CARD-A")
	p1.StatusChanged(t.Context(), a.Serial)
	// The other node pre-signs it too, learning of it from the store.
	waitCached(t, p2, []*wantCert{{rec: a, status: ca.Good}}, 5*time.Second)
	if _, ok := p2.Lookup(a.IssuerID, a.Serial, crypto.SHA1); !ok {
		t.Fatal("not pre-signed on the other node")
	}
	f.changeStatus(t, ca.OnHold, ca.CertificateHold, a.Serial)
	p1.StatusChanged(t.Context(), a.Serial)
	d1 := answeredRevokedWithin(t, srv1.URL, a, f.issuerCert(a.IssuerID).Raw, time.Second)
	d2 := answeredRevokedWithin(t, srv2.URL, a, f.issuerCert(a.IssuerID).Raw, 5*time.Second)
	t.Logf("hold answered after %v on this node, %v on the other", d1, d2)
}

var _ http.Handler = (*ocsp.Responder)(nil)
