package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/internal/pgcluster"
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

// TestReplicationLag: a store on a hot standby opens without migrating,
// shows no lag while the standby keeps up, a growing one while its replay
// is paused under writes on the primary, and none again once it resumes.
// The primary never lags.
func TestReplicationLag(t *testing.T) {
	c := pgcluster.Start(t, pgcluster.Options{Standbys: 1})
	ctx := context.Background()
	primary := mustOpen(t, c.Primary.DSN())
	c.CatchUp()
	standby := mustOpen(t, c.Standbys[0].DSN())
	lag := func(s *Store) time.Duration {
		t.Helper()
		d, err := s.ReplicationLag(ctx)
		if err != nil {
			t.Fatalf("ReplicationLag: %v", err)
		}
		return d
	}
	if d := lag(standby); d != 0 {
		t.Errorf("a standby that kept up: lag %v, want 0", d)
	}
	c.Standbys[0].PauseReplay()
	if err := primary.AppendAudit(ctx, audit.Entry{Actor: "admin:test", Action: audit.ActionCertificateRevoke, Time: t0}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); lag(standby) < 500*time.Millisecond; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("paused for a minute, the lag is %v", lag(standby))
		}
	}
	if d := lag(primary); d != 0 {
		t.Errorf("the primary: lag %v, want 0", d)
	}
	c.Standbys[0].ResumeReplay()
	c.CatchUp()
	if d := lag(standby); d != 0 {
		t.Errorf("resumed and caught up: lag %v, want 0", d)
	}
}

// TestSynchronousStandbys: a primary counts its synchronous standby, and
// not an asynchronous one.
func TestSynchronousStandbys(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(fmt.Sprintf("synchronous=%v", sync), func(t *testing.T) {
			c := pgcluster.Start(t, pgcluster.Options{Standbys: 1, Synchronous: sync})
			s := mustOpen(t, c.Primary.DSN())
			c.CatchUp() // the standby streams
			want := 0
			if sync {
				want = 1
			}
			n, err := s.SynchronousStandbys(context.Background())
			if err != nil || n != want {
				t.Errorf("SynchronousStandbys = %d, %v; want %d", n, err, want)
			}
		})
	}
}

// TestPoolOptions: the pool keeps as many idle connections as it may open,
// and refuses settings that make no sense.
func TestPoolOptions(t *testing.T) {
	s := mustOpen(t, postgresDSNs(t))
	if st := s.db.Stats(); st.MaxOpenConnections != DefaultMaxOpenConns {
		t.Errorf("max open connections %d, want %d", st.MaxOpenConnections, DefaultMaxOpenConns)
	}
	o, err := Options{MaxOpenConns: 4}.withDefaults()
	if err != nil || o.MaxIdleConns != 4 || o.ConnMaxLifetime != DefaultConnMaxLifetime || o.ConnMaxIdleTime != DefaultConnMaxIdleTime {
		t.Errorf("defaults for 4 open: %+v, %v", o, err)
	}
	for _, bad := range []Options{{MaxOpenConns: 2, MaxIdleConns: 3}, {MaxOpenConns: -1}, {ConnMaxLifetime: -time.Second}} {
		if _, err := OpenWith(context.Background(), "postgres://postgres@127.0.0.1:1/x", bad); !errors.Is(err, ca.ErrInvalid) {
			t.Errorf("OpenWith(%+v): %v, want ErrInvalid", bad, err)
		}
	}
}
