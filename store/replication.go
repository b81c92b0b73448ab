package store

import (
	"context"
	"time"
)

// ReplicationLag is how far the database this Store reads lags behind its
// primary: on a PostgreSQL hot standby, 0 when it has replayed all the WAL
// it received, else the time since the commit of the last transaction it
// replayed (by the standby's clock, against the primary's commit times, so
// the two clocks must agree). A standby paused or slow to replay shows a
// growing lag, one cut off from its primary shows none: the received WAL
// is all replayed. A primary and SQLite have no lag.
func (s *Store) ReplicationLag(ctx context.Context) (time.Duration, error) {
	if s.dialect != PostgreSQL {
		return 0, nil
	}
	var seconds float64
	err := s.db.QueryRowContext(ctx, `SELECT CASE
  WHEN NOT pg_is_in_recovery() THEN 0
  WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
  ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
END::float8`).Scan(&seconds)
	if err != nil {
		return 0, s.fail("reading replication lag", err)
	}
	return time.Duration(max(seconds, 0) * float64(time.Second)), nil
}

// SynchronousStandbys counts the standbys that confirm this PostgreSQL
// primary's commits before they are acknowledged: those in
// pg_stat_replication whose sync_state is sync or quorum, when this
// session's synchronous_commit waits for them (not off or local). With
// none, a failover may lose acknowledged transactions. The database role
// must see pg_stat_replication's sync_state (a superuser, or a member of
// pg_monitor); for others it reads 0. SQLite has none.
func (s *Store) SynchronousStandbys(ctx context.Context) (int, error) {
	if s.dialect != PostgreSQL {
		return 0, nil
	}
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT CASE
  WHEN current_setting('synchronous_commit') IN ('off', 'local') THEN 0
  ELSE (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum'))
END`).Scan(&n)
	if err != nil {
		return 0, s.fail("counting synchronous standbys", err)
	}
	return n, nil
}
