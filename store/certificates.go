package store

import (
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// cfssl's status values.
const (
	statusGood    = "good"
	statusRevoked = "revoked"
)

// serialKey is the sortable serial_hex form: 40 lower-case hex digits.
func serialKey(s ca.Serial) string {
	h := s.Hex()
	if len(h) >= 40 {
		return h
	}
	return strings.Repeat("0", 40-len(h)) + h
}

func parseSerialKey(k string) (ca.Serial, error) {
	b, err := hex.DecodeString(k)
	if err != nil {
		return ca.Serial{}, fmt.Errorf("serial_hex %q: %w", k, err)
	}
	s := ca.SerialFromBytes(b)
	if s.IsZero() {
		return ca.Serial{}, fmt.Errorf("serial_hex %q is zero", k)
	}
	return s, nil
}

// dbTime is the form every time is stored in: UTC, microseconds (what
// PostgreSQL keeps).
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func nullTime(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: dbTime(t), Valid: true}
}

// zeroTime is revoked_at of a certificate that is not revoked. cfssl's
// accessor scans revoked_at into a time.Time, so it is never NULL.
var zeroTime = time.Time{}

// statusColumns maps a Status and Reason to cfssl's status and reason.
func statusColumns(st ca.Status, r ca.Reason) (string, int, error) {
	switch st {
	case ca.Good:
		return statusGood, 0, nil
	case ca.Revoked:
		if r == ca.CertificateHold {
			return "", 0, fmt.Errorf("%w: a revocation with reason certificateHold is a hold", ca.ErrInvalid)
		}
		return statusRevoked, int(r), nil
	case ca.OnHold:
		return statusRevoked, int(ca.CertificateHold), nil
	}
	return "", 0, fmt.Errorf("%w: status %v", ca.ErrInvalid, st)
}

func statusFromColumns(status string, reason int) (ca.Status, ca.Reason, error) {
	switch {
	case status == statusGood:
		return ca.Good, ca.Unspecified, nil
	case status == statusRevoked && ca.Reason(reason) == ca.CertificateHold:
		return ca.OnHold, ca.CertificateHold, nil
	case status == statusRevoked:
		return ca.Revoked, ca.Reason(reason), nil
	}
	return 0, 0, fmt.Errorf("unknown status %q", status)
}

// certColumns are the columns a stored certificate is written with, in the
// order certArgs gives them (change_seq apart).
const certColumns = `serial_number, authority_key_identifier, ca_label, status, reason, expiry, revoked_at, pem,
issued_at, not_before, metadata, sans, common_name,
serial_hex, cert_type, card_id, resident_id, municipality, facts_hash, der, synthetic, card_expires, key_hash`

const certColumnCount = 23

// certArgs validates r and returns the values of certColumns.
func certArgs(r ca.Record) ([]any, error) {
	switch {
	case r.Serial.IsZero():
		return nil, fmt.Errorf("%w: record without serial", ca.ErrInvalid)
	case r.IssuerID == "" || len(r.AKI) == 0:
		return nil, fmt.Errorf("%w: record %s without issuer ID or AKI", ca.ErrInvalid, r.Serial)
	case len(r.DER) == 0 || r.NotAfter.IsZero():
		return nil, fmt.Errorf("%w: record %s without DER or notAfter", ca.ErrInvalid, r.Serial)
	}
	if _, ok := certTypeName(r.Type); !ok {
		return nil, fmt.Errorf("%w: record %s has certificate type %v", ca.ErrInvalid, r.Serial, r.Type)
	}
	status, reason, err := statusColumns(r.Status, r.Reason)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", r.Serial, err)
	}
	revokedAt := zeroTime
	if status == statusRevoked {
		if r.RevokedAt.IsZero() {
			return nil, fmt.Errorf("%w: revoked record %s without revocation time", ca.ErrInvalid, r.Serial)
		}
		revokedAt = dbTime(r.RevokedAt)
	}
	meta, err := json.Marshal(map[string]any{
		"cert_type":    r.Type.String(),
		"municipality": r.Municipality,
		"synthetic":    r.Synthetic,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding metadata: %w", err)
	}
	cn, sans := describe(r.DER)
	var cardExpires sql.NullString
	if !r.CardExpires.IsZero() {
		cardExpires = sql.NullString{String: r.CardExpires.String(), Valid: true}
	}
	return []any{
		r.Serial.Decimal(), hex.EncodeToString(r.AKI), r.IssuerID, status, reason,
		dbTime(r.NotAfter), revokedAt,
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.DER})),
		nullTime(r.IssuedAt), nullTime(r.NotBefore), string(meta), sans, cn,
		serialKey(r.Serial), r.Type.String(), r.CardID, r.ResidentID, r.Municipality, nilIfEmpty(r.FactsHash), r.DER, r.Synthetic,
		cardExpires, nilIfEmpty(r.KeyHash),
	}, nil
}

