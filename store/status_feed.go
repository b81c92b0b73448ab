package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jpkica/jpkica/ca"
)

// This file is what the OCSP pre-signer and responder read: the status of
// every certificate in change_seq order (a follower's feed), the status of one
// certificate with its change_seq, and the newest change_seq.

// statusFeedColumns are read by scanStatus: only what an OCSP response needs.
const statusFeedColumns = "change_seq, serial_hex, authority_key_identifier, ca_label, cert_type, status, reason, expiry, revoked_at"

type statusScanner interface {
	Scan(dest ...any) error
}

// scanStatus reads one row of statusFeedColumns into a Record that has only
// Serial, IssuerID, AKI, Type, Status, Reason, RevokedAt and NotAfter set.
func scanStatus(sc statusScanner) (int64, ca.Record, error) {
	var row certRow
	var seq int64
	if err := sc.Scan(&seq, &row.SerialHex, &row.AKI, &row.IssuerID, &row.CertType, &row.Status, &row.Reason,
		&row.Expiry, &row.RevokedAt); err != nil {
		return 0, ca.Record{}, err
	}
	r, err := row.record()
	if err != nil {
		return 0, ca.Record{}, err
	}
	return seq, r, nil
}

// StatusFeed streams every certificate whose change_seq is greater than
// afterSeq, in change_seq order, one row at a time (nothing is collected in
// memory). Each Record carries only Serial, IssuerID, AKI, Type, Status,
// Reason, RevokedAt and NotAfter; seq is its change_seq. Because change_seq
// follows commit order (see the package doc), a follower that remembers the
// last seq it saw and asks again misses nothing. An error from fn stops the
// walk and is returned as is.
func (s *Store) StatusFeed(ctx context.Context, afterSeq int64, fn func(seq int64, r ca.Record) error) error {
	const step = "streaming certificate statuses"
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+statusFeedColumns+" FROM certificates WHERE change_seq > ? ORDER BY change_seq"), afterSeq)
	if err != nil {
		return s.fail(step, err)
	}
	defer rows.Close()
	for rows.Next() {
		seq, r, err := scanStatus(rows)
		if err != nil {
			return s.fail(step, err)
		}
		if err := fn(seq, r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail(step, err)
	}
	return nil
}

// StatusOf returns one certificate's status (the Record fields StatusFeed
// fills) and its change_seq: ca.ErrNotFound if the store never saw the serial.
func (s *Store) StatusOf(ctx context.Context, serial ca.Serial) (int64, ca.Record, error) {
	row := s.db.QueryRowContext(ctx, s.q("SELECT "+statusFeedColumns+" FROM certificates WHERE serial_hex = ?"), serialKey(serial))
	seq, r, err := scanStatus(row)
	if err != nil {
		return 0, ca.Record{}, s.fail("reading status of "+serial.Hex(), err)
	}
	return seq, r, nil
}

// NewestChange is the newest change_seq and the certificate it changed (0
// and a zero serial for an empty store): a follower's mark, which it checks
// is still there (a failover to a standby that lacked the newest
// transactions takes it away).
func (s *Store) NewestChange(ctx context.Context) (int64, ca.Serial, error) {
	return s.lastChange(ctx, "reading the newest change", "certificates")
}

// lastChange is the change_seq and certificate of the last row of from
// (with its WHERE clause, if any) in change_seq order; 0 and a zero serial
// when it has none.
func (s *Store) lastChange(ctx context.Context, step, from string) (int64, ca.Serial, error) {
	var (
		seq int64
		k   string
	)
	err := s.db.QueryRowContext(ctx, "SELECT change_seq, serial_hex FROM "+from+" ORDER BY change_seq DESC LIMIT 1").Scan(&seq, &k)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, ca.Serial{}, nil
	case err != nil:
		return 0, ca.Serial{}, s.fail(step, err)
	}
	sn, err := parseSerialKey(k)
	if err != nil {
		return 0, ca.Serial{}, fmt.Errorf("%s: %w", step, err)
	}
	return seq, sn, nil
}

// OCSPResponses streams the stored OCSP responses of certificates that have
// not expired at now, with each certificate's current status and change_seq
// (the Record fields StatusFeed fills): what a responder warms its cache
// from, checking that each response still says what the store says. Rows
// are read one at a time. An error from fn stops the walk and is returned
// as is.
func (s *Store) OCSPResponses(ctx context.Context, now time.Time, fn func(seq int64, r ca.Record, body []byte) error) error {
	const step = "streaming OCSP responses"
	cols := "c." + strings.ReplaceAll(statusFeedColumns, ", ", ", c.")
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+cols+`, o.body FROM ocsp_responses o
JOIN certificates c ON c.serial_number = o.serial_number AND c.authority_key_identifier = o.authority_key_identifier
WHERE c.expiry > ?`), dbTime(now))
	if err != nil {
		return s.fail(step, err)
	}
	defer rows.Close()
	for rows.Next() {
		var body []byte
		seq, r, err := scanStatus(rowWithBody{rows, &body})
		if err != nil {
			return s.fail(step, err)
		}
		if err := fn(seq, r, body); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail(step, err)
	}
	return nil
}

// rowWithBody scans statusFeedColumns and then one more column.
type rowWithBody struct {
	sc   statusScanner
	body *[]byte
}

func (r rowWithBody) Scan(dest ...any) error { return r.sc.Scan(append(dest, r.body)...) }
