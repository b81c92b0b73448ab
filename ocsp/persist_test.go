package ocsp_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/ocsp"
)

// countingSigner counts signatures.
type countingSigner struct {
	crypto.Signer
	n *atomic.Int64
}

func (s countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	s.n.Add(1)
	return s.Signer.Sign(r, d, o)
}

// TestPersistedWarm: responses are kept in the store; a restarted responder
// serves them without signing, except those whose status changed while it
// was down.
func TestPersistedWarm(t *testing.T) {
	f := newFixture(t, "", hsm.ECDSAP256)
	certs := issueSet(t, f)
	run := func(signs *atomic.Int64) (*ocsp.Presigner, func()) {
		iss := f.issuers()
		for i := range iss {
			iss[i].Signer = countingSigner{Signer: iss[i].Signer, n: signs}
		}
		return runPresigner(t, ocsp.Config{}, ocsp.Deps{Issuers: iss, Source: f.st, Responses: f.st,
			Clock: time.Now, Rand: rand.Reader})
	}
	var first atomic.Int64
	p1, stop1 := run(&first)
	waitCached(t, p1, certs, 10*time.Second)
	// Every response reaches the store.
	waitFor(t, func() bool {
		for _, w := range certs {
			if _, _, err := f.st.OCSP(context.Background(), w.rec.Serial, w.rec.AKI); err != nil {
				return false
			}
		}
		return true
	})
	stop1()
	if first.Load() < int64(len(certs)) {
		t.Fatalf("first start signed %d responses for %d certificates", first.Load(), len(certs))
	}
	// While it is down, one good certificate is revoked.
	var changed *wantCert
	for _, w := range certs {
		if w.status == ca.Good {
			changed = w
			break
		}
	}
	f.changeStatus(t, ca.Revoked, ca.KeyCompromise, changed.rec.Serial)
	changed.status, changed.reason = ca.Revoked, ca.KeyCompromise

	var second atomic.Int64
	p2, stop2 := run(&second)
	defer stop2()
	<-p2.Warmed()
	waitCached(t, p2, certs, 10*time.Second)
	if got := second.Load(); got != 1 {
		t.Fatalf("restart signed %d responses, want 1 (the revoked one)", got)
	}
	it, _ := p2.Lookup(changed.rec.IssuerID, changed.rec.Serial, crypto.SHA1)
	if it.Status != ocsp.StatusRevoked || ca.Reason(it.Reason) != ca.KeyCompromise {
		t.Fatalf("changed certificate: %v %d", it.Status, it.Reason)
	}
}

// refusingStore refuses every batch that holds one serial.
type refusingStore struct {
	ocsp.ResponseStore
	refuse ca.Serial
}

func (s *refusingStore) UpsertOCSP(ctx context.Context, rs ...ca.OCSPResponse) error {
	for _, r := range rs {
		if r.Serial == s.refuse {
			return errors.New("refused")
		}
	}
	return s.ResponseStore.UpsertOCSP(ctx, rs...)
}

// TestPersistRefusalLosesOnlyItself: responses are stored in batches; a
// batch the store refuses is stored response by response, so only the
// refused one is missing.
func TestPersistRefusalLosesOnlyItself(t *testing.T) {
	f := newFixture(t, "", hsm.ECDSAP256)
	certs := issueSet(t, f)
	rs := &refusingStore{ResponseStore: f.st, refuse: certs[0].rec.Serial}
	p, stop := runPresigner(t, ocsp.Config{}, ocsp.Deps{Issuers: f.issuers(), Source: f.st, Responses: rs,
		Clock: time.Now, Rand: rand.Reader})
	defer stop()
	ctx := context.Background()
	if err := p.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for i, w := range certs {
		_, _, err := f.st.OCSP(ctx, w.rec.Serial, w.rec.AKI)
		if i == 0 {
			if !errors.Is(err, ca.ErrNotFound) {
				t.Errorf("the refused response: err = %v, want ErrNotFound", err)
			}
		} else if err != nil {
			t.Errorf("certificate %d: %v", i, err)
		}
	}
}

// gatedStore holds the first UpsertOCSP until gate is closed, and records
// how many responses each call carried.
type gatedStore struct {
	ocsp.ResponseStore
	gate  chan struct{}
	mu    sync.Mutex
	sizes []int
}

func (s *gatedStore) UpsertOCSP(ctx context.Context, rs ...ca.OCSPResponse) error {
	s.mu.Lock()
	first := len(s.sizes) == 0
	s.sizes = append(s.sizes, len(rs))
	s.mu.Unlock()
	if first {
		<-s.gate
	}
	return s.ResponseStore.UpsertOCSP(ctx, rs...)
}

// TestPersistBatches: the responses queued while a write is in progress go
// to the store together, in one call.
func TestPersistBatches(t *testing.T) {
	f := newFixture(t, "", hsm.ECDSAP256)
	certs := issueSet(t, f)
	gs := &gatedStore{ResponseStore: f.st, gate: make(chan struct{})}
	p, stop := runPresigner(t, ocsp.Config{}, ocsp.Deps{Issuers: f.issuers(), Source: f.st, Responses: gs,
		Clock: time.Now, Rand: rand.Reader})
	defer stop()
	// Every response signed (and queued) while the first write waits.
	waitCached(t, p, certs, 10*time.Second)
	close(gs.gate)
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	// The one or two responses between cache and queue when the gate
	// opened may come in a call of their own.
	total, largest := 0, 0
	for _, n := range gs.sizes {
		total += n
		largest = max(largest, n)
	}
	if total != len(certs) || largest < len(certs)/2 {
		t.Fatalf("%d responses in calls of %v; want %d, most of them in one call", total, gs.sizes, len(certs))
	}
}
