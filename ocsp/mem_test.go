package ocsp_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ocsp"
)

// memSource is an in-memory Source for tests that need no database, and
// for the failures a real store cannot be made to show on cue.
type memSource struct {
	mu   sync.Mutex
	seq  int64
	recs map[ca.Serial]memRec
	log  []memRec    // in seq order; superseded entries are skipped
	down atomic.Bool // every call fails with ca.ErrUnavailable
}

type memRec struct {
	seq int64
	rec ca.Record
}

func newMemSource() *memSource { return &memSource{recs: map[ca.Serial]memRec{}} }

func (m *memSource) set(r ca.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	m.recs[r.Serial] = memRec{seq: m.seq, rec: r}
	m.log = append(m.log, memRec{seq: m.seq, rec: r})
}

func (m *memSource) StatusFeed(ctx context.Context, after int64, fn func(int64, ca.Record) error) error {
	if m.down.Load() {
		return fmt.Errorf("feed: %w", ca.ErrUnavailable)
	}
	m.mu.Lock()
	log := m.log
	i := sort.Search(len(log), func(i int) bool { return log[i].seq > after })
	m.mu.Unlock()
	for _, r := range log[i:] {
		m.mu.Lock()
		current := m.recs[r.rec.Serial].seq == r.seq
		m.mu.Unlock()
		if !current {
			continue
		}
		if err := fn(r.seq, r.rec); err != nil {
			return err
		}
	}
	return nil
}

func (m *memSource) StatusOf(ctx context.Context, sn ca.Serial) (int64, ca.Record, error) {
	if m.down.Load() {
		return 0, ca.Record{}, fmt.Errorf("status: %w", ca.ErrUnavailable)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[sn]
	if !ok {
		return 0, ca.Record{}, fmt.Errorf("status of %s: %w", sn, ca.ErrNotFound)
	}
	return r.seq, r.rec, nil
}

func (m *memSource) NewestChange(context.Context) (int64, ca.Serial, error) {
	if m.down.Load() {
		return 0, ca.Serial{}, fmt.Errorf("newest: %w", ca.ErrUnavailable)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.log) == 0 {
		return 0, ca.Serial{}, nil
	}
	last := m.log[len(m.log)-1]
	return last.seq, last.rec.Serial, nil
}

// stepClock is a clock that a test moves by hand, in whole seconds.
type stepClock struct{ unix atomic.Int64 }

func newStepClock(t time.Time) *stepClock {
	c := &stepClock{}
	c.Set(t)
	return c
}

func (c *stepClock) Now() time.Time  { return time.Unix(c.unix.Load(), 0) }
func (c *stepClock) Set(t time.Time) { c.unix.Store(t.Unix()) }

// flakySigner fails while fail is set.
type flakySigner struct {
	crypto.Signer
	fail  atomic.Bool
	count atomic.Int64
}

var errSignerDown = errors.New("signer down")

func (s *flakySigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	if s.fail.Load() {
		return nil, errSignerDown
	}
	s.count.Add(1)
	return s.Signer.Sign(r, d, o)
}

// memPKI is an ECDSA issuer with a delegated responder, made in memory.
type memPKI struct {
	issuer, responder *x509.Certificate
	signer            *flakySigner
	issuerKey         crypto.Signer
}

var testPKI = sync.OnceValue(func() memPKI {
	rk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return newPKI(rk)
})

// newPKI makes an issuer and a delegated responder with key rk.
func newPKI(rk crypto.Signer) memPKI {
	ik, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	it := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Country: []string{"JP"}, CommonName: "Test issuer"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, it, it, &ik.PublicKey, ik)
	if err != nil {
		panic(err)
	}
	iss, _ := x509.ParseCertificate(der)
	rt := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{Country: []string{"JP"}, CommonName: "Test responder"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}}
	der, err = x509.CreateCertificate(rand.Reader, rt, iss, rk.Public(), ik)
	if err != nil {
		panic(err)
	}
	resp, _ := x509.ParseCertificate(der)
	return memPKI{issuer: iss, responder: resp, signer: &flakySigner{Signer: rk}, issuerKey: ik}
}

// newResponder makes another delegated responder of m's issuer, valid
// until notAfter, with a key of its own.
func (m memPKI) newResponder(t testing.TB, serial int64, notAfter time.Time) (*x509.Certificate, *flakySigner) {
	t.Helper()
	rk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rt := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{Country: []string{"JP"}, CommonName: "Test responder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}}
	der, err := x509.CreateCertificate(rand.Reader, rt, m.issuer, rk.Public(), m.issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, der), &flakySigner{Signer: rk}
}

func (m memPKI) issuers() []ocsp.IssuerConfig {
	return []ocsp.IssuerConfig{{ID: "test-g1", Cert: m.issuer, Signer: m.signer, ResponderCert: m.responder}}
}

// leaf makes a certificate record of the test issuer (DER is a real
// certificate so that x/crypto can build requests for it).
func (m memPKI) leaf(t testing.TB, serial int64) (ca.Record, *x509.Certificate) {
	t.Helper()
	return ca.Record{Serial: ca.SerialFromBig(big.NewInt(serial)), IssuerID: "test-g1", Status: ca.Good,
			NotAfter: time.Now().AddDate(1, 0, 0)},
		&x509.Certificate{SerialNumber: big.NewInt(serial), RawIssuer: m.issuer.RawSubject}
}

var (
	timeNow    = time.Now
	randReader = rand.Reader
)
