package store

import (
	"context"
	"database/sql"
	"encoding/hex"
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

// CRLChangeMark is the change_seq of the last committed revocation or hold,
// and the certificate it changed (0 and a zero serial when there is none):
// the changes a CRL carries. Changes commit in change_seq order (see the
// package documentation), so every revocation after a mark has a greater
// change_seq; issuances do not move the mark.
func (s *Store) CRLChangeMark(ctx context.Context) (int64, ca.Serial, error) {
	return s.lastChange(ctx, "reading the change mark", s.revocations()+" WHERE status = 'revoked'")
}

// ChangeSeqOf is the change_seq of a certificate's last change:
// ca.ErrNotFound when the store does not hold it.
func (s *Store) ChangeSeqOf(ctx context.Context, serial ca.Serial) (int64, error) {
	var seq int64
	if err := s.db.QueryRowContext(ctx, s.q("SELECT change_seq FROM certificates WHERE serial_hex = ?"), serialKey(serial)).Scan(&seq); err != nil {
		return 0, s.fail("reading the change of "+serial.Hex(), err)
	}
	return seq, nil
}

// revocations is the certificates table for a query by change_seq of
// revoked rows: on SQLite, told to use the partial index on them
// (migration 6), which its planner would not always pick.
func (s *Store) revocations() string {
	if s.dialect == SQLite {
		return "certificates INDEXED BY certificates_revocations"
	}
	return "certificates"
}

// CRLEntries streams the revoked (and held) certificates of an issuer that
// expire after notExpiredAt, in serial order: the input of a complete CRL.
// municipality "" means every partition. It is RevokedEntries with the index
// chosen on SQLite: left to itself, SQLite's planner picks the (ca_label,
// status, expiry) index and sorts every row in a temporary B-tree, in memory
// that grows with the CRL. Walking a partial index on revoked certificates
// gives the rows already in serial order, and the covering ones
// (certificates_crl, certificates_crl_partition, migration 0003) mean no
// table row is read. Revocation times come in whole seconds, as a CRL
// carries them.
func (s *Store) CRLEntries(ctx context.Context, issuerID, municipality string, notExpiredAt time.Time, fn crl.Yield) error {
	index := "certificates_crl"
	where := "ca_label = ? AND status = 'revoked' AND expiry > ?"
	args := []any{issuerID, dbTime(notExpiredAt)}
	if municipality != "" {
		index = "certificates_crl_partition"
		where = "ca_label = ? AND municipality = ? AND status = 'revoked' AND expiry > ?"
		args = []any{issuerID, municipality, dbTime(notExpiredAt)}
	}
	from := "certificates"
	if s.dialect == SQLite {
		from += " INDEXED BY " + index
	}
	return s.streamRevoked(ctx, "listing revoked certificates",
		"SELECT serial_hex, "+s.revokedAtSeconds()+", reason FROM "+from+" WHERE "+where+" ORDER BY serial_hex", args, fn)
}

// CRLChanges reports, per issuer and municipality, the last change_seq of a
// revocation or hold committed after afterSeq: which delta CRLs are behind.
func (s *Store) CRLChanges(ctx context.Context, afterSeq int64) ([]crl.Change, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT ca_label, municipality, MAX(change_seq) FROM `+s.revocations()+`
WHERE change_seq > ? AND status = 'revoked' GROUP BY ca_label, municipality ORDER BY ca_label, municipality`), afterSeq)
	if err != nil {
		return nil, s.fail("listing CRL changes", err)
	}
	defer rows.Close()
	var out []crl.Change
	for rows.Next() {
		var c crl.Change
		if err := rows.Scan(&c.Issuer, &c.Partition, &c.Seq); err != nil {
			return nil, s.fail("listing CRL changes", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("listing CRL changes", err)
	}
	return out, nil
}

// RevokedChangesSince streams, in serial order, the revoked (and held)
// certificates of an issuer whose state changed after change_seq afterSeq and
// that expire after notExpiredAt: the input of a delta CRL. municipality ""
// means every partition. Revocation times come in whole seconds. An error from
// fn stops the walk and is returned.
func (s *Store) RevokedChangesSince(ctx context.Context, issuerID, municipality string, afterSeq int64, notExpiredAt time.Time, fn crl.Yield) error {
	// By change_seq on the revocations: a delta's few rows are found by
	// sequence and sorted, instead of walking every revoked row, or every
	// issuance since the base.
	query := `SELECT serial_hex, ` + s.revokedAtSeconds() + `, reason FROM ` + s.revocations() + `
WHERE change_seq > ? AND ca_label = ? AND status = 'revoked' AND expiry > ?`
	args := []any{afterSeq, issuerID, dbTime(notExpiredAt)}
	if municipality != "" {
		query += " AND municipality = ?"
		args = append(args, municipality)
	}
	query += " ORDER BY serial_hex"
	return s.streamRevoked(ctx, "listing revoked changes", query, args, fn)
}

// revokedAtSeconds is revoked_at as whole seconds since 1970 in the
// dialect: a CRL keeps whole seconds (RFC 5280 5.1.2.6), and an integer
// skips the driver's time parsing, a third of the time per row on SQLite.
func (s *Store) revokedAtSeconds() string {
	if s.dialect == PostgreSQL {
		return "FLOOR(EXTRACT(EPOCH FROM revoked_at))::bigint"
	}
	return "unixepoch(revoked_at)"
}

// streamRevoked runs a query whose rows are (serial_hex, revoked_at in
// seconds, reason) and hands them to fn without keeping them: the serial as
// its magnitude in one reused buffer.
func (s *Store) streamRevoked(ctx context.Context, step, query string, args []any, fn crl.Yield) error {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return s.fail(step, err)
	}
	defer rows.Close()
	var (
		k      sql.RawBytes
		at     int64
		reason int
		buf    [20]byte
	)
	for rows.Next() {
		if err := rows.Scan(&k, &at, &reason); err != nil {
			return s.fail(step, err)
		}
		if len(k) != 40 {
			return fmt.Errorf("%s: serial_hex %q: %w", step, k, ca.ErrInvalid)
		}
		n, err := hex.Decode(buf[:], k)
		if err != nil {
			return fmt.Errorf("%s: serial_hex %q: %w", step, k, ca.ErrInvalid)
		}
		sn := buf[:n]
		for len(sn) > 0 && sn[0] == 0 {
			sn = sn[1:]
		}
		if len(sn) == 0 {
			return fmt.Errorf("%s: serial_hex %q is zero: %w", step, k, ca.ErrInvalid)
		}
		if err := fn(sn, time.Unix(at, 0).UTC(), ca.Reason(reason)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail(step, err)
	}
	return nil
}
