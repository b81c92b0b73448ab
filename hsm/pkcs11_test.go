package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/jpkica/jpkica/internal/softhsmtest"
)

// openToken makes a fresh SoftHSM token and opens it; Close runs at cleanup.
func openToken(t testing.TB, tweak func(*PKCS11Config)) (*PKCS11, *softhsmtest.Token) {
	t.Helper()
	tk := softhsmtest.New(t)
	cfg := PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN}
	if tweak != nil {
		tweak(&cfg)
	}
	k, err := OpenPKCS11(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("OpenPKCS11: %v", err)
	}
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return k, tk
}

func digest256(msg string) []byte {
	d := sha256.Sum256([]byte(msg))
	return d[:]
}

// verify checks sig over digest with pub the way Go's verifiers see it.
func verify(t testing.TB, pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) {
	t.Helper()
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			// Verify with the exact salt length we expect to have been used.
			want := pss.SaltLength
			if want == rsa.PSSSaltLengthAuto {
				want = rsa.PSSSaltLengthEqualsHash
			}
			if err := rsa.VerifyPSS(pub, opts.HashFunc(), digest, sig, &rsa.PSSOptions{SaltLength: want, Hash: opts.HashFunc()}); err != nil {
				t.Fatalf("VerifyPSS: %v", err)
			}
			return
		}
		if err := rsa.VerifyPKCS1v15(pub, opts.HashFunc(), digest, sig); err != nil {
			t.Fatalf("VerifyPKCS1v15: %v", err)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			t.Fatalf("ecdsa.VerifyASN1 failed")
		}
	default:
		t.Fatalf("public key type %T", pub)
	}
}

// signCases are the signature kinds every store must produce.
var signCases = []struct {
	name string
	alg  Algorithm
	opts crypto.SignerOpts
	hash func([]byte) []byte
}{
	{"RSA PKCS1v15 SHA-256", RSA2048, crypto.SHA256, func(b []byte) []byte { d := sha256.Sum256(b); return d[:] }},
	{"RSA PKCS1v15 SHA-512", RSA2048, crypto.SHA512, func(b []byte) []byte { d := sha512.Sum512(b); return d[:] }},
	{"RSA PSS SHA-256 salt=hash", RSA2048, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, func(b []byte) []byte { d := sha256.Sum256(b); return d[:] }},
	{"RSA PSS SHA-256 salt=auto", RSA2048, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}, func(b []byte) []byte { d := sha256.Sum256(b); return d[:] }},
	{"RSA PSS SHA-384 salt=20", RSA2048, &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA384}, func(b []byte) []byte { d := sha512.Sum384(b); return d[:] }},
	{"ECDSA P-256 SHA-256", ECDSAP256, crypto.SHA256, func(b []byte) []byte { d := sha256.Sum256(b); return d[:] }},
}

// signPaths are the two ways signThreads makes a signature: tests that
// sign run under each, pinned with pinPath.
var signPaths = []struct {
	name    string
	offload bool
}{{"direct", false}, {"thread", true}}

// pinPath makes every signature of k go the one way, whatever the
// scheduler's load; call it before signing starts.
func pinPath(k *PKCS11, offload bool) {
	k.threads.offload = func() bool { return offload }
}

// pathCount is how many signatures k made the pinned way.
func pathCount(k *PKCS11, offload bool) int64 {
	if offload {
		return k.threads.threaded.Load()
	}
	return k.threads.direct.Load()
}

func TestPKCS11GenerateSignVerify(t *testing.T) {
	for _, path := range signPaths {
		t.Run(path.name, func(t *testing.T) { testGenerateSignVerify(t, path.offload) })
	}
}

func testGenerateSignVerify(t *testing.T, offload bool) {
	k, _ := openToken(t, nil)
	pinPath(k, offload)
	ctx := context.Background()
	rsaKey, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: "rsa", Algorithm: RSA2048})
	if err != nil {
		t.Fatalf("GenerateKey RSA: %v", err)
	}
	ecKey, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: "ec", Algorithm: ECDSAP256})
	if err != nil {
		t.Fatalf("GenerateKey EC: %v", err)
	}
	if pub, ok := rsaKey.Public().(*rsa.PublicKey); !ok || pub.N.BitLen() != 2048 || pub.E != 65537 {
		t.Fatalf("RSA public key = %#v, want 2048-bit, e=65537", rsaKey.Public())
	}
	for _, tc := range signCases {
		t.Run(tc.name, func(t *testing.T) {
			key := rsaKey
			if tc.alg == ECDSAP256 {
				key = ecKey
			}
			d := tc.hash([]byte("to be signed: " + tc.name))
			sig, err := key.Sign(nil, d, tc.opts)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			verify(t, key.Public(), d, sig, tc.opts)

			ctxSigner, ok := key.(Signer)
			if !ok {
				t.Fatalf("%T does not implement hsm.Signer", key)
			}
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			sig, err = ctxSigner.SignContext(dctx, d, tc.opts)
			if err != nil {
				t.Fatalf("SignContext: %v", err)
			}
			verify(t, key.Public(), d, sig, tc.opts)
		})
	}
	if got, want := pathCount(k, offload), int64(2*len(signCases)); got != want {
		t.Errorf("%d signatures made the pinned way, want %d", got, want)
	}
}

