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
// file.
const checkpointEvery = time.Second

// walLimit is the most WAL frames (pages of 4 KiB) a checkpoint may leave
// behind when long-running readers keep it from finishing; past it, the
// checkpoint waits for them and holds writers back. A variable for tests.
var walLimit = 1 << 14

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

// checkpoint copies what it can of the WAL into the database file without
// taking the write lock (PASSIVE): writers go on committing meanwhile. If
// readers kept it from reaching the end and the WAL is past walLimit
// frames, a TRUNCATE checkpoint follows under the write lock: it waits for
// those readers (the busy timeout) and empties the WAL.
func (s *Store) checkpoint(ctx context.Context) error {
	var busy, log, done int
	if err := s.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
		return s.fail("checkpointing the WAL", err)
	}
	if log <= walLimit || done >= log {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done); err != nil {
		return s.fail("checkpointing the WAL", err)
	}
	if busy != 0 {
		return fmt.Errorf("checkpointing the WAL: %w: %d of %d frames copied, readers hold the rest", ca.ErrUnavailable, done, log)
	}
	return nil
}
