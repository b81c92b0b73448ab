package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

// finalizeUnderneath calls the module's C_Finalize behind the pool's back,
// as if the module had lost all its state: every session and object handle
// the pool holds becomes invalid, and the pool is not told. It waits for
// signatures in flight first, because C_Finalize while other threads are in
// the module is undefined behaviour (and crashes SoftHSM).
func finalizeUnderneath(t *testing.T, k *PKCS11) {
	t.Helper()
	p := k.pool
	deadline := time.After(10 * time.Second)
	p.mu.Lock()
	for p.state != stateUp || p.inflight > 0 {
		if p.state == stateUp {
			// Hold new callers back, as the recovery goroutine does.
			p.state = stateRecovering
			p.broadcastLocked()
			defer func() {
				p.mu.Lock()
				p.state = stateUp
				p.broadcastLocked()
				p.mu.Unlock()
			}()
			break
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("pool never came up to be broken")
		}
		p.mu.Lock()
	}
	for p.inflight > 0 {
		ch := p.changed
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	if err := p.mod.Finalize(); err != nil {
		t.Errorf("C_Finalize: %v", err)
	}
	p.mu.Unlock()
}

// signLoop signs in a loop on each signer until stop is closed, with a
// deadline on every call, and sorts the outcomes.
type signLoop struct {
	ok, unavailable atomic.Int64
	okAfter         atomic.Int64 // successes since mark was last called
	mu              sync.Mutex
	other           []error
	wg              sync.WaitGroup
	stop            chan struct{}
}

func startSigning(t *testing.T, signers []crypto.Signer, perSigner int, deadline time.Duration) *signLoop {
	t.Helper()
	sl := &signLoop{stop: make(chan struct{})}
	for g := range perSigner * len(signers) {
		s := signers[g%len(signers)].(Signer)
		sl.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-sl.stop:
					return
				default:
				}
				d := digest256(fmt.Sprintf("g%d i%d", g, i))
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				done := make(chan struct{})
				var sig []byte
				var err error
				go func() {
					defer close(done)
					sig, err = s.SignContext(ctx, d, crypto.SHA256)
				}()
				select {
				case <-done:
				case <-time.After(deadline + 5*time.Second):
					t.Errorf("SignContext did not return within its %v deadline (+5s): hung", deadline)
					<-done
				}
				cancel()
				switch {
				case err == nil:
					if verr := checkSig(s.Public(), d, sig); verr != nil {
						sl.record(verr)
					}
					sl.ok.Add(1)
					sl.okAfter.Add(1)
				case errors.Is(err, ErrUnavailable):
					sl.unavailable.Add(1)
					time.Sleep(5 * time.Millisecond)
				default:
					sl.record(err)
				}
			}
		})
	}
	return sl
}

func (sl *signLoop) record(err error) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	sl.other = append(sl.other, err)
}

// finish stops the loop and reports errors that were neither success nor ErrUnavailable.
func (sl *signLoop) finish(t *testing.T) {
	t.Helper()
	close(sl.stop)
	sl.wg.Wait()
	for _, err := range sl.other {
		t.Errorf("signature failed with an error other than ErrUnavailable: %v", err)
	}
}

func checkSig(pub crypto.PublicKey, d, sig []byte) error {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, d, sig) {
			return errors.New("bad ECDSA signature")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d, sig)
	}
	return fmt.Errorf("public key %T", pub)
}

// waitFor polls cond until it holds or 15 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 15*time.Second; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func generatePair(t *testing.T, k *PKCS11) []crypto.Signer {
	t.Helper()
	var out []crypto.Signer
	for _, alg := range []Algorithm{RSA2048, ECDSAP256} {
		s, err := k.GenerateKey(context.Background(), GenerateKeyRequest{Label: "recover-" + alg.String(), Algorithm: alg})
		if err != nil {
			t.Fatalf("GenerateKey: %v", err)
		}
		out = append(out, s)
	}
	return out
}

// TestPKCS11RecoversFromModuleFinalize: the module loses its state under
// running signers; the pool notices (CKR_CRYPTOKI_NOT_INITIALIZED),
// re-initialises, logs in, finds the keys again, and the same signers go on.
func TestPKCS11RecoversFromModuleFinalize(t *testing.T) {
	for _, path := range signPaths {
		t.Run(path.name, func(t *testing.T) { testRecoversFromModuleFinalize(t, path.offload) })
	}
}