func TestPKCS11SignerAfterReopen(t *testing.T) {
	tk := softhsmtest.New(t)
	cfg := PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN}
	ctx := context.Background()

	k, err := OpenPKCS11(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("OpenPKCS11: %v", err)
	}
	want := map[string]crypto.PublicKey{}
	for label, alg := range map[string]Algorithm{"issuer-rsa": RSA2048, "issuer-ec": ECDSAP256} {
		s, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: label, Algorithm: alg})
		if err != nil {
			t.Fatalf("GenerateKey %s: %v", label, err)
		}
		want[label] = s.Public()
	}
	if err := k.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	k, err = OpenPKCS11(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	t.Cleanup(func() { k.Close() })
	for label, pub := range want {
		s, err := k.Signer(ctx, label)
		if err != nil {
			t.Fatalf("Signer(%q): %v", label, err)
		}
		if !s.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Errorf("Signer(%q) public key differs from the generated one", label)
		}
		d := digest256("after reopen")
		sig, err := s.Sign(nil, d, crypto.SHA256)
		if err != nil {
			t.Fatalf("Sign with %q: %v", label, err)
		}
		verify(t, pub, d, sig, crypto.SHA256)
	}
}

func TestPKCS11Errors(t *testing.T) {
	k, _ := openToken(t, nil)
	ctx := context.Background()
	s, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: "taken", Algorithm: ECDSAP256})
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	rsaKey, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: "rsa", Algorithm: RSA2048})
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"generate existing label", func() error {
			_, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: "taken", Algorithm: RSA2048})
			return err
		}, ErrKeyExists},
		{"signer for missing label", func() error {
			_, err := k.Signer(ctx, "no such key")
			return err
		}, ErrKeyNotFound},
		{"unknown algorithm", func() error {
			_, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: "x", Algorithm: Algorithm(99)})
			return err
		}, ErrUnsupported},
		{"empty label", func() error {
			_, err := k.GenerateKey(ctx, GenerateKeyRequest{Algorithm: RSA2048})
			return err
		}, ErrInvalidRequest},
		{"digest of wrong length", func() error {
			_, err := s.Sign(nil, []byte("short"), crypto.SHA256)
			return err
		}, ErrInvalidRequest},
		{"unsupported hash", func() error {
			_, err := rsaKey.Sign(nil, make([]byte, 16), crypto.MD5)
			return err
		}, ErrUnsupported},
		{"PSS salt too long", func() error {
			_, err := rsaKey.Sign(nil, digest256("x"), &rsa.PSSOptions{SaltLength: 1000, Hash: crypto.SHA256})
			return err
		}, ErrInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want errors.Is %v", err, tc.want)
			}
		})
	}
	// The store keeps working after caller errors.
	if err := k.Ping(ctx); err != nil {
		t.Fatalf("Ping after errors: %v", err)
	}
}

