package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jpkica/jpkica/ca"
)

// UpsertOCSP stores DER OCSP responses (each identified as cfssl does, by
// serial and the issuer's key identifier), replacing the ones before, in
// one transaction. A response for an unknown certificate is ca.ErrNotFound,
// and then none is stored.
//
// With SQLite it queues behind this process's other writers. Written past
// them, it met their lock inside SQLite, whose busy handler sleeps in the C
// call, holding one of Go's Ps, and issuance kept fewer CPUs busy
// (docs/benchmarks.md, issuance through the /v1 API, session 3).
func (s *Store) UpsertOCSP(ctx context.Context, rs ...ca.OCSPResponse) error {
	for _, r := range rs {
		if r.Serial.IsZero() || len(r.AKI) == 0 || len(r.Body) == 0 {
			return fmt.Errorf("storing OCSP responses: %w: serial, AKI and body are required", ca.ErrInvalid)
		}
	}
	step := fmt.Sprintf("storing %d OCSP responses", len(rs))
	if len(rs) == 1 {
		step = "storing OCSP response for " + rs[0].Serial.Hex()
	}
	return s.write(ctx, step, func(tx *sqlx.Tx) error {
		for _, r := range rs {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO ocsp_responses (serial_number, authority_key_identifier, body, expiry)
VALUES (?, ?, ?, ?)
ON CONFLICT (serial_number, authority_key_identifier) DO UPDATE SET body = excluded.body, expiry = excluded.expiry`),
				r.Serial.Decimal(), hex.EncodeToString(r.AKI), r.Body, nullTime(r.Expiry)); err != nil {
				return fmt.Errorf("%s: %w", r.Serial.Hex(), s.classify(err))
			}
		}
		return nil
	})
}

// OCSP returns the stored DER OCSP response and its expiry: ca.ErrNotFound if
// there is none.
func (s *Store) OCSP(ctx context.Context, serial ca.Serial, aki []byte) ([]byte, time.Time, error) {
	var (
		body   []byte
		expiry sql.NullTime
	)
	err := s.db.QueryRowContext(ctx, s.q("SELECT body, expiry FROM ocsp_responses WHERE serial_number = ? AND authority_key_identifier = ?"),
		serial.Decimal(), hex.EncodeToString(aki)).Scan(&body, &expiry)
	if err != nil {
		return nil, time.Time{}, s.fail("reading OCSP response for "+serial.Hex(), err)
	}
	if !expiry.Valid {
		return body, time.Time{}, nil
	}
	return body, expiry.Time.UTC(), nil
}

// NextCRLNumber allocates the next CRL number of an issuer's partition
// (partition "" for the full CRL): 1 the first time, then strictly
// increasing, across processes and nodes (one atomic upsert).
func (s *Store) NextCRLNumber(ctx context.Context, issuerID, partition string) (*big.Int, error) {
	if issuerID == "" {
		return nil, fmt.Errorf("allocating CRL number: %w: no issuer", ca.ErrInvalid)
	}
	step := fmt.Sprintf("allocating CRL number for %s/%s", issuerID, partition)
	if s.dialect == SQLite {
		// One statement is atomic, but queue behind this process's writers.
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	var n int64
	err := s.db.QueryRowContext(ctx, s.q(`INSERT INTO crl_numbers (issuer_id, "partition", number, updated_at)
VALUES (?, ?, 1, CURRENT_TIMESTAMP)
ON CONFLICT (issuer_id, "partition") DO UPDATE SET number = crl_numbers.number + 1, updated_at = CURRENT_TIMESTAMP
RETURNING number`), issuerID, partition).Scan(&n)
	if err != nil {
		return nil, s.fail(step, err)
	}
	return big.NewInt(n), nil
}
