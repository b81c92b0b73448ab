package hsm

import (
	"context"
	"crypto"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/jpkica/jpkica/internal/softhsmtest"
)

// TestSaturated: with a P to spare, a signature is made directly; with
// every P running Go code, it goes to a thread. The scheduler's counts
// move with whatever else the runtime runs (the GC's workers, say), so
// each state is waited for, not sampled once.
func TestSaturated(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	waitFor(t, "saturated() false on an idle runtime", func() bool { return !saturated() })

	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for !stop.Load() {
			}
		})
	}
	waitFor(t, "saturated() true with every P busy", saturated)
	stop.Store(true)
	wg.Wait()
	waitFor(t, "saturated() false once the Ps are free again", func() bool { return !saturated() })
}

// TestSignThreadsNotAModule: a library that is not a PKCS #11 module, or
// no library at all, is refused with ErrUnavailable, and nothing leaks.
func TestSignThreadsNotAModule(t *testing.T) {
	for _, path := range []string{"/nonexistent/libnothing.so", "libm.so.6"} {
		if _, err := startSignThreads(path, 2); !errors.Is(err, ErrUnavailable) {
			t.Errorf("startSignThreads(%q): got %v, want ErrUnavailable", path, err)
		}
	}
}

// TestSignThreadsStartStop: stop ends and joins every thread that start
// made; starting and stopping again and again leaves none behind.
func TestSignThreadsStartStop(t *testing.T) {
	tk := softhsmtest.New(t)
	before := threadCount(t)
	for range 5 {
		st, err := startSignThreads(tk.Module, 8)
		if err != nil {
			t.Fatal(err)
		}
		if n := threadCount(t); n < before+8 {
			t.Fatalf("%d threads running after starting 8, from %d", n, before)
		}
		// The signing goroutine waits in the network poller, holding no
		// P: only a pollable file takes a deadline.
		if err := st.all[0].done.SetReadDeadline(time.Time{}); err != nil {
			t.Fatalf("the done pipe is not in the network poller: %v", err)
		}
		st.stop()
	}
	// The Go runtime may have started a thread or two of its own meanwhile;
	// 40 would be left had stop not ended them.
	if n := threadCount(t); n > before+4 {
		t.Errorf("%d threads left after 5 starts and stops of 8, from %d", n, before)
	}
}

// threadCount is the number of threads of this process.
func threadCount(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("counting threads needs Linux's /proc: %v", err)
	}
	return len(es)
}

// TestPKCS11Stats: the counters follow what the store did: signatures by
// the way they were made, a failed one, and the sessions open and lent.
func TestPKCS11Stats(t *testing.T) {
	k, _ := openToken(t, func(c *PKCS11Config) { c.MaxSessions = 2 })
	s, err := k.GenerateKey(context.Background(), GenerateKeyRequest{Label: "stats", Algorithm: ECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(n int) {
		for range n {
			if _, err := s.Sign(nil, digest256("stats"), crypto.SHA256); err != nil {
				t.Fatal(err)
			}
		}
	}
	pinPath(k, false)
	sign(3)
	pinPath(k, true)
	sign(2)
	// The key vanishes behind the store's back: the next signature fails,
	// its one signing call (on a thread) with CKR_KEY_HANDLE_INVALID.
	sh, err := k.pool.mod.OpenSession(k.pool.slot, sessionFlags)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.pool.mod.DestroyObject(sh, s.(*p11Signer).handle.Load().h); err != nil {
		t.Fatal(err)
	}
	_ = k.pool.mod.CloseSession(sh)
	if _, err := s.Sign(nil, digest256("stats"), crypto.SHA256); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Sign with the key gone: got %v, want ErrKeyNotFound", err)
	}
	got := k.Stats()
	want := Stats{DirectSignatures: 3, ThreadSignatures: 3, SignatureErrors: 1, SessionsOpen: got.SessionsOpen}
	if got != want || got.SessionsOpen < 1 || got.SessionsOpen > 2 {
		t.Errorf("Stats() = %+v, want %+v with 1 or 2 sessions open", got, want)
	}
}

// TestSignThreadsErrors: what the token refuses comes back as the
// pkcs11.Error of the call that refused it, down either path, and an input
// too large for a slot is refused before it takes one; every slot is free
// again after.
func TestSignThreadsErrors(t *testing.T) {
	pss := pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, []byte{1, 2, 3})
	pkcs1 := pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
	for _, path := range signPaths {
		for _, tc := range []struct {
			name  string
			mech  *pkcs11.Mechanism
			input []byte
			want  error
		}{
			// C_SignInit: a PSS parameter of the wrong size.
			{"parameter", pss, make([]byte, 32), pkcs11.Error(pkcs11.CKR_ARGUMENTS_BAD)},
			// C_Sign: more than a 2048-bit modulus takes with PKCS #1
			// padding. SoftHSM2 answers CKR_GENERAL_ERROR, which the store
			// takes for a module failure: it re-initialises the module,
			// and the signature after works.
			{"data length", pkcs1, make([]byte, 300), pkcs11.Error(pkcs11.CKR_GENERAL_ERROR)},
			{"too large for a slot", pkcs1, make([]byte, 600), ErrInvalidRequest},
		} {
			t.Run(path.name+"/"+tc.name, func(t *testing.T) {
				k, _ := openToken(t, nil)
				pinPath(k, path.offload)
				ctx := context.Background()
				key, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: "rsa", Algorithm: RSA2048})
				if err != nil {
					t.Fatal(err)
				}
				err = k.withSession(ctx, false, func(l *lease) error {
					h, err := key.(*p11Signer).objectHandle(l)
					if err != nil {
						return err
					}
					_, err = k.threads.sign(l.sh, h, tc.mech, tc.input)
					return err
				})
				if !errors.Is(err, tc.want) {
					t.Errorf("got %v, want %v", err, tc.want)
				}
				if n := len(k.threads.free); n != cap(k.threads.free) {
					t.Errorf("%d of %d slots free after the error", n, cap(k.threads.free))
				}
				// The session and the module are still good.
				if _, err := key.Sign(nil, digest256("after"), crypto.SHA256); err != nil {
					t.Errorf("Sign after the error: %v", err)
				}
			})
		}
	}
}
