package ocsp_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/softhsmtest"
	"github.com/jpkica/jpkica/ocsp"
)

// BenchmarkPresignVsRaw compares the pre-signing throughput (a store of n
// certificates loaded, encoded, signed and cached by the Presigner's
// workers) with the raw signing rate of the same key on as many goroutines.
// Run with -benchtime 1x; the metrics are what matter: per wall-clock
// second and per CPU second of the process (getrusage), the latter immune
// to other load on a shared machine.
func BenchmarkPresignVsRaw(b *testing.B) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	goKey := func(k crypto.Signer) func(*testing.B) crypto.Signer {
		return func(*testing.B) crypto.Signer { return k }
	}
	for _, tc := range []struct {
		name string
		key  func(*testing.B) crypto.Signer
		n    int
	}{
		{"ECDSA-P256", goKey(ec), 40000},
		{"RSA-2048", goKey(rk), 3000},
		// A responder key in SoftHSM2, as `jpkica serve` has it with
		// keys.backend pkcs11: its signatures go through hsm's session
		// pool and, while the workers keep the scheduler busy, its signing
		// threads.
		{"ECDSA-P256-SoftHSM2", softHSMKey(hsm.ECDSAP256), 20000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			workers := runtime.GOMAXPROCS(0)
			key := tc.key(b)
			for b.Loop() {
				// Raw: workers goroutines signing n SHA-256 digests.
				digest := sha256.Sum256([]byte("tbsResponseData"))
				var left atomic.Int64
				left.Store(int64(tc.n))
				runtime.GC() // neither phase pays for the other's garbage
				start, cpu0 := time.Now(), cpuTime()
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
								panic(err)
							}
						}
					})
				}
				wg.Wait()
				raw := float64(tc.n) / time.Since(start).Seconds()
				rawCPU := float64(tc.n) / (cpuTime() - cpu0).Seconds()

				pki := newPKI(key)
				src := newMemSource()
				for i := 1; i <= tc.n; i++ {
					r, _ := pki.leaf(b, int64(i))
					src.set(r)
				}
				p, err := ocsp.NewPresigner(ocsp.Config{Workers: workers}, ocsp.Deps{Issuers: pki.issuers(), Source: src,
					Clock: time.Now, Rand: rand.Reader})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				runtime.GC()
				start, cpu0 = time.Now(), cpuTime()
				go func() { p.Run(ctx); close(done) }()
				for p.Cache().Len() < tc.n {
					time.Sleep(time.Millisecond)
				}
				pre := float64(tc.n) / time.Since(start).Seconds()
				preCPU := float64(tc.n) / (cpuTime() - cpu0).Seconds()
				cancel()
				<-done
				b.ReportMetric(raw, "raw-signs/s")
				b.ReportMetric(pre, "presigned/s")
				b.ReportMetric(100*pre/raw, "%-of-raw")
				// Per CPU second: what the machine's other load cannot skew.
				b.ReportMetric(rawCPU, "raw-signs/cpu-s")
				b.ReportMetric(preCPU, "presigned/cpu-s")
				b.ReportMetric(100*preCPU/rawCPU, "%-of-raw-per-cpu-s")
			}
		})
	}
}

// BenchmarkHandler is the responder's own cost per GET of a pre-signed
// response (no network): decoding, lookup, headers, writing.
func BenchmarkHandler(b *testing.B) { benchHandler(b, false) }

// BenchmarkHandlerAfterRenewal is BenchmarkHandler right after the
// responder was renewed: every cached response is the replaced
// responder's, found second among the issuer's two responder keys.
func BenchmarkHandlerAfterRenewal(b *testing.B) { benchHandler(b, true) }

func benchHandler(b *testing.B, renewed bool) {
	_, p, _ := memServer(b, 1000, ocsp.Config{})
	for p.Cache().Len() < 1000 {
		time.Sleep(time.Millisecond)
	}
	if renewed {
		next, key := testPKI().newResponder(b, 99, time.Now().AddDate(0, 2, 0))
		if err := p.SetResponder("test-g1", next, key); err != nil {
			b.Fatal(err)
		}
	}
	h := ocsp.NewResponder(p, "/ocsp/")
	var reqs []*http.Request
	for i := int64(1); i <= 1000; i++ {
		u := "/ocsp/" + url.QueryEscape(base64.StdEncoding.EncodeToString(request(b, i, crypto.SHA1)))
		reqs = append(reqs, httptest.NewRequest(http.MethodGet, u, nil))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		i := 0
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, reqs[i%len(reqs)])
			i++
		}
	})
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// cpuTime is the user and system CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// softHSMKey makes a key of alg on a fresh SoftHSM2 token.
func softHSMKey(alg hsm.Algorithm) func(*testing.B) crypto.Signer {
	return func(b *testing.B) crypto.Signer {
		tk := softhsmtest.New(b)
		keys, err := hsm.OpenPKCS11(context.Background(), hsm.PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { keys.Close() })
		key, err := keys.GenerateKey(context.Background(), hsm.GenerateKeyRequest{Label: "responder", Algorithm: alg})
		if err != nil {
			b.Fatal(err)
		}
		return key
	}
}
