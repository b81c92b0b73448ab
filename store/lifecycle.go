package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

var _ ca.LifecycleStore = (*Store)(nil)

// InsertProxyApplication stores a proxy application with its audit entry in
// one transaction. An ID already used is ca.ErrConflict.
func (s *Store) InsertProxyApplication(ctx context.Context, app ca.ProxyApplication, e audit.Entry) error {
	if app.ID == "" || len(app.AnswerCodeHash) == 0 || len(app.Types) == 0 || app.NotBefore.IsZero() || app.CreatedAt.IsZero() {
		return fmt.Errorf("inserting proxy application: %w: incomplete application", ca.ErrInvalid)
	}
	names := make([]string, len(app.Types))
	for i, t := range app.Types {
		n, ok := certTypeName(t)
		if !ok || t == ca.Terminal {
			return fmt.Errorf("inserting proxy application: %w: type %v", ca.ErrInvalid, t)
		}
		names[i] = n
	}
	if e.Subject == "" {
		e.Subject = app.ID
	}
	return s.writeAudited(ctx, "inserting proxy application "+app.ID, func(tx *sqlx.Tx, c *chain) error {
		// No inquiry is mailed for a resident the register reported gone.
		if err := s.residentGone(ctx, tx, app.ResidentID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO proxy_applications
(id, resident_id, municipality, card_id, cert_types, answer_code_hash, not_before, created_at, created_by)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`), app.ID, app.ResidentID, app.Municipality, app.CardID, strings.Join(names, ","),
			app.AnswerCodeHash, dbTime(app.NotBefore), dbTime(app.CreatedAt), app.CreatedBy)
		if err != nil {
			return fmt.Errorf("inserting row: %w", s.classify(err))
		}
		return c.add(e)
	})
}

// ProxyApplication finds a proxy application: ca.ErrNotFound if none.
func (s *Store) ProxyApplication(ctx context.Context, id string) (ca.ProxyApplication, error) {
	var row struct {
		ID           string    `db:"id"`
		ResidentID   string    `db:"resident_id"`
		Municipality string    `db:"municipality"`
		CardID       string    `db:"card_id"`
		Types        string    `db:"cert_types"`
		Hash         []byte    `db:"answer_code_hash"`
		NotBefore    time.Time `db:"not_before"`
		CreatedAt    time.Time `db:"created_at"`
		CreatedBy    string    `db:"created_by"`
	}
	err := sqlx.GetContext(ctx, s.db, &row, s.q(`SELECT id, resident_id, municipality, card_id, cert_types, answer_code_hash,
not_before, created_at, created_by FROM proxy_applications WHERE id = ?`), id)
	if err != nil {
		return ca.ProxyApplication{}, s.fail("reading proxy application "+id, err)
	}
	app := ca.ProxyApplication{ID: row.ID, ResidentID: row.ResidentID, Municipality: row.Municipality, CardID: row.CardID,
		AnswerCodeHash: row.Hash, NotBefore: row.NotBefore.UTC(), CreatedAt: row.CreatedAt.UTC(), CreatedBy: row.CreatedBy}
	for n := range strings.SplitSeq(row.Types, ",") {
		t, err := ca.ParseCertType(n)
		if err != nil {
			return ca.ProxyApplication{}, fmt.Errorf("proxy application %s: %w", id, err)
		}
		app.Types = append(app.Types, t)
	}
	return app, nil
}

// useKey is how a reservation remembers who made it: the client and its
// idempotency key (empty when the request had none, which no retry can
// match).
func useKey(u ca.ProxyUse) string {
	if u.IdempotencyKey == "" {
		return ""
	}
	return u.ClientID + "\x00" + u.IdempotencyKey
}

// ReserveProxyUse marks one certificate type of a proxy application used,
// with its audit entry. The same client retrying with the same idempotency
// key gets created=false and no error; anybody else ca.ErrConflict.
func (s *Store) ReserveProxyUse(ctx context.Context, u ca.ProxyUse) (bool, error) {
	typ, ok := certTypeName(u.Type)
	if !ok || u.ApplicationID == "" || u.At.IsZero() {
		return false, fmt.Errorf("reserving proxy answer: %w: incomplete reservation", ca.ErrInvalid)
	}
	created := false
	err := s.writeAudited(ctx, "reserving proxy answer "+u.ApplicationID, func(tx *sqlx.Tx, c *chain) error {
		created = false
		var by string
		err := tx.QueryRowContext(ctx, s.q("SELECT used_by FROM proxy_application_uses WHERE application_id = ? AND cert_type = ?"),
			u.ApplicationID, typ).Scan(&by)
		switch {
		case err == nil:
			if k := useKey(u); k != "" && k == by {
				return nil
			}
			return fmt.Errorf("%w: the answer to proxy application %s was already used for a %s certificate",
				ca.ErrConflict, u.ApplicationID, typ)
		case !errors.Is(err, sql.ErrNoRows):
			return s.classify(err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO proxy_application_uses (application_id, cert_type, used_at, used_by)
VALUES (?, ?, ?, ?)`), u.ApplicationID, typ, dbTime(u.At), useKey(u)); err != nil {
			return fmt.Errorf("inserting use: %w", s.classify(err))
		}
		created = true
		e := u.Audit
		if e.Subject == "" {
			e.Subject = u.ApplicationID
		}
		return c.add(e)
	})
	return created, err
}