// nilIfEmpty stores an empty hash as NULL.
func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func certTypeName(t ca.CertType) (string, bool) {
	switch t {
	case ca.Signature, ca.Authentication, ca.Terminal:
		return t.String(), true
	}
	return "", false
}

// describe fills cfssl's common_name and sans from the certificate, when it
// parses. The 4 facts (otherName SANs) are personal data and not copied: sans
// lists only DNS names, e-mail addresses, IP addresses and URIs, as cfssl does.
func describe(der []byte) (sql.NullString, string) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return sql.NullString{}, "[]"
	}
	sans := append([]string{}, cert.DNSNames...)
	sans = append(sans, cert.EmailAddresses...)
	for _, ip := range cert.IPAddresses {
		sans = append(sans, ip.String())
	}
	for _, u := range cert.URIs {
		sans = append(sans, (*url.URL)(u).String())
	}
	b, err := json.Marshal(sans)
	if err != nil {
		b = []byte("[]")
	}
	cn := cert.Subject.CommonName
	return sql.NullString{String: cn, Valid: cn != ""}, string(b)
}

// statusUpdate is the statement that moves one certificate (by serial_hex)
// to status, reason and revoked_at with a new change_seq, if it may: a
// hold changes good certificates only; a revocation also held ones.
func (s *Store) statusUpdate(to ca.Status) string {
	from := "status = 'good'"
	if to == ca.Revoked {
		from = "(status = 'good' OR (status = 'revoked' AND reason = 6))"
	}
	return s.q(`UPDATE certificates SET status = ?, reason = ?, revoked_at = ?, change_seq = ` + s.changeSeq() + `
WHERE serial_hex = ? AND ` + from)
}

// changeSeq is the SQL expression for the next change_seq.
func (s *Store) changeSeq() string {
	if s.dialect == PostgreSQL {
		return "nextval('certificates_change_seq')"
	}
	return "(SELECT COALESCE(MAX(change_seq), 0) + 1 FROM certificates)"
}

func (s *Store) insertSQL() string {
	return s.q("INSERT INTO certificates (" + certColumns + ", change_seq) VALUES (" +
		strings.Repeat("?, ", certColumnCount) + s.changeSeq() + ")")
}

// selectColumns are read into certRow.
const selectColumns = `serial_hex, authority_key_identifier, ca_label, status, reason, expiry, revoked_at,
issued_at, not_before, cert_type, card_id, resident_id, municipality, facts_hash, der, synthetic, card_expires, key_hash`

type certRow struct {
	SerialHex    string         `db:"serial_hex"`
	AKI          string         `db:"authority_key_identifier"`
	IssuerID     string         `db:"ca_label"`
	Status       string         `db:"status"`
	Reason       int            `db:"reason"`
	Expiry       time.Time      `db:"expiry"`
	RevokedAt    time.Time      `db:"revoked_at"`
	IssuedAt     sql.NullTime   `db:"issued_at"`
	NotBefore    sql.NullTime   `db:"not_before"`
	CertType     string         `db:"cert_type"`
	CardID       string         `db:"card_id"`
	ResidentID   string         `db:"resident_id"`
	Municipality string         `db:"municipality"`
	FactsHash    []byte         `db:"facts_hash"`
	DER          []byte         `db:"der"`
	Synthetic    bool           `db:"synthetic"`
	CardExpires  sql.NullString `db:"card_expires"`
	KeyHash      []byte         `db:"key_hash"`
}