func testRecoversFromModuleFinalize(t *testing.T, offload bool) {
	k, _ := openToken(t, func(c *PKCS11Config) {
		c.MaxSessions = 2
		c.MaxReinitBackoff = 200 * time.Millisecond
	})
	pinPath(k, offload)
	signers := generatePair(t, k)
	sl := startSigning(t, signers, 3, time.Second)

	for round := 1; round <= 3; round++ {
		before := k.pool.reinits.Load()
		sl.okAfter.Store(0)
		waitFor(t, "signatures before breaking", func() bool { return sl.okAfter.Load() >= 10 })
		finalizeUnderneath(t, k)
		waitFor(t, "re-initialisation", func() bool { return k.pool.reinits.Load() > before })
		sl.okAfter.Store(0)
		waitFor(t, "signatures after re-initialisation", func() bool { return sl.okAfter.Load() >= 10 })
	}
	sl.finish(t)
	t.Logf("ok=%d unavailable=%d reinits=%d", sl.ok.Load(), sl.unavailable.Load(), k.pool.reinits.Load())
	if n := pathCount(k, !offload); n != 0 {
		t.Errorf("%d signatures went the other way", n)
	}
	// A module that comes straight back costs callers nothing: the failed
	// attempt is retried after the re-initialisation, within the deadline.
	if n := sl.unavailable.Load(); n != 0 {
		t.Errorf("%d signatures failed with ErrUnavailable across a module restart, want 0", n)
	}
	if err := k.Ping(context.Background()); err != nil {
		t.Errorf("Ping after recovery: %v", err)
	}
}

// TestPKCS11RecoversFromTokenOutage: the token disappears under running
// signers (its directory moved out of SoftHSM's token directory). While it
// is gone, every signature and Ping fails with ErrUnavailable within its
// deadline; once it is back, the same *PKCS11 and the same signers work
// again without reopening.
func TestPKCS11RecoversFromTokenOutage(t *testing.T) {
	k, tk := openToken(t, func(c *PKCS11Config) {
		c.MaxSessions = 2
		c.MaxReinitBackoff = 200 * time.Millisecond
	})
	signers := generatePair(t, k)
	sl := startSigning(t, signers, 3, 500*time.Millisecond)
	waitFor(t, "signatures before the outage", func() bool { return sl.ok.Load() >= 10 })

	plugBack := tk.Unplug(t)
	waitFor(t, "signatures to fail with ErrUnavailable", func() bool { return sl.unavailable.Load() >= 200 })
	// One goroutine re-initialises, with backoff: the failing callers do
	// not each hammer the module.
	if a, u := k.pool.attempts.Load(), sl.unavailable.Load(); a*10 > u {
		t.Errorf("%d re-initialisation attempts for %d failed signatures: callers are driving re-initialisation", a, u)
	}
	pctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	if err := k.Ping(pctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping during the outage: got %v, want ErrUnavailable", err)
	}
	cancel()
	if k.Stats().LoginRefused {
		t.Error("Stats().LoginRefused during an outage: only a refused PIN sets it")
	}
	for _, s := range signers {
		if _, err := s.Sign(nil, digest256("during outage"), crypto.SHA256); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Sign during the outage: got %v, want ErrUnavailable", err)
		}
	}
	// Between re-initialisation attempts, an error says when the next one
	// starts, never later than the backoff's cap.
	waitFor(t, "an error that knows when the next attempt starts", func() bool {
		_, err := signers[0].Sign(nil, digest256("down"), crypto.SHA256)
		d, ok := RetryAfter(err)
		if ok && (d < 0 || d > 200*time.Millisecond) {
			t.Errorf("RetryAfter = %v, want 0 to the 200ms cap", d)
		}
		return ok
	})
	if _, ok := RetryAfter(fmt.Errorf("wrapped: %w", ErrUnavailable)); ok {
		t.Error("RetryAfter knows a time for a bare ErrUnavailable")
	}

	plugBack()
	sl.okAfter.Store(0)
	waitFor(t, "signatures after the token came back", func() bool { return sl.okAfter.Load() >= 20 })
	sl.finish(t)
	t.Logf("ok=%d unavailable=%d reinits=%d attempts=%d", sl.ok.Load(), sl.unavailable.Load(), k.pool.reinits.Load(), k.pool.attempts.Load())

	for _, s := range signers {
		d := digest256("after outage")
		sig, err := s.Sign(nil, d, crypto.SHA256)
		if err != nil {
			t.Fatalf("Sign after the outage: %v", err)
		}
		if err := checkSig(s.Public(), d, sig); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.Ping(context.Background()); err != nil {
		t.Errorf("Ping after the outage: %v", err)
	}
}

// TestPKCS11StaleSessionRetried: a session closed behind the pool's back
// (CKR_SESSION_HANDLE_INVALID) costs the caller nothing: the signature is
// retried once on a fresh session.
func TestPKCS11StaleSessionRetried(t *testing.T) {
	for _, path := range signPaths {
		t.Run(path.name, func(t *testing.T) { testStaleSessionRetried(t, path.offload) })
	}
}

