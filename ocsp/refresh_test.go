package ocsp_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ocsp"
)

// TestRefresh: responses are re-signed between 1/2 and 3/4 of their
// validity, spread over that window, and dropped once the certificate
// expires.
func TestRefresh(t *testing.T) {
	base := time.Now().Truncate(time.Second)
	clock := newStepClock(base)
	src := newMemSource()
	pki := testPKI()
	const n = 200
	for i := int64(1); i <= n; i++ {
		r, _ := pki.leaf(t, i)
		r.NotAfter = base.Add(24 * time.Hour)
		src.set(r)
	}
	p, stop := runPresigner(t, ocsp.Config{Validity: time.Hour, RefreshInterval: 20 * time.Millisecond},
		ocsp.Deps{Issuers: pki.issuers(), Source: src, Clock: clock.Now, Rand: rand.Reader})
	defer stop()
	waitFor(t, func() bool { return p.Cache().Len() == n })
	produced := func() (fresh int) {
		for i := int64(1); i <= n; i++ {
			r, _ := pki.leaf(t, i)
			it, ok := p.Lookup("test-g1", r.Serial, crypto.SHA1)
			if !ok {
				t.Fatalf("serial %d gone", i)
			}
			if int64(it.ProducedAt) > base.Unix() {
				fresh++
			}
		}
		return fresh
	}
	// Before half the validity nothing is re-signed.
	clock.Set(base.Add(29 * time.Minute))
	time.Sleep(100 * time.Millisecond)
	if got := produced(); got != 0 {
		t.Fatalf("%d re-signed before half the validity", got)
	}
	// Part-way through the window some are, not all (spread by serial).
	clock.Set(base.Add(38 * time.Minute))
	time.Sleep(200 * time.Millisecond)
	waitFor(t, func() bool { return produced() > 0 })
	if got := produced(); got == n {
		t.Fatalf("all %d re-signed at once at 38 min: no spreading", got)
	}
	// After 3/4 of it every one is.
	clock.Set(base.Add(46 * time.Minute))
	waitFor(t, func() bool { return produced() == n })
	// Expired certificates leave the cache.
	clock.Set(base.Add(25 * time.Hour))
	waitFor(t, func() bool { return p.Cache().Len() == 0 })
}

// gatedSigner holds its first signature until gate is closed (entered is
// closed when it starts waiting), and counts the signatures it made.
type gatedSigner struct {
	crypto.Signer
	gate, entered chan struct{}
	held          atomic.Bool
	n             atomic.Int64
}

func (s *gatedSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	if s.held.CompareAndSwap(false, true) {
		close(s.entered)
		<-s.gate
	}
	s.n.Add(1)
	return s.Signer.Sign(r, d, o)
}

// TestNoSecondSignature: a queued job whose certificate was signed on
// demand meanwhile, for a request that came first, is not signed again.
func TestNoSecondSignature(t *testing.T) {
	pki := testPKI()
	src := newMemSource()
	for i := int64(1); i <= 2; i++ {
		r, _ := pki.leaf(t, i)
		src.set(r)
	}
	iss := pki.issuers()
	gs := &gatedSigner{Signer: iss[0].Signer, gate: make(chan struct{}), entered: make(chan struct{})}
	iss[0].Signer = gs
	// One worker: it takes serial 1 and waits in its signature, while
	// serial 2 waits in the queue.
	p, stop := runPresigner(t, ocsp.Config{Workers: 1}, ocsp.Deps{Issuers: iss, Source: src, Clock: time.Now, Rand: rand.Reader})
	defer stop()
	<-gs.entered
	req, err := ocsp.ParseRequest(request(t, 2, crypto.SHA1), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Answer(ctx, &req); err != nil {
		t.Fatal(err)
	}
	close(gs.gate)
	if err := p.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := gs.n.Load(); n != 2 {
		t.Fatalf("%d signatures for 2 certificates", n)
	}
}