func TestPKCS11PrivateKeyAttributes(t *testing.T) {
	k, _ := openToken(t, nil)
	ctx := context.Background()
	for _, alg := range []Algorithm{RSA2048, ECDSAP256} {
		t.Run(alg.String(), func(t *testing.T) {
			label := "attrs-" + alg.String()
			if _, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: label, Algorithm: alg}); err != nil {
				t.Fatalf("GenerateKey: %v", err)
			}
			err := k.withSession(ctx, false, func(l *lease) error {
				hs, err := k.findObjects(l, []*pkcs11.Attribute{
					pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
					pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				}, 2)
				if err != nil || len(hs) != 1 {
					return fmt.Errorf("finding private key: %d handles, %w", len(hs), err)
				}
				checkBoolAttrs(t, k, l, hs[0], []boolAttr{
					{"CKA_SENSITIVE", pkcs11.CKA_SENSITIVE, true},
					{"CKA_EXTRACTABLE", pkcs11.CKA_EXTRACTABLE, false},
					{"CKA_PRIVATE", pkcs11.CKA_PRIVATE, true},
					{"CKA_TOKEN", pkcs11.CKA_TOKEN, true},
					{"CKA_SIGN", pkcs11.CKA_SIGN, true},
					{"CKA_ALWAYS_SENSITIVE", pkcs11.CKA_ALWAYS_SENSITIVE, true},
					{"CKA_NEVER_EXTRACTABLE", pkcs11.CKA_NEVER_EXTRACTABLE, true},
					{"CKA_DECRYPT", pkcs11.CKA_DECRYPT, false},
					{"CKA_UNWRAP", pkcs11.CKA_UNWRAP, false},
					{"CKA_DERIVE", pkcs11.CKA_DERIVE, false},
				})
				// The secret part must not be readable.
				secret := uint(pkcs11.CKA_PRIVATE_EXPONENT)
				if alg == ECDSAP256 {
					secret = pkcs11.CKA_VALUE
				}
				_, err = k.pool.mod.GetAttributeValue(l.sh, hs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(secret, nil)})
				if !isCode(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
					t.Errorf("reading the private value: got %v, want CKR_ATTRIBUTE_SENSITIVE", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// boolAttr is a CK_BBOOL attribute and the value a key should have.
type boolAttr struct {
	name string
	typ  uint
	want bool
}

// checkBoolAttrs reads the attributes of object h back from the token and
// compares them with what they should be.
func checkBoolAttrs(t *testing.T, k *PKCS11, l *lease, h pkcs11.ObjectHandle, want []boolAttr) {
	t.Helper()
	template := make([]*pkcs11.Attribute, len(want))
	for i, w := range want {
		template[i] = pkcs11.NewAttribute(w.typ, nil)
	}
	attrs, err := k.pool.mod.GetAttributeValue(l.sh, h, template)
	if err != nil {
		t.Fatalf("C_GetAttributeValue: %v", err)
	}
	for i, a := range attrs {
		if len(a.Value) != 1 {
			t.Errorf("%s: %d bytes, want a CK_BBOOL", want[i].name, len(a.Value))
			continue
		}
		if got := a.Value[0] != 0; got != want[i].want {
			t.Errorf("%s = %t, want %t", want[i].name, got, want[i].want)
		}
	}
}

// TestPKCS11RestrictionRefused: a token that refuses one of the
// restricting attributes in the private key's template still gets its key,
// without them, and the store says so once in its log and stops asking.
// SoftHSM2 takes CKA_UNWRAP and CKA_DERIVE, so here the store asks, besides
// them, for a vendor-defined attribute that SoftHSM2 does not know.
func TestPKCS11RestrictionRefused(t *testing.T) {
	tk := softhsmtest.New(t)
	var logs lockedBuffer
	k, err := OpenPKCS11(context.Background(), PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN},
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	k.restrict = append(k.restrict, pkcs11.NewAttribute(pkcs11.CKA_VENDOR_DEFINED|0x4a504b, false))
	ctx := context.Background()
	for i, alg := range []Algorithm{RSA2048, ECDSAP256} {
		s, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: fmt.Sprintf("refused-%d", i), Algorithm: alg})
		if err != nil {
			t.Fatalf("GenerateKey %v on a token that refuses an attribute: %v", alg, err)
		}
		d := digest256("refused")
		sig, err := s.Sign(nil, d, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		verify(t, s.Public(), d, sig, crypto.SHA256)
	}
	if !k.unrestricted.Load() {
		t.Error("the store did not note that the token refuses the attributes")
	}
	if n := strings.Count(logs.String(), "refuses CKA_UNWRAP"); n != 1 {
		t.Errorf("%d log lines about the refused attributes, want 1:\n%s", n, logs.String())
	}
}

// lockedBuffer is a concurrency-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestPKCS11WrongPIN(t *testing.T) {
	tk := softhsmtest.New(t)
	const wrong = "wrong-PIN-7g3k9"
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: wrong}
	k, err := OpenPKCS11(context.Background(), cfg, logger)
	if err == nil {
		k.Close()
		t.Fatal("OpenPKCS11 with a wrong PIN succeeded")
	}
	if !errors.Is(err, ErrLogin) {
		t.Errorf("got %v, want errors.Is ErrLogin", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), wrong) {
		t.Errorf("error contains the PIN: %v", err)
	}
	if strings.Contains(logs.String(), wrong) {
		t.Errorf("log contains the PIN")
	}
	logger.Info("config", "cfg", cfg)
	if s := fmt.Sprint(cfg) + fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg) + logs.String(); strings.Contains(s, wrong) {
		t.Errorf("formatted config contains the PIN: %s", s)
	}
	// The right PIN still works: the wrong one did not lock the token.
	k, err = OpenPKCS11(context.Background(), PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN}, logger)
	if err != nil {
		t.Fatalf("OpenPKCS11 with the right PIN: %v", err)
	}
	k.Close()
}

func TestPKCS11TokenMissing(t *testing.T) {
	tk := softhsmtest.New(t)
	_, err := OpenPKCS11(context.Background(), PKCS11Config{Module: tk.Module, TokenLabel: "not-" + tk.Label, PIN: tk.PIN}, nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want errors.Is ErrUnavailable", err)
	}
}

