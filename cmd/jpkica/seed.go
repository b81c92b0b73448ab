package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/jpkica/jpkica/ca"
)

// seedBatch is how many synthetic records go to the store at once.
const seedBatch = 10000

// errRealStore refuses to seed a store that holds real certificates.
var errRealStore = errors.New("the store holds real certificates; dev seed only fills scratch stores")

func cmdSeed(ctx context.Context, args []string, stdout io.Writer, logger *slog.Logger) error {
	fs, configPath := newFlags("dev seed")
	n := fs.Int("certificates", 0, "number of synthetic certificates (both types)")
	revoked := fs.Float64("revoked", 0.1, "fraction revoked or held")
	municipalities := fs.Int("municipalities", 50, "number of municipalities to spread them over")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n <= 0 || *revoked < 0 || *revoked > 1 || *municipalities < 1 || *municipalities > 99999 {
		return fmt.Errorf("%w: dev seed needs --certificates > 0, --revoked in [0,1], --municipalities in [1,99999]", errUsage)
	}
	d, err := open(ctx, *configPath, logger, withStore)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg, st := d.cfg, d.store
	real, err := st.HasRealCertificates(ctx)
	if err != nil {
		return fmt.Errorf("checking the store: %w", err)
	}
	if real {
		return errRealStore
	}
	if cfg.Embedded() {
		if err := d.openKeys(ctx); err != nil {
			return err
		}
		if err := bootstrapEmbedded(ctx, d); err != nil {
			return err
		}
	}
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return fmt.Errorf("listing issuers: %w", err)
	}
	var cardIssuers []ca.Issuer
	for _, is := range issuers {
		if is.Type == ca.Signature || is.Type == ca.Authentication {
			cardIssuers = append(cardIssuers, is)
		}
	}
	if len(cardIssuers) == 0 {
		return errors.New("the store has no issuers: run `jpkica init` first")
	}

	gen, err := newSeeder(cardIssuers, municipalityCodes(cfg.Municipalities, *municipalities), *revoked, time.Now())
	if err != nil {
		return err
	}
	start := time.Now()
	batches := make(chan []ca.Record, runtime.GOMAXPROCS(0))
	g, gctx := errgroup.WithContext(ctx)
	nb := (*n + seedBatch - 1) / seedBatch
	next := make(chan int)
	g.Go(func() error {
		defer close(next)
		for i := 0; i < nb; i++ {
			select {
			case next <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	var producers sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		producers.Add(1)
		g.Go(func() error {
			defer producers.Done()
			for i := range next {
				size := min(seedBatch, *n-i*seedBatch)
				recs, err := gen.batch(i, size)
				if err != nil {
					return err
				}
				select {
				case batches <- recs:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	go func() {
		producers.Wait()
		close(batches)
	}()
	g.Go(func() error {
		written, last := 0, time.Now()
		for recs := range batches {
			if err := st.BulkInsert(gctx, recs); err != nil {
				return fmt.Errorf("storing synthetic certificates: %w", err)
			}
			written += len(recs)
			if time.Since(last) > 5*time.Second || written == *n {
				last = time.Now()
				el := time.Since(start)
				fmt.Fprintf(stdout, "seeded %d/%d certificates in %s (%.0f/s)\n", written, *n, el.Round(time.Second), float64(written)/el.Seconds())
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	logger.Info("dev seed done", "certificates", *n, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// municipalityCodes picks m codes: the configured ones first, then synthetic
// codes in the unused 99xxxx range.
func municipalityCodes[V any](configured map[string]V, m int) []string {
	codes := make([]string, 0, m)
	for c := range configured {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	if len(codes) > m {
		codes = codes[:m]
	}
	for i := 1; len(codes) < m; i++ {
		codes = append(codes, fmt.Sprintf("99%04d", i))
	}
	return codes
}

// seeder makes synthetic records. Their bodies are real X.509 certificates
// with the record's serial and validity, signed by a throwaway ECDSA key: they
// exist to give OCSP and CRL work realistic sizes, not to be verified.
type seeder struct {
	issuers        []ca.Issuer
	akis           [][]byte
	municipalities []string
	revoked        float64
	now            time.Time
	key            *ecdsa.PrivateKey
	parent         *x509.Certificate
}

func newSeeder(issuers []ca.Issuer, municipalities []string, revoked float64, now time.Time) (*seeder, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("throwaway seed key: %w", err)
	}
	s := &seeder{issuers: issuers, municipalities: municipalities, revoked: revoked, now: now, key: key,
		parent: &x509.Certificate{Subject: pkix.Name{CommonName: "jpkica synthetic seed (not a real issuer)"}}}
	for _, is := range issuers {
		c, err := x509.ParseCertificate(is.CertDER)
		if err != nil {
			return nil, fmt.Errorf("issuer %s: %w", is.ID, err)
		}
		s.akis = append(s.akis, c.SubjectKeyId)
	}
	return s, nil
}

var seedReasons = []ca.Reason{ca.AffiliationChanged, ca.AffiliationChanged, ca.Superseded, ca.CessationOfOperation, ca.KeyCompromise, ca.Unspecified}

func (s *seeder) batch(index, size int) ([]ca.Record, error) {
	rng := mrand.New(mrand.NewPCG(uint64(index), uint64(s.now.UnixNano())))
	recs := make([]ca.Record, size)
	for i := range recs {
		serial, err := ca.NewSerial(rand.Reader)
		if err != nil {
			return nil, err
		}
		k := rng.IntN(len(s.issuers))
		is := s.issuers[k]
		nb := s.now.Add(-time.Duration(rng.Int64N(int64(4 * 365 * 24 * time.Hour)))).Truncate(time.Second)
		na := nb.AddDate(5, 0, 0)
		id := index*seedBatch + i
		tmpl := &x509.Certificate{
			SerialNumber: serial.Big(),
			Subject:      pkix.Name{Country: []string{"JP"}, CommonName: fmt.Sprintf("SYNTHETIC%014d", id)},
			NotBefore:    nb,
			NotAfter:     na,
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, s.parent, &s.key.PublicKey, s.key)
		if err != nil {
			return nil, fmt.Errorf("synthetic certificate: %w", err)
		}
		r := ca.Record{
			Serial:       serial,
			IssuerID:     is.ID,
			AKI:          s.akis[k],
			Type:         is.Type,
			CardID:       fmt.Sprintf("SYN-CARD-%d", id/2),
			ResidentID:   fmt.Sprintf("SYN-RES-%d", id/2),
			Municipality: s.municipalities[rng.IntN(len(s.municipalities))],
			NotBefore:    nb,
			NotAfter:     na,
			IssuedAt:     nb,
			Status:       ca.Good,
			DER:          der,
			Synthetic:    true,
		}
		if rng.Float64() < s.revoked {
			r.RevokedAt = nb.Add(time.Duration(rng.Int64N(int64(s.now.Sub(nb))))).Truncate(time.Second)
			if rng.IntN(10) == 0 {
				r.Status, r.Reason = ca.OnHold, ca.CertificateHold
			} else {
				r.Status, r.Reason = ca.Revoked, seedReasons[rng.IntN(len(seedReasons))]
			}
		}
		recs[i] = r
	}
	return recs, nil
}
