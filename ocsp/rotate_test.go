package ocsp_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/ocsp"
)

// TestSetResponder: after a responder is renewed, new signatures are the
// new responder's and carry its certificate, while the responses the old
// one signed are still served with the old certificate (each verifies, in
// x/crypto, against the certificate it comes with) until the usual refresh
// re-signs them all. A responder the issuer did not certify, or whose key
// is not the signer's, is refused and changes nothing.
func TestSetResponder(t *testing.T) {
	base := time.Now().Truncate(time.Second)
	clock := newStepClock(base)
	src := newMemSource()
	rk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pki := newPKI(rk)
	const n = 20
	for i := int64(1); i <= n; i++ {
		r, _ := pki.leaf(t, i)
		src.set(r)
	}
	p, stop := runPresigner(t, ocsp.Config{Validity: time.Hour, RefreshInterval: 20 * time.Millisecond},
		ocsp.Deps{Issuers: pki.issuers(), Source: src, Clock: clock.Now, Rand: rand.Reader})
	defer stop()
	waitFor(t, func() bool { return p.Cache().Len() == n })

	// signedBy answers serial and returns the serial of the responder
	// certificate the response carries, after x/crypto has checked the
	// signature against it.
	signedBy := func(serial int64) int64 {
		t.Helper()
		_, cert := pki.leaf(t, serial)
		resp, err := xocsp.ParseResponseForCert(answerDER(t, p, pki.request(t, serial, crypto.SHA1)), cert, pki.issuer)
		if err != nil {
			t.Fatalf("serial %d: %v", serial, err)
		}
		return resp.Certificate.SerialNumber.Int64()
	}
	// openSSLVerifies has OpenSSL check serial's response too.
	dir := t.TempDir()
	issPath := filepath.Join(dir, "issuer.pem")
	writePEM(t, issPath, pki.issuer.Raw)
	openSSLVerifies := func(serial int64) {
		t.Helper()
		respPath := filepath.Join(dir, fmt.Sprintf("%d.der", serial))
		if err := os.WriteFile(respPath, answerDER(t, p, pki.request(t, serial, crypto.SHA1)), 0o600); err != nil {
			t.Fatal(err)
		}
		out := openSSL(t, "-respin", respPath, "-issuer", issPath, "-CAfile", issPath, "-serial", fmt.Sprint(serial), "-no_nonce")
		mustContain(t, out, fmt.Sprintf("%d: ", serial))
	}
	oldSerial := pki.responder.SerialNumber.Int64()
	if got := signedBy(1); got != oldSerial {
		t.Fatalf("before renewal: signed by responder %d", got)
	}

	next, nextKey := pki.newResponder(t, 3, base.AddDate(0, 2, 0))
	stranger, strangerKey := newPKI(nextKey.Signer).newResponder(t, 4, base.AddDate(0, 2, 0))
	for name, c := range map[string]struct {
		issuer string
		cert   *x509.Certificate
		key    crypto.Signer
	}{
		"unknown issuer":            {"test-g9", next, nextKey},
		"not certified by it":       {"test-g1", stranger, strangerKey},
		"key not the certificate's": {"test-g1", next, strangerKey},
		"no certificate":            {"test-g1", nil, nextKey},
		"no signer":                 {"test-g1", next, nil},
	} {
		if err := p.SetResponder(c.issuer, c.cert, c.key); !errors.Is(err, ocsp.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if na, _ := p.ResponderNotAfter("test-g1"); !na.Equal(pki.responder.NotAfter) {
		t.Fatalf("after refused renewals, the responder expires %v, want the old one's %v", na, pki.responder.NotAfter)
	}

	if err := p.SetResponder("test-g1", next, nextKey); err != nil {
		t.Fatal(err)
	}
	if err := p.SetResponder("test-g1", next, nextKey); err != nil { // again: nothing changes
		t.Fatal(err)
	}
	if na, _ := p.ResponderNotAfter("test-g1"); !na.Equal(next.NotAfter) {
		t.Fatalf("the responder expires %v, want the new one's %v", na, next.NotAfter)
	}
	// The cached responses are the old responder's, served with its
	// certificate.
	for i := int64(1); i <= n; i++ {
		if got := signedBy(i); got != oldSerial {
			t.Fatalf("cached response %d right after renewal: signed by responder %d, want %d", i, got, oldSerial)
		}
	}
	openSSLVerifies(1) // the old responder's, with its certificate
	// A status change is signed at once, by the new responder.
	r, _ := pki.leaf(t, 7)
	r.Status, r.Reason, r.RevokedAt = ca.Revoked, ca.KeyCompromise, base
	src.set(r)
	p.StatusChanged(context.Background(), r.Serial)
	waitFor(t, func() bool { return signedBy(7) == 3 })
	if c := nextKey.count.Load(); c == 0 {
		t.Fatal("the new responder's key has signed nothing")
	}
	openSSLVerifies(7)
	// The refresh (from half to three quarters of the validity) re-signs
	// the rest with the new responder.
	clock.Set(base.Add(46 * time.Minute))
	waitFor(t, func() bool {
		for i := int64(1); i <= n; i++ {
			if signedBy(i) != 3 {
				return false
			}
		}
		return true
	})
}

// TestPersistedAcrossRenewal: a responder restarted after its responders
// were renewed keeps serving the responses the replaced ones signed and
// stored (IssuerConfig.Replaced), each with its signer's certificate,
// instead of signing every one of them again at start; without the
// replaced certificates it would.
func TestPersistedAcrossRenewal(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "", hsm.ECDSAP256)
	certs := issueSet(t, f)
	run := func(iss []ocsp.IssuerConfig, signs *atomic.Int64) (*ocsp.Presigner, func()) {
		for i := range iss {
			iss[i].Signer = countingSigner{Signer: iss[i].Signer, n: signs}
		}
		return runPresigner(t, ocsp.Config{}, ocsp.Deps{Issuers: iss, Source: f.st, Responses: f.st, Clock: time.Now, Rand: rand.Reader})
	}
	var first atomic.Int64
	p1, stop1 := run(f.issuers(), &first)
	waitCached(t, p1, certs, 10*time.Second)
	if err := p1.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	stop1()

	renewed, err := ceremony.RenewResponders(ctx, ceremony.Config{IssuerValidity: time.Hour, ClientCAValidity: time.Hour,
		ResponderValidity: 400 * 24 * time.Hour, ResponderAlgorithm: hsm.ECDSAP256, Actor: "system:test"},
		ceremony.Deps{Store: f.st, Keys: f.keys, Clock: time.Now, Rand: rand.Reader, Logger: slog.New(slog.DiscardHandler)},
		399*24*time.Hour)
	if err != nil || len(renewed) != len(f.kr.Issuers) {
		t.Fatalf("renewed %d responders (%v), want %d", len(renewed), err, len(f.kr.Issuers))
	}
	kr, err := ceremony.Load(ctx, f.st, f.keys)
	if err != nil {
		t.Fatal(err)
	}
	restart := func(withReplaced bool) (*ocsp.Presigner, int64) {
		var iss []ocsp.IssuerConfig
		for _, ik := range kr.Issuers {
			r := kr.Responders[ik.Issuer.ID]
			ic := ocsp.IssuerConfig{ID: ik.Issuer.ID, Cert: ik.Cert, Signer: r.Signer, ResponderCert: r.Cert}
			if withReplaced {
				ic.Replaced = kr.Replaced[ik.Issuer.ID]
			}
			iss = append(iss, ic)
		}
		var signs atomic.Int64
		p, stop := run(iss, &signs)
		t.Cleanup(stop)
		<-p.Warmed()
		waitCached(t, p, certs, 10*time.Second)
		return p, signs.Load()
	}
	p, signs := restart(true)
	if signs != 0 {
		t.Fatalf("restart with the replaced responders signed %d responses, want 0", signs)
	}
	for _, w := range certs {
		issuer := f.issuerCert(w.rec.IssuerID)
		req, err := xocsp.CreateRequest(mustParse(t, w.rec.DER), issuer, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := xocsp.ParseResponseForCert(answerDER(t, p, req), mustParse(t, w.rec.DER), issuer)
		if err != nil {
			t.Fatalf("%s: %v", w.rec.Serial.Hex(), err)
		}
		if old := f.kr.Responders[w.rec.IssuerID].Cert; !resp.Certificate.Equal(old) {
			t.Fatalf("%s: served with responder %x, want the replaced %x", w.rec.Serial.Hex(),
				resp.Certificate.SerialNumber, old.SerialNumber)
		}
	}
	if _, signs := restart(false); signs < int64(len(certs)) {
		t.Fatalf("restart without the replaced responders signed %d responses for %d certificates", signs, len(certs))
	}
}

// answerDER is p's DER answer to the DER request req.
func answerDER(t testing.TB, p *ocsp.Presigner, req []byte) []byte {
	t.Helper()
	parsed, err := ocsp.ParseRequest(req, 1)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := p.Answer(context.Background(), &parsed)
	if err != nil {
		t.Fatal(err)
	}
	return ans.AppendDER(nil)
}

// memAudit keeps the audit entries it is given.
type memAudit struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (m *memAudit) AppendAudit(_ context.Context, e audit.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, e)
	return nil
}

// signers is the responders named by the "ocsp.sign" entries so far.
func (m *memAudit) signers(t testing.TB) map[string]bool {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, e := range m.entries {
		var d struct {
			Signer string `json:"signer"`
		}
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			t.Fatal(err)
		}
		out[d.Signer] = true
	}
	return out
}

