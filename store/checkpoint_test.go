package store

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// walCheckpoint runs a checkpoint of the given mode and returns SQLite's
// answer: whether it was kept from finishing, the WAL's frames and how
// many of them are in the database file.
func walCheckpoint(t *testing.T, s *Store, mode string) (busy, log, done int) {
	t.Helper()
	if err := s.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &log, &done); err != nil {
		t.Fatal(err)
	}
	return busy, log, done
}

// stopCheckpoints stops the background checkpoints and returns a
// connection for the test to run them on.
func stopCheckpoints(t *testing.T, s *Store) *sql.Conn {
	t.Helper()
	s.stopCkpt()
	<-s.ckptDone
	conn, err := s.checkpointConn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readerHoldingWAL opens a store with its background checkpoints stopped
// (and a busy timeout that would outlast the test: a checkpoint that
// waited for a reader would hang), writes certificate 1, opens a reader
// in a deferred transaction (BeginTx would take the write lock:
// _txlock=immediate), which keeps the frames written after it out of the
// database file, and writes certificates 2 to n. It returns the store, a
// connection for checkpoints, the reader and the writer.
func readerHoldingWAL(t *testing.T, n int64) (s *Store, conn, reader *sql.Conn, write func(int64)) {
	t.Helper()
	ctx := context.Background()
	s = mustOpen(t, sqliteDSNs(t)+"?_busy_timeout=600000")
	conn = stopCheckpoints(t, s)
	write = func(i int64) {
		mustInsert(t, s, issuance(record(t, big1(i), fmt.Sprintf("CARD-%d", i))))
	}
	write(1)
	reader, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	var count int
	if _, err := reader.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		t.Fatal(err)
	}
	if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM certificates").Scan(&count); err != nil {
		t.Fatal(err)
	}
	for i := int64(2); i <= n; i++ {
		write(i)
	}
	return s, conn, reader, write
}

func TestCheckpointOffTheWritePath(t *testing.T) {
	dsn := sqliteDSNs(t)
	s := mustOpen(t, dsn)
	ctx := context.Background()
	conn := stopCheckpoints(t, s)

	var auto int
	if err := s.db.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("wal_autocheckpoint = %d, %v; want 0", auto, err)
	}
	for i := range 300 {
		mustInsert(t, s, issuance(record(t, big1(int64(i+1)), fmt.Sprintf("CARD-%d", i))))
	}
	// SQLite would have checkpointed at 1,000 frames; no commit did.
	if busy, log, done := walCheckpoint(t, s, "NOOP"); busy != 0 || log <= 1000 || done != 0 {
		t.Fatalf("before the checkpoint: busy %d, %d frames, %d copied; want 0, over 1000, 0", busy, log, done)
	}
	if err := s.checkpoint(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if busy, log, done := walCheckpoint(t, s, "NOOP"); busy != 0 || done != log {
		t.Fatalf("after the checkpoint: busy %d, %d frames, %d copied", busy, log, done)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = mustOpen(t, dsn)
	if got := verifyChain(t, s); got != 300 {
		t.Fatalf("%d audit entries after reopening, want 300", got)
	}
}

// Past walRestart frames the checkpoint starts the WAL over, which its
// first, lock-free step cannot do while writers commit; while a reader
// still uses the WAL it gives up at once rather than hold the write lock.
func TestCheckpointRestartsTheWAL(t *testing.T) {
	defer func(l int) { walRestart = l }(walRestart)
	walRestart = 100
	ctx := context.Background()
	s, conn, reader, write := readerHoldingWAL(t, 100)
	if err := s.checkpoint(ctx, conn); err != nil {
		t.Fatalf("with a reader: %v", err)
	}
	_, held, _ := walCheckpoint(t, s, "NOOP")
	write(101)
	if _, log, _ := walCheckpoint(t, s, "NOOP"); log <= held {
		t.Fatalf("with a reader the WAL started over: %d frames, %d before the write", log, held)
	}

	// Writers that commit while the lock-free step copies stand in the way
	// of the WAL starting over, as the reader does here: after it, the
	// next write still appends. The second step, under the write lock,
	// lets it start over.
	if _, err := s.checkpointPassive(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	write(102)
	_, grown, _ := walCheckpoint(t, s, "NOOP")
	if grown <= held {
		t.Fatalf("after the lock-free step alone: %d frames, %d before; want the WAL still growing", grown, held)
	}
	if err := s.checkpointRestart(ctx, conn); err != nil {
		t.Fatal(err)
	}
	write(103)
	if busy, log, _ := walCheckpoint(t, s, "NOOP"); busy != 0 || log > 50 {
		t.Fatalf("after the restart and one write: busy %d, %d frames (%d before); want the WAL started over", busy, log, grown)
	}
}

// TestCheckpointEscalates: a checkpoint whose lock-free step leaves the WAL
// at walRestart frames or more goes on to the second step, and below that
// it does not. Here a reader keeps the first step from finishing and lets
// go while the checkpoint waits for the write lock, as a writer that
// commits during the first step would: only the second step then starts
// the WAL over.
func TestCheckpointEscalates(t *testing.T) {
	defer func(l int) { walRestart = l }(walRestart)
	for _, tc := range []struct {
		name      string
		threshold int
		restarts  bool
	}{{"past walRestart", 1, true}, {"under walRestart", 1 << 30, false}} {
		t.Run(tc.name, func(t *testing.T) {
			walRestart = tc.threshold
			ctx := context.Background()
			s, conn, reader, write := readerHoldingWAL(t, 20)
			_, before, copied := walCheckpoint(t, s, "NOOP")

			// The test holds the write lock; the checkpoint's first step
			// copies what the reader lets it, then any second step waits.
			s.wmu.Lock()
			done := make(chan error, 1)
			go func() { done <- s.checkpoint(ctx, conn) }()
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
				if _, _, c := walCheckpoint(t, s, "NOOP"); c > copied {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the lock-free step copied nothing in a minute")
				}
			}
			if _, err := reader.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
			s.wmu.Unlock()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			write(21)
			_, after, _ := walCheckpoint(t, s, "NOOP")
			if restarted := after < before; restarted != tc.restarts {
				t.Errorf("WAL started over: %t (%d frames before, %d after one more write), want %t", restarted, before, after, tc.restarts)
			}
		})
	}
}
