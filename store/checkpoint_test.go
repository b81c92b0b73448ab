package store

import (
	"context"
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

// stopCheckpoints stops the background checkpoints: the test runs them.
func stopCheckpoints(s *Store) {
	s.stopCkpt()
	<-s.ckptDone
}

func TestCheckpointOffTheWritePath(t *testing.T) {
	dsn := sqliteDSNs(t)
	s := mustOpen(t, dsn)
	ctx := context.Background()
	stopCheckpoints(s)

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
	if err := s.checkpoint(ctx); err != nil {
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

// Past walRestart frames the checkpoint waits for a reader that holds a
// snapshot, and the next write starts the WAL over.
func TestCheckpointRestartsTheWAL(t *testing.T) {
	defer func(l int) { walRestart = l }(walRestart)
	walRestart = 100
	s := mustOpen(t, sqliteDSNs(t))
	ctx := context.Background()
	stopCheckpoints(s)
	mustInsert(t, s, issuance(record(t, big1(1), "CARD-0")))

	// A deferred transaction: BeginTx would take the write lock
	// (_txlock=immediate).
	reader, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var n int
	if _, err := reader.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		t.Fatal(err)
	}
	if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM certificates").Scan(&n); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 100; i++ {
		mustInsert(t, s, issuance(record(t, big1(int64(i+1)), fmt.Sprintf("CARD-%d", i))))
	}
	_, before, _ := walCheckpoint(t, s, "NOOP")
	released := make(chan struct{})
	go func() {
		time.Sleep(200 * time.Millisecond)
		close(released)
		reader.ExecContext(ctx, "ROLLBACK")
	}()
	if err := s.checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-released:
	default:
		t.Fatal("the checkpoint finished while the reader still held its snapshot")
	}
	mustInsert(t, s, issuance(record(t, big1(101), "CARD-100")))
	if busy, log, _ := walCheckpoint(t, s, "NOOP"); busy != 0 || log >= before || log > 50 {
		t.Fatalf("after the restart and one write: busy %d, %d frames (%d before); want the WAL started over", busy, log, before)
	}
}
