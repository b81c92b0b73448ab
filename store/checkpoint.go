package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"
)

// sqliteDriver is go-sqlite3 with SQLite's automatic WAL checkpoints turned
// off on every connection. Left on, the commit that takes the WAL past
// 1,000 pages copies it into the database file and waits for two fsyncs,
// holding the write lock that every other writer queues on. The Store
// checkpoints in the background instead (checkpointLoop), where the fsyncs
// hold up nobody.
const sqliteDriver = "sqlite3-jpkica"

func init() {
	sql.Register(sqliteDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		if _, err := c.Exec("PRAGMA wal_autocheckpoint=0", nil); err != nil {
			return fmt.Errorf("turning off automatic WAL checkpoints: %w", err)
		}
		return nil
	}})
	sqlx.BindDriver(sqliteDriver, sqlx.QUESTION)
}

// checkpointEvery is how often the WAL is copied back into the database
// file; the WAL file grows between checkpoints with the write rate
// (docs/benchmarks.md, issuance through the /v1 API, session 3, has its size
// under load).
const checkpointEvery = time.Second

// walRestart is the WAL size, in frames (pages of 4 KiB), past which a
// checkpoint also starts the WAL over (see checkpoint). A variable for
// tests.
var walRestart = 1 << 12

// checkpointLoop checkpoints the WAL every checkpointEvery until ctx ends,
// on a connection of its own. (Closing the last connection checkpoints what
// is left.) The last error is kept for Ping: a WAL that is not checkpointed
// loses nothing, but grows.
func (s *Store) checkpointLoop(ctx context.Context) {
	defer close(s.ckptDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var conn *sql.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var err error
		if conn == nil {
			conn, err = s.checkpointConn(ctx)
		}
		if err == nil {
			err = s.checkpoint(ctx, conn)
		}
		if err != nil && conn != nil {
			conn.Close()
			conn = nil
		}
		s.ckptErr.Store(&err)
	}
}

// checkpointConn is a connection for checkpoints that does not wait when
// SQLite is busy: a RESTART that finds readers returns at once instead of
// holding the write lock for the busy timeout.
func (s *Store) checkpointConn(ctx context.Context) (*sql.Conn, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, s.fail("checkpointing the WAL: connecting", err)
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		conn.Close()
		return nil, s.fail("checkpointing the WAL: connecting", err)
	}
	return conn, nil
}

// checkpointErr is the last background checkpoint's error.
func (s *Store) checkpointErr() error {
	if p := s.ckptErr.Load(); p != nil {
		return *p
	}
	return nil
}

// checkpoint copies the WAL into the database file in two steps, on conn
// (see checkpointConn).
//
// First PASSIVE, without the write lock: the bulk of the copying and its
// fsyncs, while writers go on committing. Under steady writes that never
// lets the WAL start over (a writer starts it from the beginning only when
// every frame has been copied), so once it is past walRestart frames a
// RESTART follows under the write lock: it copies the few frames added
// meanwhile and makes the next writer start the WAL from its beginning. If
// a reader still uses the WAL (a CRL being generated reads for seconds),
// the RESTART gives up at once and the next checkpoint tries again; the
// WAL grows meanwhile, and writers never wait for the reader.
func (s *Store) checkpoint(ctx context.Context, conn *sql.Conn) error {
	log, err := s.checkpointPassive(ctx, conn)
	if err != nil || log < walRestart {
		return err
	}
	return s.checkpointRestart(ctx, conn)
}

// checkpointPassive is the first step of checkpoint; it returns the WAL's
// frames.
func (s *Store) checkpointPassive(ctx context.Context, conn *sql.Conn) (int, error) {
	var busy, log, done int
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
		return 0, s.fail("checkpointing the WAL", err)
	}
	return log, nil
}

// checkpointRestart is the second step of checkpoint.
func (s *Store) checkpointRestart(ctx context.Context, conn *sql.Conn) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var busy, log, done int
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &log, &done); err != nil {
		return s.fail("checkpointing the WAL", err)
	}
	return nil
}
