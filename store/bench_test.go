package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"testing"
	"time"

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
