package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"

	"github.com/jpkica/jpkica/ca"
)

// UpsertOCSP stores the DER OCSP response for a certificate (identified as
// cfssl does, by serial and the issuer's key identifier), replacing the one
// before. An unknown certificate is ca.ErrNotFound.
func (s *Store) UpsertOCSP(ctx context.Context, serial ca.Serial, aki []byte, body []byte, expiry time.Time) error {
	if serial.IsZero() || len(aki) == 0 || len(body) == 0 {
		return fmt.Errorf("storing OCSP response: %w: serial, AKI and body are required", ca.ErrInvalid)
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO ocsp_responses (serial_number, authority_key_identifier, body, expiry)
VALUES (?, ?, ?, ?)
ON CONFLICT (serial_number, authority_key_identifier) DO UPDATE SET body = excluded.body, expiry = excluded.expiry`),
		serial.Decimal(), hex.EncodeToString(aki), body, nullTime(expiry))
	if err != nil {
		return s.fail("storing OCSP response for "+serial.Hex(), err)
	}
	return nil
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
