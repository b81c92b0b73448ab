package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"

	"github.com/jpkica/jpkica/ca"
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
// file. At 900 issuances a second the WAL file grows to about 80 MB between
// checkpoints.
const checkpointEvery = time.Second

// walRestart is the WAL size, in frames (pages of 4 KiB), past which a
// checkpoint also starts the WAL over (see checkpoint). A variable for
// tests.
var walRestart = 1 << 12

// checkpointLoop checkpoints the WAL every checkpointEvery until ctx ends.
// (Closing the last connection checkpoints what is left.) The last error is
// kept for Ping: a WAL that is not checkpointed loses nothing, but grows.
func (s *Store) checkpointLoop(ctx context.Context) {
	defer close(s.ckptDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := s.checkpoint(ctx)
			s.ckptErr.Store(&err)
		}
	}
}

// checkpointErr is the last background checkpoint's error.
func (s *Store) checkpointErr() error {
	if p := s.ckptErr.Load(); p != nil {
		return *p
	}
	return nil
}

// checkpoint copies the WAL into the database file in two steps.
//
// First PASSIVE, without the write lock: the bulk of the copying and its
// fsyncs, while writers go on committing. Under steady writes that never
// lets the WAL start over (a writer starts it from the beginning only when
// every frame has been copied), so once it is past walRestart frames a
// RESTART follows under the write lock: it copies the few frames added
// meanwhile, waits for readers still using the WAL (the busy timeout), and
// makes the next writer start the WAL from its beginning.
func (s *Store) checkpoint(ctx context.Context) error {
	var busy, log, done int
	if err := s.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
		return s.fail("checkpointing the WAL", err)
	}
	if log < walRestart {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &log, &done); err != nil {
		return s.fail("checkpointing the WAL", err)
	}
	if busy != 0 {
		return fmt.Errorf("checkpointing the WAL: %w: %d of %d frames copied, readers hold the rest", ca.ErrUnavailable, done, log)
	}
	return nil
}