func (row certRow) record() (ca.Record, error) {
	serial, err := parseSerialKey(row.SerialHex)
	if err != nil {
		return ca.Record{}, err
	}
	aki, err := hex.DecodeString(row.AKI)
	if err != nil {
		return ca.Record{}, fmt.Errorf("certificate %s: authority_key_identifier: %w", serial, err)
	}
	typ, err := ca.ParseCertType(row.CertType)
	if err != nil {
		return ca.Record{}, fmt.Errorf("certificate %s: %w", serial, err)
	}
	st, reason, err := statusFromColumns(row.Status, row.Reason)
	if err != nil {
		return ca.Record{}, fmt.Errorf("certificate %s: %w", serial, err)
	}
	r := ca.Record{
		Serial:       serial,
		IssuerID:     row.IssuerID,
		AKI:          aki,
		Type:         typ,
		CardID:       row.CardID,
		ResidentID:   row.ResidentID,
		Municipality: row.Municipality,
		NotAfter:     row.Expiry.UTC(),
		Status:       st,
		Reason:       reason,
		FactsHash:    row.FactsHash,
		DER:          row.DER,
		Synthetic:    row.Synthetic,
	}
	if row.IssuedAt.Valid {
		r.IssuedAt = row.IssuedAt.Time.UTC()
	}
	if row.NotBefore.Valid {
		r.NotBefore = row.NotBefore.Time.UTC()
	}
	if st != ca.Good {
		r.RevokedAt = row.RevokedAt.UTC()
	}
	if len(r.FactsHash) == 0 {
		r.FactsHash = nil
	}
	if len(row.KeyHash) > 0 {
		r.KeyHash = row.KeyHash
	}
	if row.CardExpires.Valid {
		if r.CardExpires, err = ca.ParseDate(row.CardExpires.String); err != nil {
			return ca.Record{}, fmt.Errorf("certificate %s: card_expires: %w", serial, err)
		}
	}
	return r, nil
}

