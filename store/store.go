package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"

	"github.com/jpkica/jpkica/ca"
)

// Dialect names the SQL database behind a Store.
type Dialect string

// The supported dialects.
const (
	SQLite     Dialect = "sqlite"
	PostgreSQL Dialect = "postgres"
)

// Store is the system of record. It satisfies ca.Store.
type Store struct {
	db      *sqlx.DB
	dialect Dialect
	closed  atomic.Bool
	// wmu serializes this process's SQLite write transactions, so they queue
	// in Go instead of spinning on SQLite's busy handler. Other processes are
	// still kept out by SQLite's own lock.
	wmu sync.Mutex
	// SQLite only: the background WAL checkpoints (checkpoint.go).
	stopCkpt context.CancelFunc
	ckptDone chan struct{}
	ckptErr  atomic.Pointer[error] // the last checkpoint's
	closing  sync.Once
	aw       auditWriters // this Store's audit chains (auditlog.go)
}

var _ ca.Store = (*Store)(nil)

// Options tune a Store's PostgreSQL connection pool; zero values take the
// defaults. database/sql's own defaults (2 idle connections, no limit on
// open ones) make a busy node close and reopen sessions all the time: 6
// workers opened 404 sessions in 30 s. SQLite keeps database/sql's pool.
type Options struct {
	// MaxOpenConns bounds the connections open at once (10); a call
	// beyond it waits for one, as long as its context allows.
	MaxOpenConns int
	// MaxIdleConns is how many stay open when idle (MaxOpenConns).
	MaxIdleConns int
	// ConnMaxLifetime closes a connection this long after it opened (30m),
	// so that connections move to a new server behind the same name.
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes a connection idle this long (5m).
	ConnMaxIdleTime time.Duration
}

// The default pool (Options).
const (
	DefaultMaxOpenConns    = 10
	DefaultConnMaxLifetime = 30 * time.Minute
	DefaultConnMaxIdleTime = 5 * time.Minute
)

// withDefaults fills in the zero fields, and refuses negative ones and more
// idle connections than open ones.
func (o Options) withDefaults() (Options, error) {
	if o.MaxOpenConns < 0 || o.MaxIdleConns < 0 || o.ConnMaxLifetime < 0 || o.ConnMaxIdleTime < 0 {
		return o, fmt.Errorf("%w: negative pool setting", ca.ErrInvalid)
	}
	if o.MaxOpenConns == 0 {
		o.MaxOpenConns = DefaultMaxOpenConns
	}
	if o.MaxIdleConns == 0 {
		o.MaxIdleConns = o.MaxOpenConns
	}
	if o.MaxIdleConns > o.MaxOpenConns {
		return o, fmt.Errorf("%w: %d idle connections, more than the %d open at most", ca.ErrInvalid, o.MaxIdleConns, o.MaxOpenConns)
	}
	if o.ConnMaxLifetime == 0 {
		o.ConnMaxLifetime = DefaultConnMaxLifetime
	}
	if o.ConnMaxIdleTime == 0 {
		o.ConnMaxIdleTime = DefaultConnMaxIdleTime
	}
	return o, nil
}

// Open is OpenWith and the default Options.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith connects to the database named by dsn and brings its schema up
// to date. A dsn of the form postgres://... or postgresql://... is
// PostgreSQL (through pgx, with opts' pool); "sqlite:PATH" or a plain file
// path is SQLite, opened with
// WAL, a 5 s busy timeout, foreign keys on, synchronous=NORMAL, IMMEDIATE
// write transactions, a 64 MiB page cache and a cache of 128 prepared
// statements per connection; its WAL is checkpointed in the background
// (checkpoint.go). A new SQLite database is created 0600, and so are its
// -wal and -shm files (createPrivate).
func OpenWith(ctx context.Context, dsn string, opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	var (
		db      *sqlx.DB
		dialect Dialect
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		dialect = PostgreSQL
		db, err = sqlx.Open("pgx", dsn)
		if err == nil {
			db.SetMaxOpenConns(opts.MaxOpenConns)
			db.SetMaxIdleConns(opts.MaxIdleConns)
			db.SetConnMaxLifetime(opts.ConnMaxLifetime)
			db.SetConnMaxIdleTime(opts.ConnMaxIdleTime)
		}
	default:
		dialect = SQLite
		var file, driverDSN string
		file, driverDSN, err = sqliteDSN(dsn)
		if err == nil {
			err = createPrivate(file)
		}
		if err == nil {
			db, err = sqlx.Open(sqliteDriver, driverDSN)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s database: %w", dialect, err)
	}
	s := &Store{db: db, dialect: dialect}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating %s database: %w", dialect, err)
	}
	if dialect == SQLite {
		ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s.stopCkpt, s.ckptDone = cancel, make(chan struct{})
		go s.checkpointLoop(ctx)
	}
	return s, nil
}

