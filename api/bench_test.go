package api_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jpkica/jpkica/api"
	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/softhsmtest"
)

// openSoftHSM opens a fresh SoftHSM2 token as the issuers' key store.
func openSoftHSM(b *testing.B) *hsm.PKCS11 {
	tk := softhsmtest.New(b)
	keys, err := hsm.OpenPKCS11(context.Background(), hsm.PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN,
		MaxSessions: 4}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { keys.Close() })
	return keys
}

// BenchmarkIssueAPI: issuances through the API over mutual TLS with the
// issuer keys in SoftHSM2, from parallel counters (one TLS client each,
// connections kept alive), then the raw SoftHSM2 RSA-2048 signing rate of
// the same token in the same run. docs/benchmarks-api.md has the figures.
func BenchmarkIssueAPI(b *testing.B) {
	keys := openSoftHSM(b)
	// The identity cache at its production default (apitest turns it off so
	// that tests see revocations at once).
	s := apitest.New(b, apitest.Options{Keys: keys, Config: api.Config{IdentityCacheTTL: 5 * time.Second}})
	cert, _ := s.Enrol(b, "counter", "302015", "bench", 24*time.Hour)
	client := s.Client(&cert)
	body := issueBody("authentication", "", "", "302015")
	var n atomic.Int64
	b.Run("api", func(b *testing.B) {
		b.SetParallelism(2)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			c := caller{t: b, s: s, client: client}
			for pb.Next() {
				i := n.Add(1)
				req := body
				req.Card.ID = fmt.Sprintf("BENCH-%d", i)
				req.Resident.ID = fmt.Sprintf("RB-%d", i)
				if a, _ := c.issue(req, fmt.Sprintf("bench-%d", i)); a.status != http.StatusCreated {
					b.Errorf("issue: %d %s", a.status, a.body)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "issuances/s")
	})
	signer := s.Keyring.Current[0].Signer
	digest := sha256.Sum256([]byte("bench"))
	b.Run("raw-sign", func(b *testing.B) {
		b.SetParallelism(2)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signatures/s")
	})
}
