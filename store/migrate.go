package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jpkica/jpkica/ca"
)

//go:embed migrations
var migrations embed.FS

// migrationLockKey is the PostgreSQL advisory lock held while migrating, so
// that nodes starting together apply each migration once.
const migrationLockKey = 0x6a706b6963610001 // "jpkica" 0001

// migration is one versioned schema change, NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(dialect Dialect) ([]migration, error) {
	dir := path.Join("migrations", string(dialect))
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return nil, fmt.Errorf("reading embedded migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", name)
		}
		body, err := fs.ReadFile(migrations, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(name, ".sql"), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrate applies the migrations not yet recorded in schema_migrations, each
// in its own transaction; on a database that takes no writes it only
// checks that they are all there (checkMigrated). On PostgreSQL it holds an advisory lock on one
// connection meanwhile; on SQLite each transaction begins IMMEDIATE and checks
// the version again inside it.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations(s.dialect)
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.fail("connecting", err)
	}
	defer conn.Close()
	if s.dialect == PostgreSQL {
		var readOnly bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'").Scan(&readOnly); err != nil {
			return s.fail("checking whether the database takes writes", err)
		}
		if readOnly {
			return s.checkMigrated(ctx, conn, ms)
		}
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLockKey)); err != nil {
			return s.fail("taking migration lock", err)
		}
		defer func() {
			// A connection that still holds the lock must not go back to the
			// pool: mark it bad so database/sql closes it (which releases it).
			if _, err := conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLockKey)); err != nil {
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  applied_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
)`
	if _, err := conn.ExecContext(ctx, create); err != nil {
		return s.fail("creating schema_migrations", err)
	}
	for _, m := range ms {
		if err := s.apply(ctx, conn, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// checkMigrated is migrate on a database that takes no writes (a hot
// standby, or one set read-only): every migration must be there already,
// applied on the primary. A standby whose schema is behind is
// ca.ErrUnavailable: it catches up once a node on the primary has migrated
// it and the change has replicated.
func (s *Store) checkMigrated(ctx context.Context, conn *sql.Conn, ms []migration) error {
	rows, err := conn.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("%w: the database is read-only (a standby?) and has no schema yet: start a node on the primary first: %w",
			ca.ErrUnavailable, err)
	}
	defer rows.Close()
	have := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return s.fail("reading schema_migrations", err)
		}
		have[v] = true
	}
	if err := rows.Err(); err != nil {
		return s.fail("reading schema_migrations", err)
	}
	var missing []string
	for _, m := range ms {
		if !have[m.version] {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: the database is read-only (a standby?) and lacks migrations %s: start a node on the primary to apply them",
			ca.ErrUnavailable, strings.Join(missing, ", "))
	}
	return nil
}

func (s *Store) apply(ctx context.Context, conn *sql.Conn, m migration) (err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("beginning transaction", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var n int
	if err := tx.QueryRowContext(ctx, s.q("SELECT count(*) FROM schema_migrations WHERE version = ?"), m.version).Scan(&n); err != nil {
		return s.fail("reading schema_migrations", err)
	}
	if n > 0 {
		return tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return s.fail("applying", err)
	}
	if _, err := tx.ExecContext(ctx, s.q("INSERT INTO schema_migrations (version, name) VALUES (?, ?)"), m.version, m.name); err != nil {
		return s.fail("recording", err)
	}
	if err := tx.Commit(); err != nil {
		return s.fail("committing", err)
	}
	return nil
}
