package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
)

// The CRL updater reads the store through crl's interfaces.
var _ crl.Store = (*Store)(nil)

// CRLPartitions lists, in order, the municipalities in which an issuer has
// revoked or held certificates. It walks the partial index on revoked
// certificates one municipality at a time (a loose index scan), so it costs
// one index seek per municipality, not one row per revoked certificate.
func (s *Store) CRLPartitions(ctx context.Context, issuerID string) ([]string, error) {
	next := s.q(`SELECT MIN(municipality) FROM certificates
WHERE ca_label = ? AND status = 'revoked' AND municipality > ?`)
	var out []string
	last := ""
	for {
		var m sql.NullString
		if err := s.db.QueryRowContext(ctx, next, issuerID, last).Scan(&m); err != nil {
			return nil, s.fail("listing CRL partitions of "+issuerID, err)
		}
		if !m.Valid {
			return out, nil
		}
		out = append(out, m.String)
		last = m.String
	}
}

// CRLChangeMark is the change_seq of the last committed certificate change
// (0 for an empty store). Changes commit in change_seq order (see the package
// documentation), so every change after a mark has a greater change_seq.
func (s *Store) CRLChangeMark(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	if err := s.db.QueryRowContext(ctx, "SELECT MAX(change_seq) FROM certificates").Scan(&n); err != nil {
		return 0, s.fail("reading the change mark", err)
	}
	return n.Int64, nil
}

// RevokedChangesSince streams, in serial order, the revoked (and held)
// certificates of an issuer whose state changed after change_seq afterSeq and
// that expire after notExpiredAt: the input of a delta CRL. municipality ""
// means every partition. An error from fn stops the walk and is returned.
func (s *Store) RevokedChangesSince(ctx context.Context, issuerID, municipality string, afterSeq int64, notExpiredAt time.Time,
	fn func(serial ca.Serial, revokedAt time.Time, reason ca.Reason) error) error {
	query := `SELECT serial_hex, revoked_at, reason FROM certificates
WHERE change_seq > ? AND ca_label = ? AND status = 'revoked' AND expiry > ?`
	args := []any{afterSeq, issuerID, dbTime(notExpiredAt)}
	if municipality != "" {
		query += " AND municipality = ?"
		args = append(args, municipality)
	}
	query += " ORDER BY serial_hex"
	return s.streamRevoked(ctx, "listing revoked changes", query, args, fn)
}

func (s *Store) streamRevoked(ctx context.Context, step, query string, args []any,
	fn func(serial ca.Serial, revokedAt time.Time, reason ca.Reason) error) error {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return s.fail(step, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k      string
			at     time.Time
			reason int
		)
		if err := rows.Scan(&k, &at, &reason); err != nil {
			return s.fail(step, err)
		}
		sn, err := parseSerialKey(k)
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		if err := fn(sn, at.UTC(), ca.Reason(reason)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail(step, err)
	}
	return nil
}
