package api_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jpkica/jpkica/api"
	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/softhsmtest"
	"github.com/jpkica/jpkica/ocsp"
)

// maxSessions is the issuers' key store's session limit (hsm's default),
// and the raw signing rate's number of sessions.
const maxSessions = 4

// openSoftHSM opens a fresh SoftHSM2 token as the issuers' key store.
func openSoftHSM(t testing.TB) (*hsm.PKCS11, *softhsmtest.Token) {
	tk := softhsmtest.New(t)
	keys, err := hsm.OpenPKCS11(context.Background(), hsm.PKCS11Config{Module: tk.Module, TokenLabel: tk.Label, PIN: tk.PIN,
		MaxSessions: maxSessions}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	return keys, tk
}

// presignerSlot is the Authority's StatusListener, handing status changes
// to the OCSP pre-signer once it exists: the pre-signer needs the keyring
// that starting the server makes.
type presignerSlot struct {
	p atomic.Pointer[ocsp.Presigner]
}

func (s *presignerSlot) StatusChanged(ctx context.Context, serials ...ca.Serial) {
	if p := s.p.Load(); p != nil {
		p.StatusChanged(ctx, serials...)
	}
}

// startPresigner runs the OCSP pre-signer over the server's store and
// keyring, as `jpkica serve` does with both roles in one process, and
// waits until it has loaded the store.
func startPresigner(b *testing.B, s *apitest.Server, slot *presignerSlot) *ocsp.Presigner {
	var issuers []ocsp.IssuerConfig
	for _, ik := range s.Keyring.Issuers {
		r := s.Keyring.Responders[ik.Issuer.ID]
		issuers = append(issuers, ocsp.IssuerConfig{ID: ik.Issuer.ID, Cert: ik.Cert, Signer: r.Signer, ResponderCert: r.Cert})
	}
	p, err := ocsp.NewPresigner(ocsp.Config{}, ocsp.Deps{Issuers: issuers, Source: s.Store, Responses: s.Store,
		Audit: s.Store, Clock: s.Clock.Now, Rand: rand.Reader})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	if err := p.Drain(ctx); err != nil {
		b.Fatal(err)
	}
	slot.p.Store(p)
	return p
}

// BenchmarkIssueAPI: issuances through the API over mutual TLS with the
// issuer keys in SoftHSM2, from parallel counters (one TLS client each,
// connections kept alive), each with its first OCSP response pre-signed by
// the delegated responder (RSA-2048 as JPKI, or ECDSA P-256) and stored,
// the pre-signer drained before the clock stops; then, in the same run, the
// raw SoftHSM2 signing rates of the issuer key (RSA-2048) and of the
// responder key, through miekg/pkcs11 alone on as many sessions as the
// store has. The issue's goal holds issuances to half the issuer key's
// rate; with an ECDSA responder the two signatures of an issuance cost
// less than two of those, and their pair rate (1/(1/issuer + 1/responder))
// is the fairer bound. docs/benchmarks.md has the figures.
func BenchmarkIssueAPI(b *testing.B) {
	for _, rc := range []struct {
		name string
		alg  hsm.Algorithm
	}{{"rsa-responder", hsm.RSA2048}, {"ecdsa-responder", hsm.ECDSAP256}} {
		b.Run(rc.name, func(b *testing.B) { benchIssueAPI(b, rc.alg) })
	}
}

func benchIssueAPI(b *testing.B, responder hsm.Algorithm) {
	keys, tk := openSoftHSM(b)
	slot := &presignerSlot{}
	// The identity cache at its production default (apitest turns it off so
	// that tests see revocations at once).
	s := apitest.New(b, apitest.Options{Keys: keys, Config: api.Config{IdentityCacheTTL: 5 * time.Second},
		Listener: slot, ResponderAlgorithm: responder})
	p := startPresigner(b, s, slot)
	cert, _ := s.Enrol(b, "counter", "302015", "bench", 24*time.Hour)
	client := s.Client(&cert)
	body := issueBody("authentication", "", "", "302015")
	var n atomic.Int64
	b.Run("api", func(b *testing.B) {
		b.SetParallelism(2)
		b.ResetTimer()
		cpu := startCPU(b)
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
		// Every issuance's first OCSP response, signed and stored.
		if err := p.Drain(context.Background()); err != nil {
			b.Fatal(err)
		}
		// The share of signing calls (the setup's included) that ran on
		// hsm's signing threads rather than on the goroutine's own.
		st := keys.Stats()
		b.ReportMetric(float64(st.ThreadSignatures)/float64(st.ThreadSignatures+st.DirectSignatures), "threaded-share")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "issuances/s")
		b.ReportMetric(cpu.perOp(b.N), "cpu-ms/op")
	})
	if got, want := p.Cache().Len(), int(n.Load()); got < want {
		b.Errorf("%d OCSP responses cached after %d issuances", got, want)
	}
	// The raw rates: miekg/pkcs11 alone, on as many sessions as the store
	// may open, not through hsm's signer; of the issuer key, and of the
	// responder key, which signs the other half of each issuance.
	issuer := s.Keyring.Current[0]
	benchRawSign(b, "raw-sign", tk, issuer.Issuer.KeyRef, issuer.Cert.PublicKey)
	rk := s.Keyring.Responders[issuer.Issuer.ID]
	benchRawSign(b, "raw-responder-sign", tk, rk.Responder.KeyRef, rk.Cert.PublicKey)
}

// benchRawSign measures the raw signing rate of the token's key label
// (whose public key is pub), after checking one of its signatures.
func benchRawSign(b *testing.B, name string, tk *softhsmtest.Token, label string, pub crypto.PublicKey) {
	raw := tk.RawSigner(b, label, maxSessions)
	digest := sha256.Sum256([]byte("bench"))
	sig, err := raw.SignSHA256(digest[:])
	if err != nil {
		b.Fatal(err)
	}
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	case *ecdsa.PublicKey:
		half := len(sig) / 2
		if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:half]), new(big.Int).SetBytes(sig[half:])) {
			err = errors.New("ECDSA signature does not verify")
		}
	default:
		err = fmt.Errorf("%T key", pub)
	}
	if err != nil {
		b.Fatalf("raw signature by %s: %v", label, err)
	}
	b.Run(name, func(b *testing.B) {
		b.SetParallelism(2)
		b.ResetTimer()
		cpu := startCPU(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := raw.SignSHA256(digest[:]); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signatures/s")
		b.ReportMetric(cpu.perOp(b.N), "cpu-ms/op")
	})
}

// processCPU measures the CPU time (user and system, every thread, cgo
// included) the benchmark process spends: the server, its SoftHSM2 token
// and the test's own TLS clients alike. Unlike requests per second, it
// hardly moves with what else the machine runs.
type processCPU struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) processCPU { return processCPU{b: b, start: cpuTime(b)} }

// perOp is the CPU time since start per operation, in milliseconds.
func (c processCPU) perOp(n int) float64 {
	return float64(cpuTime(c.b)-c.start) / float64(time.Millisecond) / float64(n)
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