// sqliteDSN turns "sqlite:PATH" or "PATH" (optionally with ?params) into a
// go-sqlite3 DSN with jpkica's settings. file is the database file's path,
// "" for an in-memory database.
func sqliteDSN(dsn string) (file, driverDSN string, err error) {
	path := strings.TrimPrefix(dsn, "sqlite:")
	path = strings.TrimPrefix(path, "//")
	if path == "" {
		return "", "", fmt.Errorf("%w: empty SQLite path", ca.ErrInvalid)
	}
	params := url.Values{}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		q, err := url.ParseQuery(path[i+1:])
		if err != nil {
			return "", "", fmt.Errorf("%w: SQLite parameters: %v", ca.ErrInvalid, err)
		}
		params, path = q, path[:i]
	}
	if path != ":memory:" && params.Get("mode") != "memory" {
		file = path
	}
	for k, v := range map[string]string{
		"_journal_mode": "WAL",
		"_busy_timeout": "5000",
		"_foreign_keys": "1",
		"_synchronous":  "NORMAL",
		"_txlock":       "immediate",
		"_cache_size":   "-65536", // KiB: 64 MiB of page cache per connection
		// Prepared statements kept per connection: an issuance runs a dozen
		// statements, and preparing each again was a measurable share of its
		// CPU time (docs/benchmarks.md, issuance through the /v1 API, session 2).
		"_stmt_cache_size": "128",
	} {
		if params.Get(k) == "" {
			params.Set(k, v)
		}
	}
	return file, "file:" + path + "?" + params.Encode(), nil
}

// createPrivate creates the SQLite database file, empty and readable by its
// owner only (0600), if it does not exist yet. SQLite would create it 0644
// less the umask; the database holds every resident's 4 facts. SQLite gives
// the -wal and -shm files it makes beside it the database file's mode, so
// they are 0600 too. An existing file is left as it is.
func createPrivate(file string) error {
	if file == "" {
		return nil
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case err != nil:
		return fmt.Errorf("creating SQLite database: %w: %w", ca.ErrUnavailable, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("creating SQLite database: %w: %w", ca.ErrUnavailable, err)
	}
	return nil
}

// Close closes the database. Calls after Close fail with ca.ErrUnavailable.
func (s *Store) Close() error {
	s.closing.Do(func() {
		if s.stopCkpt != nil {
			s.stopCkpt()
			<-s.ckptDone
		}
	})
	s.closed.Store(true)
	return s.db.Close()
}

// Ping checks that the database answers (for /readyz), and that the last
// background WAL checkpoint (SQLite) succeeded.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return s.fail("pinging database", err)
	}
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return s.fail("pinging database", err)
	}
	return s.checkpointErr()
}

// Dialect reports which database the Store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// q rewrites ? placeholders for the dialect.
func (s *Store) q(query string) string { return s.db.Rebind(query) }

// txFunc is the body of a write transaction. write may run it more than
// once, each time in a new transaction, so it must set every output it
// has (a slice it appends to, a flag) afresh on each run.
type txFunc func(tx *sqlx.Tx) error

// Write transactions that lose a serialization or deadlock race on
// PostgreSQL (SQLSTATE 40001, 40P01) are run again, up to writeAttempts
// times in all, after a jittered pause of about retryPause times the
// attempt number. Then the error is ca.ErrUnavailable (safe to retry).
const (
	writeAttempts = 3
	retryPause    = 10 * time.Millisecond
)

// write runs fn in a write transaction and commits it; any error rolls
// everything back. A transaction that lost a race is run again (see
// writeAttempts), unless ctx ends first.
func (s *Store) write(ctx context.Context, step string, fn txFunc) error {
	if s.dialect == SQLite {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	for attempt := 1; ; attempt++ {
		err := s.writeOnce(ctx, step, fn)
		if err == nil || attempt == writeAttempts || !lostRace(err) {
			return err
		}
		pause := time.Duration(attempt) * retryPause
		pause += rand.N(pause) // jitter, so the losers do not meet again
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
}

func (s *Store) writeOnce(ctx context.Context, step string, fn txFunc) (err error) {
	if s.closed.Load() {
		return s.fail(step, sql.ErrConnDone)
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return s.fail(step+": beginning transaction", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return fmt.Errorf("%s: %w", step, s.classify(err))
	}
	if err := tx.Commit(); err != nil {
		return s.fail(step+": committing", err)
	}
	return nil
}

// fail wraps err with a step name and the ca sentinel that fits it.
func (s *Store) fail(step string, err error) error {
	return fmt.Errorf("%s: %w", step, s.classify(err))
}

// stdlibConn is the pgx connection type behind database/sql, for CopyFrom.
type stdlibConn = stdlib.Conn
