package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// The reads of the administrators' console (package console). Each is one
// indexed query: none walks the certificates table or the whole audit log.

// AuditTail returns the newest limit audit entries, newest first.
func (s *Store) AuditTail(ctx context.Context, limit int) ([]audit.Entry, error) {
	if limit <= 0 || limit > 1000 {
		return nil, fmt.Errorf("reading audit tail: %w: limit %d out of 1..1000", ca.ErrInvalid, limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+auditColumns+" FROM audit_log ORDER BY id DESC LIMIT ?"), limit)
	if err != nil {
		return nil, s.fail("reading audit tail", err)
	}
	return s.collectAudit(rows)
}

// AuditBySubject returns up to limit audit entries about subject (a
// serial in hex, a resident or card ID), oldest first.
func (s *Store) AuditBySubject(ctx context.Context, subject string, limit int) ([]audit.Entry, error) {
	if limit <= 0 || limit > 1000 {
		return nil, fmt.Errorf("reading audit entries of %s: %w: limit %d out of 1..1000", subject, ca.ErrInvalid, limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+auditColumns+" FROM audit_log WHERE subject = ? ORDER BY id LIMIT ?"),
		subject, limit)
	if err != nil {
		return nil, s.fail("reading audit entries by subject", err)
	}
	return s.collectAudit(rows)
}

// collectAudit reads every entry rows holds.
func (s *Store) collectAudit(rows *sql.Rows) ([]audit.Entry, error) {
	out := []audit.Entry{}
	err := s.auditRows(rows, func(e audit.Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ActivityCount is how many entries of one action were written for one
// municipality's certificates.
type ActivityCount struct {
	Municipality string // "" when the certificate is not on record
	Action       audit.Action
	Count        int64
}

// activityActions are the certificate actions the console counts.
var activityActions = []any{audit.ActionCertificateIssue, audit.ActionCertificateRevoke,
	audit.ActionCertificateSupersede, audit.ActionCertificateHold}

// AuditActivity counts the certificate issuances, revocations, supersessions
// and holds recorded in [from, to), by municipality and action. It reads
// the entries of that interval through the index on audit_log(time) and
// finds each one's certificate by its serial (the unique index): the
// certificates table is never scanned.
func (s *Store) AuditActivity(ctx context.Context, from, to time.Time) ([]ActivityCount, error) {
	// Subjects are Serial.Hex (no leading zeros); serial_hex is 40 digits.
	pad := "substr('0000000000000000000000000000000000000000' || a.subject, -40)"
	if s.dialect == PostgreSQL {
		pad = "right(repeat('0', 40) || a.subject, 40)"
	}
	q := s.q(`SELECT COALESCE(c.municipality, ''), a.action, count(*) FROM audit_log a
		LEFT JOIN certificates c ON c.serial_hex = ` + pad + `
		WHERE a.time >= ? AND a.time < ? AND a.action IN (?, ?, ?, ?)
		GROUP BY COALESCE(c.municipality, ''), a.action ORDER BY 1, 2`)
	args := append([]any{dbTime(from), dbTime(to)}, activityActions...)
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.fail("counting today's activity", err)
	}
	defer rows.Close()
	var out []ActivityCount
	for rows.Next() {
		var c ActivityCount
		if err := rows.Scan(&c.Municipality, &c.Action, &c.Count); err != nil {
			return nil, s.fail("counting today's activity", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("counting today's activity", err)
	}
	return out, nil
}
