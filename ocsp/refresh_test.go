package ocsp_test

import (
	"crypto"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ocsp"
)

// TestRefresh: responses are re-signed between 1/2 and 3/4 of their
// validity, spread over that window, and dropped once the certificate
// expires.
func TestRefresh(t *testing.T) {
	var now atomic.Int64
	base := time.Now().Truncate(time.Second)
	now.Store(base.Unix())
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	src := newMemSource()
	pki := testPKI()
	const n = 200
	for i := int64(1); i <= n; i++ {
		r, _ := pki.leaf(t, i)
		r.NotAfter = base.Add(24 * time.Hour)
		src.set(r)
	}
	p, stop := runPresigner(t, ocsp.Config{Validity: time.Hour, RefreshInterval: 20 * time.Millisecond},
		ocsp.Deps{Issuers: pki.issuers(), Source: src, Clock: clock, Rand: rand.Reader})
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
	now.Store(base.Add(29 * time.Minute).Unix())
	time.Sleep(100 * time.Millisecond)
	if got := produced(); got != 0 {
		t.Fatalf("%d re-signed before half the validity", got)
	}
	// Part-way through the window some are, not all (spread by serial).
	now.Store(base.Add(38 * time.Minute).Unix())
	time.Sleep(200 * time.Millisecond)
	waitFor(t, func() bool { return produced() > 0 })
	if got := produced(); got == n {
		t.Fatalf("all %d re-signed at once at 38 min: no spreading", got)
	}
	// After 3/4 of it every one is.
	now.Store(base.Add(46 * time.Minute).Unix())
	waitFor(t, func() bool { return produced() == n })
	// Expired certificates leave the cache.
	now.Store(base.Add(25 * time.Hour).Unix())
	waitFor(t, func() bool { return p.Cache().Len() == 0 })
}
