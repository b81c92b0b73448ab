package ocsp_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ocsp"
)

// BenchmarkPresignVsRaw compares the pre-signing throughput (a store of n
// certificates loaded, encoded, signed and cached by the Presigner's
// workers) with the raw signing rate of the same key on as many goroutines.
// Run with -benchtime 1x; the metrics are what matter.
func BenchmarkPresignVsRaw(b *testing.B) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		n    int
	}{{"ECDSA-P256", ec, 40000}, {"RSA-2048", rk, 3000}} {
		b.Run(tc.name, func(b *testing.B) {
			workers := runtime.GOMAXPROCS(0)
			for b.Loop() {
				// Raw: workers goroutines signing n SHA-256 digests.
				digest := sha256.Sum256([]byte("tbsResponseData"))
				var left atomic.Int64
				left.Store(int64(tc.n))
				start := time.Now()
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							if _, err := tc.key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
								panic(err)
							}
						}
					})
				}
				wg.Wait()
				raw := float64(tc.n) / time.Since(start).Seconds()

				pki := newPKI(tc.key)
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
				start = time.Now()
				go func() { p.Run(ctx); close(done) }()
				for p.Cache().Len() < tc.n {
					time.Sleep(time.Millisecond)
				}
				pre := float64(tc.n) / time.Since(start).Seconds()
				cancel()
				<-done
				b.ReportMetric(raw, "raw-signs/s")
				b.ReportMetric(pre, "presigned/s")
				b.ReportMetric(100*pre/raw, "%-of-raw")
			}
		})
	}
}
