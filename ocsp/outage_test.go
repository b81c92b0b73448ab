package ocsp_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/softhsmtest"
	"github.com/jpkica/jpkica/ocsp"
)

// TestRevocationDuringHSMOutage: the responder key's token goes away (its
// SoftHSM2 directory moved out), then a certificate is revoked. The
// pre-signer cannot sign the new status, so it withdraws the cached good
// response: from then on the certificate is never answered good, only
// tryLater (counted), until the token is back and the revocation is signed.
// Another certificate, whose status did not change, keeps its response.
func TestRevocationDuringHSMOutage(t *testing.T) {
	tok := softhsmtest.New(t)
	keys, err := hsm.OpenPKCS11(context.Background(), hsm.PKCS11Config{Module: tok.Module, TokenLabel: tok.Label,
		PIN: tok.PIN, MaxSessions: 2, MaxReinitBackoff: 100 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	f := newFixtureKeys(t, "", hsm.ECDSAP256, keys)
	revoked := &wantCert{gen: 1, typ: ca.Authentication, status: ca.Good}
	revoked.rec = f.issue(t, 1, ca.Authentication, "CARD-OUTAGE-1")
	kept := &wantCert{gen: 1, typ: ca.Authentication, status: ca.Good}
	kept.rec = f.issue(t, 1, ca.Authentication, "CARD-OUTAGE-2")

	reg := prometheus.NewRegistry()
	p, stop := runPresigner(t, ocsp.Config{PollInterval: 50 * time.Millisecond},
		ocsp.Deps{Issuers: f.issuers(), Source: f.st, Clock: time.Now, Rand: rand.Reader, Metrics: reg})
	t.Cleanup(stop)
	waitCached(t, p, []*wantCert{revoked, kept}, 10*time.Second)
	srv := httptest.NewServer(ocsp.NewResponder(p, "/ocsp/"))
	t.Cleanup(srv.Close)
	issuer := f.issuerCert(revoked.rec.IssuerID)
	ask := func(w *wantCert) (*xocsp.Response, error) {
		req, err := xocsp.CreateRequest(mustParse(t, w.rec.DER), issuer, &xocsp.RequestOptions{Hash: crypto.SHA1})
		if err != nil {
			t.Fatal(err)
		}
		return xocsp.ParseResponseForCert(httpDo(t, "GET", srv.URL+"/ocsp/"+base64.StdEncoding.EncodeToString(req), nil),
			mustParse(t, w.rec.DER), issuer)
	}
	if r, err := ask(revoked); err != nil || r.Status != xocsp.Good {
		t.Fatalf("before the outage: %v, %v; want good", r, err)
	}

	plugBack := tok.Unplug(t)
	waitUntil(t, "the responder key to fail", func() bool {
		_, err := f.kr.Responders[revoked.rec.IssuerID].Signer.Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
		return errors.Is(err, hsm.ErrUnavailable)
	})
	f.changeStatus(t, ca.Revoked, ca.KeyCompromise, revoked.rec.Serial)
	p.StatusChanged(context.Background(), revoked.rec.Serial) // as the ca role in the same process does
	waitUntil(t, "the revoked certificate's good response to be withdrawn", func() bool {
		r, err := ask(revoked)
		return err != nil || r.Status != xocsp.Good
	})
	if n := counter(t, reg, "jpkica_ocsp_withdrawn_total"); n != 1 {
		t.Errorf("jpkica_ocsp_withdrawn_total = %v, want 1", n)
	}
	for i := range 20 {
		r, err := ask(revoked)
		if !errors.Is(err, xocsp.ResponseError{Status: xocsp.TryLater}) {
			t.Fatalf("answer %d during the outage, after the revocation: %v, %v; want tryLater", i, r, err)
		}
		if r, err := ask(kept); err != nil || r.Status != xocsp.Good {
			t.Fatalf("the unchanged certificate during the outage: %v, %v; want its good response", r, err)
		}
	}
	if n := counter(t, reg, "jpkica_ocsp_withdrawn_answers_total"); n < 20 {
		t.Errorf("jpkica_ocsp_withdrawn_answers_total = %v after 20 tryLater answers", n)
	}

	plugBack()
	waitUntil(t, "the revocation to be signed after the outage", func() bool {
		r, err := ask(revoked)
		if err == nil && r.Status == xocsp.Good {
			t.Fatal("answered good after the revocation")
		}
		return err == nil && r.Status == xocsp.Revoked && r.RevocationReason == int(ca.KeyCompromise)
	})
}

// waitUntil polls cond for up to 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// counter reads an unlabelled counter of reg; 0 when it has none.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
