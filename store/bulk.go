package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"

	"github.com/jpkica/jpkica/ca"
)

// BulkInsert stores synthetic records (made by `jpkica dev seed`) as fast as
// the database takes them, without audit entries: SQLite in one transaction
// through one prepared statement, PostgreSQL with COPY. Every record must be
// Synthetic (ca.ErrInvalid otherwise), so real certificates cannot bypass the
// audit log. A serial already stored is ca.ErrConflict and nothing is written.
func (s *Store) BulkInsert(ctx context.Context, recs []ca.Record) error {
	if len(recs) == 0 {
		return nil
	}
	step := fmt.Sprintf("bulk inserting %d records", len(recs))
	rows := make([][]any, len(recs))
	for i, r := range recs {
		if !r.Synthetic {
			return fmt.Errorf("%s: %w: record %s is not synthetic", step, ca.ErrInvalid, r.Serial)
		}
		args, err := certArgs(r)
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		rows[i] = args
	}
	if s.dialect == PostgreSQL {
		return s.copyRecords(ctx, step, rows)
	}
	return s.write(ctx, step, func(tx *sqlx.Tx) error {
		var seq int64
		if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(change_seq), 0) FROM certificates").Scan(&seq); err != nil {
			return fmt.Errorf("reading change_seq: %w", s.classify(err))
		}
		stmt, err := tx.PrepareContext(ctx, "INSERT INTO certificates ("+certColumns+", change_seq) VALUES ("+
			strings.Repeat("?, ", certColumnCount)+"?)")
		if err != nil {
			return fmt.Errorf("preparing insert: %w", s.classify(err))
		}
		defer stmt.Close()
		for i, args := range rows {
			seq++
			if _, err := stmt.ExecContext(ctx, append(args, seq)...); err != nil {
				return fmt.Errorf("inserting record %d: %w", i, s.classify(err))
			}
		}
		return nil
	})
}

// copyRecords COPYs rows into certificates on one pgx connection, in a
// transaction that takes the change_seq lock first (see the package
// documentation), so change_seq keeps commit order.
func (s *Store) copyRecords(ctx context.Context, step string, rows [][]any) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.fail(step+": connecting", err)
	}
	defer conn.Close()
	cols := strings.Split(strings.NewReplacer("\n", "", " ", "").Replace(certColumns), ",")
	err = conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlibConn)
		if !ok {
			return fmt.Errorf("driver connection is %T, not pgx", dc)
		}
		return pgx.BeginFunc(ctx, sc.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(changeSeqLockKey)); err != nil {
				return fmt.Errorf("taking the change_seq lock: %w", err)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"certificates"}, cols, pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("copying: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return s.fail(step, err)
	}
	return nil
}

// HasRealCertificates reports whether any certificate was issued for real
// (not seeded), so that seeding can refuse a real store.
func (s *Store) HasRealCertificates(ctx context.Context) (bool, error) {
	var found bool
	if err := s.db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM certificates WHERE synthetic = FALSE)").Scan(&found); err != nil {
		return false, s.fail("looking for real certificates", err)
	}
	return found, nil
}
