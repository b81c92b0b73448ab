package responderwatch

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/ocsp"
	"github.com/jpkica/jpkica/store"
)

// start is when the key ceremony runs in these tests.
var start = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

// ceremonyConfig is the embedded defaults' ceremony (responders valid 30
// days), with ECDSA responder keys, which are quicker to make.
func ceremonyConfig(actor string) ceremony.Config {
	return ceremony.Config{IssuerValidity: 10 * 365 * 24 * time.Hour, ResponderValidity: 30 * 24 * time.Hour,
		ResponderAlgorithm: hsm.ECDSAP256, ClientCAValidity: 10 * 365 * 24 * time.Hour, Actor: actor}
}

// TestResponderWatch: 25 days into the 30 of the responders, the ca role's
// watch renews each card issuer's responder (once, however often it
// looks), and the ocsp role's watch, on another node, starts signing with
// the new ones. An issuer generation made after the start is not served
// until a restart, and the watch says so once. After a restart the
// pre-signer also knows the replaced responders, whose stored responses it
// keeps serving.
func TestResponderWatch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "jpkica.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := hsm.OpenSoftware(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	ceremonyDeps := ceremony.Deps{Store: st, Keys: keys, Clock: func() time.Time { return start }, Rand: rand.Reader,
		Logger: slog.New(slog.DiscardHandler)}
	if _, err := ceremony.Run(ctx, ceremonyConfig("admin:init"), ceremonyDeps, false); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	later := func() time.Time { return start.Add(25 * 24 * time.Hour) }
	// A node is what `jpkica serve` builds at its start.
	type node struct {
		keyring *ceremony.Keyring
		ocsp    *ocsp.Presigner
	}
	newNode := func() node {
		t.Helper()
		kr, err := ceremony.Load(ctx, st, keys)
		if err != nil {
			t.Fatal(err)
		}
		issuers, err := Issuers(kr, later())
		if err != nil {
			t.Fatal(err)
		}
		p, err := ocsp.NewPresigner(ocsp.Config{}, ocsp.Deps{Issuers: issuers, Source: st, Clock: later, Rand: rand.Reader,
			Metrics: prometheus.NewRegistry(), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		return node{keyring: kr, ocsp: p}
	}
	newWatch := func(n node, renew, follow bool) *Watch {
		t.Helper()
		deps := Deps{Clock: later, Logger: logger}
		if renew {
			deps.Renewer = Ceremony{Config: ceremonyConfig("system:ca"), Deps: ceremonyDeps, RenewBefore: 10 * 24 * time.Hour}
		}
		if follow {
			deps.Presigner, deps.Keyring, deps.Store, deps.Keys = n.ocsp, n.keyring, st, keys
		}
		w, err := New(Config{}, deps)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	responders := func() int {
		t.Helper()
		rs, err := st.Responders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}
	ocspNode, caNode := newNode(), newNode()
	follow, renew := newWatch(ocspNode, false, true), newWatch(caNode, true, false)
	before, _ := ocspNode.ocsp.ResponderNotAfter("signature-g1")

	follow.check(ctx)
	if got, _ := ocspNode.ocsp.ResponderNotAfter("signature-g1"); !got.Equal(before) || responders() != 2 {
		t.Fatalf("before any renewal: signing with a responder until %v (want %v), %d responders", got, before, responders())
	}
	renew.check(ctx)
	renew.check(ctx)
	if n := responders(); n != 4 {
		t.Fatalf("%d responders after the ca role's checks, want 4 (2 renewed once)", n)
	}
	follow.check(ctx)
	for _, id := range []string{"signature-g1", "authentication-g1"} {
		got, _ := ocspNode.ocsp.ResponderNotAfter(id)
		if !got.After(before.Add(24 * 24 * time.Hour)) {
			t.Errorf("%s: after following, signing with a responder until %v, want one made 25 days after %v", id, got, before)
		}
	}

	if _, err := ceremony.Run(ctx, ceremonyConfig("admin:init"), ceremonyDeps, true); err != nil {
		t.Fatal(err)
	}
	follow.check(ctx)
	follow.check(ctx)
	if n := strings.Count(logs.String(), "not served here"); n != 2 { // signature-g2, authentication-g2
		t.Fatalf("%d warnings of an unserved issuer, want one per new issuer:\n%s", n, logs.String())
	}

	restarted := newNode()
	if got, _ := restarted.ocsp.ResponderNotAfter("signature-g1"); !got.After(before) {
		t.Fatalf("after a restart: signing with a responder until %v", got)
	}
	if n := len(restarted.keyring.Replaced["signature-g1"]); n != 1 {
		t.Fatalf("after a restart: %d replaced responders of signature-g1, want 1", n)
	}
}

// downStore is a store that cannot be reached, counting the attempts.
type downStore struct {
	mu    sync.Mutex
	calls int
	third chan struct{} // closed at the third attempt
}

var errDown = errors.New("connection refused")

func (s *downStore) Responders(context.Context) ([]store.Responder, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls == 3 {
		close(s.third)
	}
	return nil, errDown
}

// noKeys and noPresigner are never reached: the store fails first.
type noKeys struct{}

func (noKeys) Signer(context.Context, string) (crypto.Signer, error) { return nil, hsm.ErrKeyNotFound }

type noPresigner struct{}

func (noPresigner) SetResponder(string, *x509.Certificate, crypto.Signer) error {
	return ocsp.ErrInvalid
}

// TestRunRetriesUntilCancelled: Run checks at once and again at every
// tick, a check that failed too, and returns when its context ends.
func TestRunRetriesUntilCancelled(t *testing.T) {
	st := &downStore{third: make(chan struct{})}
	w, err := New(Config{Every: time.Millisecond}, Deps{Presigner: noPresigner{}, Keyring: &ceremony.Keyring{}, Store: st,
		Keys: noKeys{}, Clock: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		w.Run(ctx)
		close(done)
	}()
	// The bounds only keep a broken loop from hanging the test.
	select {
	case <-st.third:
	case <-time.After(10 * time.Second):
		t.Fatal("no third check")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
}

// TestNewRefuses: a watch with nothing to do, without a clock, or that
// follows without the store, the key store or the keyring is ErrInvalid.
func TestNewRefuses(t *testing.T) {
	follow := Deps{Presigner: noPresigner{}, Keyring: &ceremony.Keyring{}, Store: &downStore{}, Keys: noKeys{}, Clock: time.Now}
	for name, c := range map[string]struct {
		cfg  Config
		deps func(Deps) Deps
	}{
		"nothing to do": {deps: func(d Deps) Deps { d.Presigner = nil; return d }},
		"no clock":      {deps: func(d Deps) Deps { d.Clock = nil; return d }},
		"no store":      {deps: func(d Deps) Deps { d.Store = nil; return d }},
		"no keys":       {deps: func(d Deps) Deps { d.Keys = nil; return d }},
		"no keyring":    {deps: func(d Deps) Deps { d.Keyring = nil; return d }},
		"negative tick": {cfg: Config{Every: -time.Second}, deps: func(d Deps) Deps { return d }},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(c.cfg, c.deps(follow)); !errors.Is(err, ErrInvalid) {
				t.Fatalf("New = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := New(Config{}, follow); err != nil {
		t.Fatalf("a complete follower: %v", err)
	}
}
