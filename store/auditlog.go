package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// chain appends audit entries inside one write transaction. It is made by
// lockChain, which every writing transaction calls first.
type chain struct {
	s     *Store
	ctx   context.Context
	tx    *sqlx.Tx
	head  *audit.Entry // the last entry; nil before the first
	added int
}

// lockChain takes the head of the audit chain for the rest of tx: FOR UPDATE
// on PostgreSQL; on SQLite the IMMEDIATE transaction already holds the write
// lock.
func (s *Store) lockChain(ctx context.Context, tx *sqlx.Tx) (*chain, error) {
	query := "SELECT seq, hash FROM audit_head WHERE id = 1"
	if s.dialect == PostgreSQL {
		query += " FOR UPDATE"
	}
	var (
		seq  int64
		hash []byte
	)
	if err := tx.QueryRowContext(ctx, query).Scan(&seq, &hash); err != nil {
		return nil, fmt.Errorf("locking audit head: %w", s.classify(err))
	}
	c := &chain{s: s, ctx: ctx, tx: tx}
	if seq > 0 {
		c.head = &audit.Entry{Seq: seq, Hash: hash}
	}
	return c, nil
}

// add seals e after the head and inserts it.
func (c *chain) add(e audit.Entry) error {
	if e.Action == "" || e.Actor == "" || e.Time.IsZero() {
		return fmt.Errorf("%w: audit entry needs an actor, an action and a time", ca.ErrInvalid)
	}
	audit.Seal(&e, c.head)
	_, err := c.tx.ExecContext(c.ctx, c.s.q(`INSERT INTO audit_log (seq, time, actor, action, subject, detail, prev, hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), e.Seq, e.Time, e.Actor, e.Action, e.Subject, string(e.Detail), e.Prev, e.Hash)
	if err != nil {
		return fmt.Errorf("appending audit entry %d: %w", e.Seq, c.s.classify(err))
	}
	c.head = &e
	c.added++
	return nil
}

// close moves the head to the last entry added.
func (c *chain) close() error {
	if c.added == 0 {
		return nil
	}
	_, err := c.tx.ExecContext(c.ctx, c.s.q("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"), c.head.Seq, c.head.Hash)
	if err != nil {
		return fmt.Errorf("moving audit head: %w", c.s.classify(err))
	}
	return nil
}

// writeAudited runs fn in a write transaction holding the audit chain, and
// commits fn's changes with the entries it added.
func (s *Store) writeAudited(ctx context.Context, step string, fn func(tx *sqlx.Tx, c *chain) error) error {
	return s.write(ctx, step, func(tx *sqlx.Tx) error {
		c, err := s.lockChain(ctx, tx)
		if err != nil {
			return err
		}
		if err := fn(tx, c); err != nil {
			return err
		}
		return c.close()
	})
}

// AppendAudit appends a standalone audit entry (a CRL or OCSP signing, a key
// ceremony step). Seq, Prev and Hash are set by the store; Actor, Action and
// Time are required.
func (s *Store) AppendAudit(ctx context.Context, e audit.Entry) error {
	return s.writeAudited(ctx, "appending audit entry", func(_ *sqlx.Tx, c *chain) error {
		return c.add(e)
	})
}

// AuditEntries streams the whole audit log to fn in seq order, without
// loading it into memory. An error from fn stops the walk and is returned.
func (s *Store) AuditEntries(ctx context.Context, fn func(audit.Entry) error) error {
	rows, err := s.db.QueryContext(ctx, "SELECT seq, time, actor, action, subject, detail, prev, hash FROM audit_log ORDER BY seq")
	if err != nil {
		return s.fail("reading audit log", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e      audit.Entry
			t      time.Time
			detail []byte
		)
		if err := rows.Scan(&e.Seq, &t, &e.Actor, &e.Action, &e.Subject, &detail, &e.Prev, &e.Hash); err != nil {
			return s.fail("reading audit entry", err)
		}
		e.Time = t.UTC()
		if len(detail) > 0 {
			e.Detail = detail
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail("reading audit log", err)
	}
	return nil
}

// AuditHead is the sequence number and hash of the last audit entry, as every
// writing transaction records it (0 and nil for an empty log).
func (s *Store) AuditHead(ctx context.Context) (int64, []byte, error) {
	var (
		seq  int64
		hash []byte
	)
	if err := s.db.QueryRowContext(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1").Scan(&seq, &hash); err != nil {
		return 0, nil, s.fail("reading audit head", err)
	}
	return seq, hash, nil
}