// TestReplacedResponderAudit: after a renewal, the audit log counts the
// signatures of each responder under its own name, and the replaced
// responder is dropped once it has expired and its count is written.
func TestReplacedResponderAudit(t *testing.T) {
	base := time.Now().Truncate(time.Second)
	clock := newStepClock(base)
	rk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pki := newPKI(rk)
	short, shortKey := pki.newResponder(t, 5, base.Add(2*time.Hour))
	next, nextKey := pki.newResponder(t, 6, base.AddDate(0, 2, 0))
	src := newMemSource()
	for i := int64(1); i <= 5; i++ {
		r, _ := pki.leaf(t, i)
		src.set(r)
	}
	log := &memAudit{}
	p, stop := runPresigner(t, ocsp.Config{Validity: time.Hour, RefreshInterval: 20 * time.Millisecond, AuditInterval: 20 * time.Millisecond},
		ocsp.Deps{Issuers: []ocsp.IssuerConfig{{ID: "test-g1", Cert: pki.issuer, Signer: shortKey, ResponderCert: short}},
			Source: src, Audit: log, Clock: clock.Now, Rand: rand.Reader})
	defer stop()
	waitFor(t, func() bool { return p.Cache().Len() == 5 })
	if err := p.SetResponder("test-g1", next, nextKey); err != nil {
		t.Fatal(err)
	}
	r, _ := pki.leaf(t, 2)
	r.Status, r.Reason, r.RevokedAt = ca.Revoked, ca.KeyCompromise, base
	src.set(r)
	p.StatusChanged(context.Background(), r.Serial)
	waitFor(t, func() bool {
		s := log.signers(t)
		return s["delegated responder 5"] && s["delegated responder 6"]
	})
	if n := ocsp.ResponderKeys(p, "test-g1"); n != 2 {
		t.Fatalf("%d responder keys before the replaced one expired, want 2", n)
	}
	clock.Set(base.Add(3 * time.Hour))
	waitFor(t, func() bool { return ocsp.ResponderKeys(p, "test-g1") == 1 })
}