func testStaleSessionRetried(t *testing.T, offload bool) {
	k, _ := openToken(t, func(c *PKCS11Config) { c.MaxSessions = 1 })
	pinPath(k, offload)
	s := generatePair(t, k)[1]
	k.pool.mu.Lock()
	idle := append([]pkcs11.SessionHandle(nil), k.pool.idle...)
	k.pool.mu.Unlock()
	if len(idle) != 1 {
		t.Fatalf("want 1 idle session, have %d", len(idle))
	}
	// Close the idle session directly; the pool still thinks it is good.
	// Another session keeps the login alive.
	other, err := k.pool.mod.OpenSession(k.pool.slot, sessionFlags)
	if err != nil {
		t.Fatalf("OpenSession: %v", err)
	}
	if err := k.pool.mod.CloseSession(idle[0]); err != nil {
		t.Fatalf("CloseSession: %v", err)
	}
	d := digest256("stale session")
	sig, err := s.Sign(nil, d, crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign on a stale session: %v", err)
	}
	if err := checkSig(s.Public(), d, sig); err != nil {
		t.Fatal(err)
	}
	_ = k.pool.mod.CloseSession(other)
	if n := pathCount(k, offload); n != 2 {
		t.Errorf("%d signatures made the pinned way, want 2 (the stale session's and the retry)", n)
	}
	if n := k.pool.reinits.Load(); n != 0 {
		t.Errorf("a stale session caused %d module re-initialisations, want 0", n)
	}
}

// TestPKCS11StopsOnRefusedPIN: if the token that comes back refuses the PIN
// (here: a new token with the same label and another PIN), recovery stops
// instead of trying again and again, which would lock a real token's PIN.
func TestPKCS11StopsOnRefusedPIN(t *testing.T) {
	k, tk := openToken(t, func(c *PKCS11Config) { c.MaxReinitBackoff = 100 * time.Millisecond })
	s := generatePair(t, k)[1]
	if k.Stats().LoginRefused {
		t.Fatal("Stats().LoginRefused before anything went wrong")
	}
	tk.Unplug(t)
	tk.InitToken(t, tk.Label, "another-pin-0000")
	d := digest256("refused")
	waitFor(t, "the pool to give up", func() bool {
		_, err := s.Sign(nil, d, crypto.SHA256)
		return errors.Is(err, ErrLogin)
	})
	_, err := s.Sign(nil, d, crypto.SHA256)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrLogin) {
		t.Fatalf("Sign: got %v, want ErrUnavailable and ErrLogin", err)
	}
	if strings.Contains(err.Error(), tk.PIN) {
		t.Fatalf("error contains the PIN")
	}
	// Nothing tells the caller to come back later: no retry can succeed.
	if d, ok := RetryAfter(err); ok {
		t.Errorf("RetryAfter = %v for a refused PIN, want none", d)
	}
	if !k.Stats().LoginRefused {
		t.Error("Stats().LoginRefused is false after the token refused the PIN")
	}
	if err := k.Ping(context.Background()); !errors.Is(err, ErrLogin) {
		t.Errorf("Ping: got %v, want ErrLogin", err)
	}
	attempts := k.pool.attempts.Load()
	for range 20 {
		if _, err := s.Sign(nil, d, crypto.SHA256); !errors.Is(err, ErrLogin) {
			t.Fatalf("Sign: got %v, want ErrLogin", err)
		}
	}
	time.Sleep(300 * time.Millisecond) // three maximum backoffs: no attempt may happen
	if n := k.pool.attempts.Load(); n != attempts {
		t.Fatalf("re-initialisation went on after the PIN was refused: %d attempts, then %d", attempts, n)
	}
}

// TestPKCS11FlappingModuleBacksOff: when the module fails again before any
// operation has succeeded since the last re-initialisation, recovery waits
// out its backoff before the first attempt (callers fail fast meanwhile)
// instead of re-initialising at once. A healthy module's first failure is
// retried at once (TestPKCS11RecoversFromModuleFinalize sees no failures).
func TestPKCS11FlappingModuleBacksOff(t *testing.T) {
	k, _ := openToken(t, nil)
	p := k.pool
	before := p.reinits.Load()
	p.mu.Lock()
	p.okSinceReinit = false     // as if the last re-initialisation had not been followed by any success
	p.backoff = 2 * time.Second // long enough that the Ping below surely comes first
	p.breakLocked(pkcs11.Error(pkcs11.CKR_DEVICE_ERROR))
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := k.Ping(ctx); !errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping during backoff: got %v, want ErrUnavailable at once", err)
	}
	if n := p.attempts.Load(); n != 0 {
		t.Fatalf("%d re-initialisation attempts before the backoff ran out, want 0", n)
	}
	waitFor(t, "re-initialisation after the backoff", func() bool { return p.reinits.Load() > before })
	if err := k.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after re-initialisation: %v", err)
	}
}
