package store

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// InsertIssuer records a new issuer generation with its audit entry (Subject
// defaults to the issuer ID). A duplicate ID, or a second issuer of the same
// type and generation, is ca.ErrConflict.
func (s *Store) InsertIssuer(ctx context.Context, is ca.Issuer, e audit.Entry) error {
	if is.ID == "" || is.KeyRef == "" || is.CreatedAt.IsZero() {
		return fmt.Errorf("inserting issuer: %w: issuer needs an ID, a key reference and a creation time", ca.ErrInvalid)
	}
	typ, ok := certTypeName(is.Type)
	if !ok {
		return fmt.Errorf("inserting issuer %s: %w: certificate type %v", is.ID, ca.ErrInvalid, is.Type)
	}
	cert, err := x509.ParseCertificate(is.CertDER)
	if err != nil {
		return fmt.Errorf("inserting issuer %s: %w: certificate: %v", is.ID, ca.ErrInvalid, err)
	}
	if len(cert.SubjectKeyId) == 0 {
		return fmt.Errorf("inserting issuer %s: %w: certificate has no subject key identifier", is.ID, ca.ErrInvalid)
	}
	if e.Subject == "" {
		e.Subject = is.ID
	}
	return s.writeAudited(ctx, "inserting issuer "+is.ID, func(tx *sqlx.Tx, c *chain) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO issuers (id, cert_type, generation, key_ref, certificate, ski, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)`), is.ID, typ, is.Generation, is.KeyRef, is.CertDER, cert.SubjectKeyId, dbTime(is.CreatedAt))
		if err != nil {
			return s.classify(err)
		}
		return c.add(e)
	})
}

type issuerRow struct {
	ID         string    `db:"id"`
	CertType   string    `db:"cert_type"`
	Generation int       `db:"generation"`
	KeyRef     string    `db:"key_ref"`
	CertDER    []byte    `db:"certificate"`
	CreatedAt  time.Time `db:"created_at"`
}

func (row issuerRow) issuer() (ca.Issuer, error) {
	typ, err := ca.ParseCertType(row.CertType)
	if err != nil {
		return ca.Issuer{}, fmt.Errorf("issuer %s: %w", row.ID, err)
	}
	return ca.Issuer{
		ID: row.ID, Type: typ, Generation: row.Generation, KeyRef: row.KeyRef,
		CertDER: row.CertDER, CreatedAt: row.CreatedAt.UTC(),
	}, nil
}

const issuerColumns = "id, cert_type, generation, key_ref, certificate, created_at"

// Issuers lists every issuer generation, by type and generation.
func (s *Store) Issuers(ctx context.Context) ([]ca.Issuer, error) {
	var rows []issuerRow
	if err := s.db.SelectContext(ctx, &rows, "SELECT "+issuerColumns+" FROM issuers ORDER BY cert_type, generation"); err != nil {
		return nil, s.fail("listing issuers", err)
	}
	out := make([]ca.Issuer, 0, len(rows))
	for _, row := range rows {
		is, err := row.issuer()
		if err != nil {
			return nil, fmt.Errorf("listing issuers: %w", err)
		}
		out = append(out, is)
	}
	return out, nil
}

// Issuer finds an issuer by ID: ca.ErrNotFound if none.
func (s *Store) Issuer(ctx context.Context, id string) (ca.Issuer, error) {
	var row issuerRow
	if err := s.db.GetContext(ctx, &row, s.q("SELECT "+issuerColumns+" FROM issuers WHERE id = ?"), id); err != nil {
		return ca.Issuer{}, s.fail("reading issuer "+id, err)
	}
	return row.issuer()
}

// Responder is a delegated OCSP responder certificate of an issuer (RFC 6960
// section 4.2.2.2) and the key store label of its key.
type Responder struct {
	ID        string
	IssuerID  string
	KeyRef    string
	CertDER   []byte
	NotAfter  time.Time
	CreatedAt time.Time
}

// InsertResponder records a responder certificate with its audit entry
// (Subject defaults to the responder ID). An unknown issuer is
// ca.ErrNotFound; a duplicate ID is ca.ErrConflict.
func (s *Store) InsertResponder(ctx context.Context, r Responder, e audit.Entry) error {
	return s.insertResponder(ctx, r, nil, e)
}

// ReplaceResponder records r as the renewal of the issuer's newest
// responder, replaces (an ID), with its audit entry. If the issuer's newest
// responder is another by then (a second node renewed it first), nothing is
// written and the error wraps ca.ErrConflict. The check and the insert are
// one transaction, serialised with every other write by the audit chain.
func (s *Store) ReplaceResponder(ctx context.Context, r Responder, replaces string, e audit.Entry) error {
	return s.insertResponder(ctx, r, &replaces, e)
}

func (s *Store) insertResponder(ctx context.Context, r Responder, replaces *string, e audit.Entry) error {
	if r.ID == "" || r.IssuerID == "" || r.KeyRef == "" || len(r.CertDER) == 0 || r.NotAfter.IsZero() || r.CreatedAt.IsZero() {
		return fmt.Errorf("inserting responder: %w: every field is required", ca.ErrInvalid)
	}
	if e.Subject == "" {
		e.Subject = r.ID
	}
	return s.writeAudited(ctx, "inserting responder "+r.ID, func(tx *sqlx.Tx, c *chain) error {
		if replaces != nil {
			var newest string
			err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM ocsp_responders WHERE issuer_id = ?
ORDER BY created_at DESC, id LIMIT 1`), r.IssuerID).Scan(&newest)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return s.classify(err)
			}
			if newest != *replaces {
				return fmt.Errorf("%w: the newest responder of %s is %q, not %q", ca.ErrConflict, r.IssuerID, newest, *replaces)
			}
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO ocsp_responders (id, issuer_id, key_ref, certificate, not_after, created_at)
VALUES (?, ?, ?, ?, ?, ?)`), r.ID, r.IssuerID, r.KeyRef, r.CertDER, dbTime(r.NotAfter), dbTime(r.CreatedAt))
		if err != nil {
			return s.classify(err)
		}
		return c.add(e)
	})
}

// NewestResponders is each issuer's newest responder among rs (as
// Responders lists them, newest first), by issuer ID.
func NewestResponders(rs []Responder) map[string]Responder {
	out := map[string]Responder{}
	for _, r := range rs {
		if _, seen := out[r.IssuerID]; !seen {
			out[r.IssuerID] = r
		}
	}
	return out
}

// Responders lists every responder certificate, newest first.
func (s *Store) Responders(ctx context.Context) ([]Responder, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT id, issuer_id, key_ref, certificate, not_after, created_at FROM ocsp_responders ORDER BY created_at DESC, id")
	if err != nil {
		return nil, s.fail("listing responders", err)
	}
	defer rows.Close()
	var out []Responder
	for rows.Next() {
		var r Responder
		if err := rows.Scan(&r.ID, &r.IssuerID, &r.KeyRef, &r.CertDER, &r.NotAfter, &r.CreatedAt); err != nil {
			return nil, s.fail("listing responders", err)
		}
		r.NotAfter, r.CreatedAt = r.NotAfter.UTC(), r.CreatedAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("listing responders", err)
	}
	return out, nil
}
