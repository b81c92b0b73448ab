package hsm

import (
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/jpkica/jpkica/internal/softhsmtest"
)

// Run with:
//
//	go test -run '^$' -bench 'RawSoftHSM|PoolSign' -benchtime 3s -count 3 ./hsm/
//
// BenchmarkRawSoftHSM is the floor: miekg/pkcs11 straight, one session,
// C_SignInit + C_Sign per signature. BenchmarkPoolSign goes through the
// store's signer (pool, retry wrapper, DigestInfo, DER conversion).

var benchKeys = []struct {
	name  string
	label string
	alg   Algorithm
	mech  uint
}{
	{"RSA2048-PKCS1v15-SHA256", "bench-rsa", RSA2048, pkcs11.CKM_RSA_PKCS},
	{"ECDSA-P256-SHA256", "bench-ec", ECDSAP256, pkcs11.CKM_ECDSA},
}

// benchToken makes a token with the benchmark keys and closes the store, so
// the module is finalised and free for the benchmark to initialise.
func benchToken(b *testing.B) *softhsmtest.Token {
	b.Helper()
	tk := softhsmtest.New(b)
	k, err := OpenPKCS11(context.Background(), PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN}, nil)
	if err != nil {
		b.Fatalf("OpenPKCS11: %v", err)
	}
	for _, bk := range benchKeys {
		if _, err := k.GenerateKey(context.Background(), GenerateKeyRequest{Label: bk.label, Algorithm: bk.alg}); err != nil {
			b.Fatalf("GenerateKey: %v", err)
		}
	}
	if err := k.Close(); err != nil {
		b.Fatalf("Close: %v", err)
	}
	return tk
}

func BenchmarkRawSoftHSM(b *testing.B) {
	tk := benchToken(b)
	mod := pkcs11.New(tk.Module)
	if err := mod.Initialize(); err != nil {
		b.Fatalf("C_Initialize: %v", err)
	}
	defer func() {
		_ = mod.Finalize()
		mod.Destroy()
	}()
	slots, err := mod.GetSlotList(true)
	if err != nil {
		b.Fatal(err)
	}
	var slot uint
	for _, s := range slots {
		if ti, err := mod.GetTokenInfo(s); err == nil && ti.Label == tk.Label {
			slot = s
		}
	}
	sh, err := mod.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		b.Fatal(err)
	}
	if err := mod.Login(sh, pkcs11.CKU_USER, tk.PIN); err != nil {
		b.Fatal(err)
	}
	d := sha256.Sum256([]byte("benchmark"))
	for _, bk := range benchKeys {
		if err := mod.FindObjectsInit(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, bk.label),
		}); err != nil {
			b.Fatal(err)
		}
		hs, _, err := mod.FindObjects(sh, 1)
		_ = mod.FindObjectsFinal(sh)
		if err != nil || len(hs) != 1 {
			b.Fatalf("finding %s: %v", bk.label, err)
		}
		input := d[:]
		if bk.mech == pkcs11.CKM_RSA_PKCS {
			input = append(append([]byte{}, digestInfoPrefixes[crypto.SHA256]...), d[:]...)
		}
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(bk.mech, nil)}
		b.Run(bk.name, func(b *testing.B) {
			for b.Loop() {
				if err := mod.SignInit(sh, mech, hs[0]); err != nil {
					b.Fatal(err)
				}
				if _, err := mod.Sign(sh, input); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPoolSign(b *testing.B) {
	tk := benchToken(b)
	d := sha256.Sum256([]byte("benchmark"))
	for _, sessions := range []int{1, 2} {
		k, err := OpenPKCS11(context.Background(), PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN, MaxSessions: sessions}, nil)
		if err != nil {
			b.Fatalf("OpenPKCS11: %v", err)
		}
		for _, bk := range benchKeys {
			s, err := k.Signer(context.Background(), bk.label)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/sessions=%d/serial", bk.name, sessions), func(b *testing.B) {
				for b.Loop() {
					if _, err := s.Sign(nil, d[:], crypto.SHA256); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/sessions=%d/parallel", bk.name, sessions), func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := s.Sign(nil, d[:], crypto.SHA256); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
		if err := k.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPairedOverhead alternates, op by op, a raw C_SignInit+C_Sign on a
// dedicated session and a signature through the store's signer, on the same
// initialised module, and reports both averages and the difference. On a
// shared or loaded machine the separate benchmarks drift by more than the
// pool costs; pairing cancels most of that drift.
func BenchmarkPairedOverhead(b *testing.B) {
	tk := benchToken(b)
	k, err := OpenPKCS11(context.Background(), PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN, MaxSessions: 1}, nil)
	if err != nil {
		b.Fatalf("OpenPKCS11: %v", err)
	}
	defer k.Close()
	d := sha256.Sum256([]byte("benchmark"))
	for _, bk := range benchKeys {
		s, err := k.Signer(context.Background(), bk.label)
		if err != nil {
			b.Fatal(err)
		}
		// A raw session of our own on the module the store initialised.
		mod := k.pool.mod
		sh, err := mod.OpenSession(k.pool.slot, sessionFlags)
		if err != nil {
			b.Fatal(err)
		}
		h := s.(*p11Signer).handle.Load().h
		input := d[:]
		if bk.mech == pkcs11.CKM_RSA_PKCS {
			input = append(append([]byte{}, digestInfoPrefixes[crypto.SHA256]...), d[:]...)
		}
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(bk.mech, nil)}
		b.Run(bk.name, func(b *testing.B) {
			var raw, pooled time.Duration
			rawSign := func() {
				t0 := time.Now()
				if err := mod.SignInit(sh, mech, h); err != nil {
					b.Fatal(err)
				}
				if _, err := mod.Sign(sh, input); err != nil {
					b.Fatal(err)
				}
				raw += time.Since(t0)
			}
			poolSign := func() {
				t0 := time.Now()
				if _, err := s.Sign(nil, d[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
				pooled += time.Since(t0)
			}
			i := 0
			for b.Loop() {
				// Alternate which goes first, so neither always runs on a warm cache.
				if i++; i%2 == 0 {
					rawSign()
					poolSign()
				} else {
					poolSign()
					rawSign()
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(raw.Nanoseconds())/n, "raw-ns/sig")
			b.ReportMetric(float64(pooled.Nanoseconds())/n, "pool-ns/sig")
			b.ReportMetric(100*(float64(pooled)-float64(raw))/float64(raw), "overhead-%")
		})
		_ = mod.CloseSession(sh)
	}
}

// BenchmarkPoolAcquireRelease is the pool's own cost per signature: borrow
// and return a session, with no PKCS #11 call in between.
func BenchmarkPoolAcquireRelease(b *testing.B) {
	tk := benchToken(b)
	k, err := OpenPKCS11(context.Background(), PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN, MaxSessions: 2}, nil)
	if err != nil {
		b.Fatalf("OpenPKCS11: %v", err)
	}
	defer k.Close()
	b.Run("serial", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			if err := k.withSession(ctx, true, func(*lease) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for pb.Next() {
				if err := k.withSession(ctx, true, func(*lease) error { return nil }); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