func (s *Store) selectRecords(ctx context.Context, q sqlx.QueryerContext, step, where string, args ...any) ([]ca.Record, error) {
	var rows []certRow
	if err := sqlx.SelectContext(ctx, q, &rows, s.q("SELECT "+selectColumns+" FROM certificates WHERE "+where), args...); err != nil {
		return nil, s.fail(step, err)
	}
	out := make([]ca.Record, 0, len(rows))
	for _, row := range rows {
		r, err := row.record()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", step, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Certificate finds one certificate by serial: ca.ErrNotFound if none.
func (s *Store) Certificate(ctx context.Context, serial ca.Serial) (ca.Record, error) {
	rs, err := s.selectRecords(ctx, s.db, "reading certificate", "serial_hex = ?", serialKey(serial))
	if err != nil {
		return ca.Record{}, err
	}
	if len(rs) == 0 {
		return ca.Record{}, fmt.Errorf("reading certificate %s: %w", serial, ca.ErrNotFound)
	}
	return rs[0], nil
}

// CertificatesByCard lists a card's certificates, newest first.
func (s *Store) CertificatesByCard(ctx context.Context, cardID string) ([]ca.Record, error) {
	return s.selectRecords(ctx, s.db, "listing certificates by card",
		"card_id = ? ORDER BY issued_at DESC, change_seq DESC", cardID)
}

// CertificatesByResident lists a resident's certificates, newest first.
func (s *Store) CertificatesByResident(ctx context.Context, residentID string) ([]ca.Record, error) {
	return s.selectRecords(ctx, s.db, "listing certificates by resident",
		"resident_id = ? ORDER BY issued_at DESC, change_seq DESC", residentID)
}

// InsertCertificate stores an issuance in one transaction: with
// in.Supersede, the checks of ca.Issuance.Plan on the card's, the
// resident's and the key's certificates as the transaction reads them, and
// the superseding of those Plan names (revoked, reason superseded, at
// Record.IssuedAt); the record, one audit entry for the issuance and one
// per superseded serial, and the idempotency key. A serial already stored,
// or an idempotency key the client already used, is ca.ErrConflict; a good
// certificate for a resident the register reported deceased or removed
// (ApplyResidentEvent) is ca.ErrResidentGone; Plan's refusals are its own
// errors; either way nothing is written.
func (s *Store) InsertCertificate(ctx context.Context, in ca.Issuance) ([]ca.Serial, error) {
	r := in.Record
	args, err := certArgs(r)
	if err != nil {
		return nil, fmt.Errorf("inserting certificate: %w", err)
	}
	if in.Supersede && (r.CardID == "" || r.ResidentID == "") {
		return nil, fmt.Errorf("inserting certificate %s: %w: superseding needs a card and a resident ID", r.Serial, ca.ErrInvalid)
	}
	if in.Supersede && r.IssuedAt.IsZero() {
		return nil, fmt.Errorf("inserting certificate %s: %w: superseding needs the issuance time", r.Serial, ca.ErrInvalid)
	}
	if in.IdempotencyKey != "" && in.ClientID == "" {
		return nil, fmt.Errorf("inserting certificate %s: %w: idempotency key without client ID", r.Serial, ca.ErrInvalid)
	}
	entry := in.Audit
	if entry.Subject == "" {
		entry.Subject = r.Serial.Hex()
	}
	if entry.Time.IsZero() {
		entry.Time = r.IssuedAt
	}
	var superseded []ca.Serial
	err = s.writeAudited(ctx, "inserting certificate "+r.Serial.Hex(), func(tx *sqlx.Tx, c *chain) error {
		superseded = nil
		if r.Status == ca.Good && r.ResidentID != "" {
			if err := s.residentGone(ctx, tx, r.ResidentID); err != nil {
				return err
			}
		}
		if in.Supersede {
			if err := s.lockCard(ctx, tx, r); err != nil {
				return err
			}
			st, err := s.issuanceState(ctx, tx, in.Query())
			if err != nil {
				return err
			}
			if superseded, err = in.Plan(st); err != nil {
				return err
			}
			if err := c.orderChanges(); err != nil {
				return err
			}
			for _, sn := range superseded {
				if _, err := tx.ExecContext(ctx, s.q(`UPDATE certificates
SET status = 'revoked', reason = ?, revoked_at = ?, change_seq = `+s.changeSeq()+`
WHERE serial_hex = ?`), int(ca.Superseded), dbTime(r.IssuedAt), serialKey(sn)); err != nil {
					return fmt.Errorf("superseding %s: %w", sn, s.classify(err))
				}
			}
		}
		if err := c.orderChanges(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.insertSQL(), args...); err != nil {
			return fmt.Errorf("inserting record: %w", s.classify(err))
		}
		if in.IdempotencyKey != "" {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO idempotency_keys (client_id, key, request_hash, serial_hex, created_at)
VALUES (?, ?, ?, ?, ?)`), in.ClientID, in.IdempotencyKey, nonNil(in.RequestHash), serialKey(r.Serial), dbTime(entry.Time)); err != nil {
				return fmt.Errorf("remembering idempotency key: %w", s.classify(err))
			}
		}
		if err := c.add(entry); err != nil {
			return err
		}
		for _, old := range superseded {
			e := audit.Entry{
				Time:    entry.Time,
				Actor:   entry.Actor,
				Action:  audit.ActionCertificateSupersede,
				Subject: old.Hex(),
				Detail:  mustJSON(map[string]string{"reason": ca.Superseded.String(), "superseded_by": r.Serial.Hex()}),
			}
			if err := c.add(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return superseded, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings are passed
	}
	return b
}

// IssuanceState reads what ca.Issuance.Plan decides a card issuance on,
// outside any transaction: the Authority's check before it signs.
func (s *Store) IssuanceState(ctx context.Context, q ca.IssuanceQuery) (ca.IssuanceState, error) {
	return s.issuanceState(ctx, s.db, q)
}

func (s *Store) issuanceState(ctx context.Context, db sqlx.QueryerContext, q ca.IssuanceQuery) (ca.IssuanceState, error) {
	const live = "(status = 'good' OR (status = 'revoked' AND reason = 6)) AND expiry > ?"
	at := dbTime(q.At)
	var (
		st  ca.IssuanceState
		err error
	)
	if st.Card, err = s.selectRecords(ctx, db, "reading the card's certificates",
		"card_id = ? AND cert_type IN ('signature', 'authentication') AND "+live, q.CardID, at); err != nil {
		return ca.IssuanceState{}, err
	}
	if st.Resident, err = s.selectRecords(ctx, db, "reading the resident's certificates",
		"resident_id = ? AND cert_type = ? AND "+live, q.ResidentID, q.Type.String(), at); err != nil {
		return ca.IssuanceState{}, err
	}
	if len(q.KeyHash) > 0 {
		if st.SameKey, err = s.selectRecords(ctx, db, "reading the key's certificates", "key_hash = ?", q.KeyHash); err != nil {
			return ca.IssuanceState{}, err
		}
	}
	return st, nil
}

// Idempotent looks up a remembered idempotency key of a client:
// ca.ErrNotFound if there is none.
func (s *Store) Idempotent(ctx context.Context, clientID, key string) ([]byte, ca.Serial, error) {
	var (
		hash []byte
		k    string
	)
	err := s.db.QueryRowContext(ctx, s.q("SELECT request_hash, serial_hex FROM idempotency_keys WHERE client_id = ? AND key = ?"),
		clientID, key).Scan(&hash, &k)
	if err != nil {
		return nil, ca.Serial{}, s.fail("reading idempotency key", err)
	}
	sn, err := parseSerialKey(k)
	if err != nil {
		return nil, ca.Serial{}, fmt.Errorf("reading idempotency key: %w", err)
	}
	return hash, sn, nil
}

// ChangeStatus revokes or holds certificates in one transaction, with one
// audit entry per changed certificate (the template with Subject set to the
// serial, and Time to ch.At when it has none). A hold applies to good
// certificates; a revocation to good or held ones; others are left as they
// are and not returned. An unknown serial is ca.ErrNotFound and changes
// nothing. Changed serials are returned in serial order.
func (s *Store) ChangeStatus(ctx context.Context, ch ca.StatusChange) ([]ca.Serial, error) {
	if ch.Status != ca.Revoked && ch.Status != ca.OnHold {
		return nil, fmt.Errorf("changing status: %w: target status %v", ca.ErrInvalid, ch.Status)
	}
	status, reason, err := statusColumns(ch.Status, ch.Reason)
	if err != nil {
		return nil, fmt.Errorf("changing status: %w", err)
	}
	if ch.At.IsZero() {
		return nil, fmt.Errorf("changing status: %w: no time", ca.ErrInvalid)
	}
	keys := make([]string, 0, len(ch.Serials))
	seen := make(map[ca.Serial]bool, len(ch.Serials))
	for _, sn := range ch.Serials {
		if sn.IsZero() {
			return nil, fmt.Errorf("changing status: %w: zero serial", ca.ErrInvalid)
		}
		if !seen[sn] {
			seen[sn] = true
			keys = append(keys, serialKey(sn))
		}
	}
	sort.Strings(keys)
	update := s.statusUpdate(ch.Status)
	var changed []ca.Serial
	err = s.writeAudited(ctx, "changing status", func(tx *sqlx.Tx, c *chain) error {
		changed = nil
		if err := c.orderChanges(); err != nil {
			return err
		}
		for _, k := range keys {
			res, err := tx.ExecContext(ctx, update, status, reason, dbTime(ch.At), k)
			if err != nil {
				return fmt.Errorf("updating %s: %w", k, s.classify(err))
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("updating %s: %w", k, s.classify(err))
			}
			sn, err := parseSerialKey(k)
			if err != nil {
				return err
			}
			if n == 0 {
				var one int
				err := tx.QueryRowContext(ctx, s.q("SELECT 1 FROM certificates WHERE serial_hex = ?"), k).Scan(&one)
				if err != nil {
					return fmt.Errorf("certificate %s: %w", sn, s.classify(err))
				}
				continue
			}
			e := ch.Audit
			e.Subject = sn.Hex()
			if e.Time.IsZero() {
				e.Time = ch.At
			}
			if len(e.Detail) == 0 {
				e.Detail = mustJSON(map[string]string{"status": ch.Status.String(), "reason": ca.Reason(reason).String()})
			}
			if err := c.add(e); err != nil {
				return err
			}
			changed = append(changed, sn)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// RevokedEntries streams the revoked (and held) certificates of an issuer
// that have not expired at now, in serial order, without loading them all:
// the input of a CRL, as CRLEntries gives it (revocation times in whole
// seconds). municipality "" means every partition. An error from fn stops
// the walk and is returned.
func (s *Store) RevokedEntries(ctx context.Context, issuerID, municipality string, now time.Time,
	fn func(serial ca.Serial, revokedAt time.Time, reason ca.Reason) error) error {
	return s.CRLEntries(ctx, issuerID, municipality, now, func(sn []byte, at time.Time, r ca.Reason) error {
		return fn(ca.SerialFromBytes(sn), at, r)
	})
}