func TestPKCS11AcquireTimeout(t *testing.T) {
	k, _ := openToken(t, func(c *PKCS11Config) {
		c.MaxSessions = 1
		c.AcquireTimeout = 50 * time.Millisecond
	})
	ctx := context.Background()
	s, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: "k", Algorithm: ECDSAP256})
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	// Hold the only session.
	l, err := k.pool.acquire(ctx, time.Second)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	d := digest256("blocked")
	if _, err := s.Sign(nil, d, crypto.SHA256); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Sign with no free session: got %v, want ErrUnavailable", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = s.(Signer).SignContext(dctx, d, crypto.SHA256)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SignContext with no free session: got %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	k.pool.release(l, nil)
	if _, err := s.Sign(nil, d, crypto.SHA256); err != nil {
		t.Errorf("Sign after the session came back: %v", err)
	}
}

func TestPKCS11Closed(t *testing.T) {
	tk := softhsmtest.New(t)
	k, err := OpenPKCS11(context.Background(), PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN}, nil)
	if err != nil {
		t.Fatalf("OpenPKCS11: %v", err)
	}
	s, err := k.GenerateKey(context.Background(), GenerateKeyRequest{Label: "k", Algorithm: ECDSAP256})
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Sign(nil, digest256("x"), crypto.SHA256); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Sign after Close: got %v, want ErrUnavailable", err)
	}
	if err := k.Ping(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping after Close: got %v, want ErrUnavailable", err)
	}
}

func TestPKCS11ConcurrentSigning(t *testing.T) {
	for _, path := range signPaths {
		t.Run(path.name, func(t *testing.T) {
			testConcurrentSigning(t, func(k *PKCS11) { pinPath(k, path.offload) })
		})
	}
	// As in production: each signature's way chosen by the load.
	t.Run("by-load", func(t *testing.T) { testConcurrentSigning(t, func(*PKCS11) {}) })
}

func testConcurrentSigning(t *testing.T, pin func(*PKCS11)) {
	k, _ := openToken(t, func(c *PKCS11Config) { c.MaxSessions = 2 })
	pin(k)
	ctx := context.Background()
	var signers []crypto.Signer
	for _, alg := range []Algorithm{RSA2048, ECDSAP256} {
		s, err := k.GenerateKey(ctx, GenerateKeyRequest{Label: "conc-" + alg.String(), Algorithm: alg})
		if err != nil {
			t.Fatalf("GenerateKey: %v", err)
		}
		signers = append(signers, s)
	}
	const goroutines, each = 16, 15
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			s := signers[g%len(signers)]
			for i := range each {
				d := digest256(fmt.Sprintf("g%d i%d", g, i))
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				sig, err := s.(Signer).SignContext(sctx, d, crypto.SHA256)
				cancel()
				if err != nil {
					errs <- err
					continue
				}
				if pub, ok := s.Public().(*ecdsa.PublicKey); ok {
					if !ecdsa.VerifyASN1(pub, d, sig) {
						errs <- errors.New("bad ECDSA signature")
					}
				} else if err := rsa.VerifyPKCS1v15(s.Public().(*rsa.PublicKey), crypto.SHA256, d, sig); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	k.pool.mu.Lock()
	idle, inflight := len(k.pool.idle), k.pool.inflight
	k.pool.mu.Unlock()
	if idle > 2 || inflight != 0 {
		t.Errorf("pool holds %d idle sessions and %d leases, want at most 2 and 0", idle, inflight)
	}
}

// TestPKCS11CloseWakesWaiters: callers waiting for a session when Close is
// called fail with ErrUnavailable instead of waiting out their deadline, and
// Close waits for the signature in flight.
func TestPKCS11CloseWakesWaiters(t *testing.T) {
	tk := softhsmtest.New(t)
	k, err := OpenPKCS11(context.Background(), PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN, MaxSessions: 1}, nil)
	if err != nil {
		t.Fatalf("OpenPKCS11: %v", err)
	}
	s, err := k.GenerateKey(context.Background(), GenerateKeyRequest{Label: "k", Algorithm: ECDSAP256})
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	l, err := k.pool.acquire(context.Background(), time.Second) // the "signature in flight"
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	waiterDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := s.(Signer).SignContext(ctx, digest256("x"), crypto.SHA256)
		waiterDone <- err
	}()
	closeDone := make(chan error, 1)
	time.Sleep(20 * time.Millisecond) // let the signer start waiting; the test holds either way
	go func() { closeDone <- k.Close() }()

	select {
	case err := <-waiterDone:
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("waiting signer: got %v, want ErrUnavailable, not a deadline", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not wake the waiting signer")
	}
	select {
	case <-closeDone:
		t.Fatal("Close returned while a session was still borrowed")
	default:
	}
	k.pool.release(l, nil)
	select {
	case err := <-closeDone:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return after the session came back")
	}
}
