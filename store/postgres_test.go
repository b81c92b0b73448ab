package store

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// raise makes the server fail the transaction with SQLSTATE code, as a
// lost race or a read-only database would.
func raise(ctx context.Context, tx *sqlx.Tx, code string) error {
	_, err := tx.ExecContext(ctx, "DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '"+code+"'; END $$")
	return err
}

// TestWriteRetriesLostRaces: a write transaction that fails with
// serialization_failure or deadlock_detected is run again, a bounded number
// of times, and then is ca.ErrUnavailable; other errors are not retried.
func TestWriteRetriesLostRaces(t *testing.T) {
	s := mustOpen(t, postgresDSNs(t))
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		code      string
		failures  int // how many attempts fail with code
		wantRuns  int
		wantError error
	}{
		{"serialization failure, then success", "40001", 2, 3, nil},
		{"deadlock, then success", "40P01", 1, 2, nil},
		{"serialization failure every time", "40001", 99, writeAttempts, ca.ErrUnavailable},
		{"unique violation is not retried", "23505", 99, 1, ca.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := 0
			err := s.write(ctx, "test write", func(tx *sqlx.Tx) error {
				runs++
				if runs <= tc.failures {
					return raise(ctx, tx, tc.code)
				}
				_, err := tx.ExecContext(ctx, "SELECT 1")
				return err
			})
			if runs != tc.wantRuns {
				t.Errorf("ran %d times, want %d", runs, tc.wantRuns)
			}
			switch {
			case tc.wantError == nil && err != nil:
				t.Errorf("err = %v, want success", err)
			case tc.wantError != nil && !errors.Is(err, tc.wantError):
				t.Errorf("err = %v, want %v", err, tc.wantError)
			}
		})
	}
	t.Run("context ended", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		runs := 0
		err := s.write(ctx, "test write", func(tx *sqlx.Tx) error {
			runs++
			err := raise(ctx, tx, "40001")
			cancel()
			return err
		})
		if runs != 1 || !errors.Is(err, ca.ErrUnavailable) {
			t.Errorf("ran %d times, err %v; want once, ErrUnavailable", runs, err)
		}
	})
}

// TestReadOnlyDatabase: a database that refuses writes (SQLSTATE 25006: a
// hot standby, or a primary set read-only) opens without migrating when
// its schema is current, and its writes are ca.ErrUnavailable. One whose
// schema is behind does not open.
func TestReadOnlyDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := postgresDSNs(t)
	mustOpen(t, dsn) // migrates
	ro, err := Open(ctx, readOnly(t, dsn))
	if err != nil {
		t.Fatalf("opening the read-only database: %v", err)
	}
	defer ro.Close()
	err = ro.AppendAudit(ctx, audit.Entry{Actor: "admin:test", Action: audit.ActionCertificateRevoke, Time: t0})
	var pe *pgconn.PgError
	if !errors.Is(err, ca.ErrUnavailable) || !errors.As(err, &pe) || pe.Code != "25006" {
		t.Fatalf("writing to the read-only database: %v, want ErrUnavailable from SQLSTATE 25006", err)
	}

	if s, err := Open(ctx, readOnly(t, postgresDSNs(t))); !errors.Is(err, ca.ErrUnavailable) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("opening a read-only database with no schema: %v, want ErrUnavailable", err)
	}
}

// readOnly is dsn with every transaction read-only.
func readOnly(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("options", q.Get("options")+" -cdefault_transaction_read_only=on")
	// pgx reads "+" in a URL's query as itself, not as a space.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}
