package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// BenchmarkBulkInsert measures seeding: each op is one BulkInsert of
// seedBatch synthetic records into the same, growing store, so
// -benchtime=100x stores 1,000,000 rows. It reports rows/s.
//
//	go test ./store -run '^$' -bench BulkInsert -benchtime=100x -timeout 60m
//
// (with JPKICA_TEST_POSTGRES_DSN set for the PostgreSQL half).
func BenchmarkBulkInsert(b *testing.B) {
	b.Run("SQLite", func(b *testing.B) { benchBulkInsert(b, sqliteDSNs) })
	b.Run("PostgreSQL", func(b *testing.B) { benchBulkInsert(b, postgresDSNs) })
}

const seedBatch = 10000

func benchBulkInsert(b *testing.B, dsn newDSN) {
	s := mustOpen(b, dsn(b))
	ctx := context.Background()
	// A pool of 1 KB random "certificates"; rows reuse them.
	ders := make([][]byte, 64)
	for i := range ders {
		ders[i] = make([]byte, 1024)
		rand.Read(ders[i])
	}
	f := testFixtures(b)
	munis := []string{"302015", "131016", "271004", "011002", "401307", "232033"}
	batch := make([]ca.Record, seedBatch)
	rows := 0
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range batch {
			n := i*seedBatch + j
			var sn [19]byte
			rand.Read(sn[:])
			sn[0] |= 0x40 // keep 19 significant bytes, positive
			r := ca.Record{
				Serial:       ca.SerialFromBytes(sn[:]),
				IssuerID:     f.issuer.ID,
				AKI:          f.ski,
				Type:         ca.Authentication,
				CardID:       fmt.Sprintf("card-%09d", n),
				ResidentID:   fmt.Sprintf("resident-%09d", n),
				Municipality: munis[n%len(munis)],
				NotBefore:    t0,
				NotAfter:     t0.AddDate(5, 0, 0),
				IssuedAt:     t0,
				Status:       ca.Good,
				DER:          ders[n%len(ders)],
				Synthetic:    true,
			}
			if n%10 == 0 {
				r.Status, r.Reason, r.RevokedAt = ca.Revoked, ca.CessationOfOperation, t0.AddDate(1, 0, 0)
			}
			batch[j] = r
		}
		b.StartTimer()
		start := time.Now()
		if err := s.BulkInsert(ctx, batch); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		rows += len(batch)
	}
	b.StopTimer()
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(rows), "rows")
}

// BenchmarkInsertCertificate measures one issuance's transaction as the
// API makes it: the certificate superseding the card's previous one (there
// is none), its idempotency key and its audit entry, in a store that grows
// by one row per op.
//
//	go test ./store -run '^$' -bench InsertCertificate -benchtime=20000x
func BenchmarkInsertCertificate(b *testing.B) {
	b.Run("SQLite", func(b *testing.B) { benchInsertCertificate(b, sqliteDSNs) })
	b.Run("PostgreSQL", func(b *testing.B) { benchInsertCertificate(b, postgresDSNs) })
}

func benchInsertCertificate(b *testing.B, dsn newDSN) {
	s := mustOpen(b, dsn(b))
	ctx := context.Background()
	n := int64(0)
	for b.Loop() {
		n++
		in := issuance(record(b, big.NewInt(n), fmt.Sprintf("card-%d", n)))
		in.IdempotencyKey, in.ClientID, in.RequestHash = fmt.Sprintf("key-%d", n), "counter:302015:bench", []byte("hash")
		if _, err := s.InsertCertificate(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertCertificateParallel measures issuance transactions under
// concurrent load: 8 goroutines per CPU (16 on 2 vCPUs), each issuing onto
// its own cards as BenchmarkInsertCertificate does, through one Store (on
// PostgreSQL, as many connections as goroutines). It reports issuances/s.
// This is the store alone, with no signing and no API.
//
//	go test ./store -run '^$' -bench InsertCertificateParallel -benchtime=20000x
func BenchmarkInsertCertificateParallel(b *testing.B) {
	issue := func(ctx context.Context, s *Store, i int64) error {
		in := issuance(record(b, big.NewInt(i), fmt.Sprintf("card-%d", i)))
		in.IdempotencyKey, in.ClientID, in.RequestHash = fmt.Sprintf("key-%d", i), "counter:302015:bench", []byte("hash")
		_, err := s.InsertCertificate(ctx, in)
		return err
	}
	b.Run("SQLite", func(b *testing.B) { benchParallel(b, sqliteDSNs, "issuances/s", issue) })
	b.Run("PostgreSQL", func(b *testing.B) { benchParallel(b, postgresDSNs, "issuances/s", issue) })
}

// BenchmarkAppendAuditParallel measures standalone audit entries (CRL and
// OCSP signing records) under the same concurrent load: transactions that
// move no change_seq. It reports entries/s.
//
//	go test ./store -run '^$' -bench AppendAuditParallel -benchtime=20000x
func BenchmarkAppendAuditParallel(b *testing.B) {
	appendEntry := func(ctx context.Context, s *Store, i int64) error {
		return s.AppendAudit(ctx, audit.Entry{Time: t0, Actor: "system:ocsp", Action: audit.ActionOCSPSign, Subject: fmt.Sprintf("responder-%d", i%4)})
	}
	b.Run("SQLite", func(b *testing.B) { benchParallel(b, sqliteDSNs, "entries/s", appendEntry) })
	b.Run("PostgreSQL", func(b *testing.B) { benchParallel(b, postgresDSNs, "entries/s", appendEntry) })
}

// benchParallel runs op from 8 goroutines per CPU through one Store, with
// i counting from 1 across them, and reports ops a second as unit.
func benchParallel(b *testing.B, dsn newDSN, unit string, op func(ctx context.Context, s *Store, i int64) error) {
	s := mustOpen(b, dsn(b))
	ctx := context.Background()
	var n atomic.Int64
	start := time.Now()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(ctx, s, n.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), unit)
}