// ReleaseProxyUse removes a reservation (its issuance failed), with its
// audit entry.
func (s *Store) ReleaseProxyUse(ctx context.Context, u ca.ProxyUse) error {
	typ, ok := certTypeName(u.Type)
	if !ok {
		return fmt.Errorf("releasing proxy answer: %w: type %v", ca.ErrInvalid, u.Type)
	}
	return s.writeAudited(ctx, "releasing proxy answer "+u.ApplicationID, func(tx *sqlx.Tx, c *chain) error {
		res, err := tx.ExecContext(ctx, s.q("DELETE FROM proxy_application_uses WHERE application_id = ? AND cert_type = ? AND used_by = ?"),
			u.ApplicationID, typ, useKey(u))
		if err != nil {
			return s.classify(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		e := u.Audit
		if e.Subject == "" {
			e.Subject = u.ApplicationID
		}
		return c.add(e)
	})
}

// GoodCertificatesExpiring lists a municipality's good signature and
// authentication certificates with from < notAfter <= to, by notAfter then
// serial: the candidates for expiry notices.
func (s *Store) GoodCertificatesExpiring(ctx context.Context, municipality string, from, to time.Time) ([]ca.Record, error) {
	return s.selectRecords(ctx, s.db, "listing expiring certificates",
		`municipality = ? AND status = 'good' AND cert_type IN ('signature', 'authentication') AND expiry > ? AND expiry <= ?
ORDER BY expiry, serial_hex`, municipality, dbTime(from), dbTime(to))
}

// ApplyResidentEvent applies a register event in one transaction: the
// resident's good or held certificates of ch.Types, found inside the
// transaction, are revoked with ch.Reason at ch.At (one audit entry each);
// a deceased or removed resident is marked gone, and a registered one's
// mark is lifted (an audit entry for either). InsertCertificate refuses a
// new certificate for a resident marked gone.
func (s *Store) ApplyResidentEvent(ctx context.Context, ch ca.ResidentChange) ([]ca.Serial, error) {
	step := "applying register event for resident " + ch.ResidentID
	if ch.ResidentID == "" || ch.At.IsZero() || !ch.Effective.Valid() {
		return nil, fmt.Errorf("%s: %w: incomplete event", step, ca.ErrInvalid)
	}
	status, reason, err := statusColumns(ca.Revoked, ch.Reason)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	var types []any
	for _, t := range ch.Types {
		name, ok := certTypeName(t)
		if !ok {
			return nil, fmt.Errorf("%s: %w: type %v", step, ca.ErrInvalid, t)
		}
		types = append(types, name)
	}
	var changed []ca.Serial
	err = s.writeAudited(ctx, step, func(tx *sqlx.Tx, c *chain) error {
		changed = nil
		if err := s.lockResident(ctx, tx, ch.ResidentID); err != nil {
			return err
		}
		if err := c.orderChanges(); err != nil {
			return err
		}
		if len(types) > 0 {
			var keys []string
			if err := tx.SelectContext(ctx, &keys, s.q(`SELECT serial_hex FROM certificates
WHERE resident_id = ? AND cert_type IN (?`+strings.Repeat(", ?", len(types)-1)+`)
  AND (status = 'good' OR (status = 'revoked' AND reason = ?))`),
				append(append([]any{ch.ResidentID}, types...), int(ca.CertificateHold))...); err != nil {
				return fmt.Errorf("finding the resident's certificates: %w", s.classify(err))
			}
			slices.Sort(keys)
			for _, k := range keys {
				if _, err := tx.ExecContext(ctx, s.statusUpdate(ca.Revoked), status, reason, dbTime(ch.At), k); err != nil {
					return fmt.Errorf("revoking %s: %w", k, s.classify(err))
				}
				sn, err := parseSerialKey(k)
				if err != nil {
					return err
				}
				e := ch.Audit
				e.Subject = sn.Hex()
				if err := c.add(e); err != nil {
					return err
				}
				changed = append(changed, sn)
			}
		}
		mark := audit.Entry{Time: ch.At, Actor: ch.Audit.Actor, Action: ch.Event.MarkAction(), Subject: ch.ResidentID,
			Detail: mustJSON(map[string]string{"effective": ch.Effective.String()})}
		switch ch.Event {
		case ca.Deceased, ca.Removed:
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO resident_status (resident_id, event, effective, recorded_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (resident_id) DO UPDATE SET event = excluded.event, effective = excluded.effective, recorded_at = excluded.recorded_at`),
				ch.ResidentID, ch.Event.String(), ch.Effective.String(), dbTime(ch.At)); err != nil {
				return fmt.Errorf("marking the resident %s: %w", ch.Event, s.classify(err))
			}
		case ca.Registered:
			if _, err := tx.ExecContext(ctx, s.q("DELETE FROM resident_status WHERE resident_id = ?"), ch.ResidentID); err != nil {
				return fmt.Errorf("lifting the resident's mark: %w", s.classify(err))
			}
		default:
			return nil // facts changed: the revocations are the whole record
		}
		return c.add(mark)
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// lockResident serialises, on PostgreSQL, the transactions that issue for a
// resident and those that apply a register event to them, until tx ends: so
// that a death and an issuance in the same instant cannot cross under READ
// COMMITTED (the issuance missing the mark, the event missing the new
// certificate). SQLite's single writer serialises them already.
func (s *Store) lockResident(ctx context.Context, tx *sqlx.Tx, residentID string) error {
	return s.lockName(ctx, tx, "resident:"+residentID)
}

// lockCard serialises, on PostgreSQL, the issuances onto a card and those
// of a key until tx ends, so that each reads the other's certificate
// (ca.Issuance.Plan). The card is locked before the key, always, and both
// after the resident (residentGone). SQLite runs one write at a time.
func (s *Store) lockCard(ctx context.Context, tx *sqlx.Tx, r ca.Record) error {
	if err := s.lockName(ctx, tx, "card:"+r.CardID); err != nil {
		return err
	}
	if len(r.KeyHash) == 0 {
		return nil
	}
	return s.lockName(ctx, tx, "key:"+hex.EncodeToString(r.KeyHash))
}

// lockName takes a transaction-scoped PostgreSQL advisory lock on a name.
func (s *Store) lockName(ctx context.Context, tx *sqlx.Tx, name string) error {
	if s.dialect != PostgreSQL {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", name); err != nil {
		return fmt.Errorf("locking %s: %w", name, s.classify(err))
	}
	return nil
}

// residentGone refuses, inside tx, a new certificate for a resident the
// register reported deceased or removed. It takes lockResident first.
func (s *Store) residentGone(ctx context.Context, tx *sqlx.Tx, residentID string) error {
	if err := s.lockResident(ctx, tx, residentID); err != nil {
		return err
	}
	var event, effective string
	err := tx.QueryRowContext(ctx, s.q("SELECT event, effective FROM resident_status WHERE resident_id = ?"), residentID).
		Scan(&event, &effective)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("reading the resident's status: %w", s.classify(err))
	}
	return fmt.Errorf("%w: resident %s: %s, effective %s", ca.ErrResidentGone, residentID, event, effective)
}
