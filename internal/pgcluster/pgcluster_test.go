package pgcluster

import "testing"

// TestCluster: a standby shows what the primary commits, not while its
// replay is paused; after replication is cut and the primary crashes, the
// promoted standby takes writes and lacks what only the primary had: a
// failover that lost a transaction.
func TestCluster(t *testing.T) {
	c := Start(t, Options{Standbys: 1})
	p, s := c.Primary, c.Standbys[0]
	p.Exec("CREATE TABLE t (n int)")
	p.Exec("INSERT INTO t VALUES (1)")
	c.CatchUp()
	count := func(n *Node) (k int) { n.QueryRow("SELECT count(*) FROM t", &k); return k }
	if k := count(s); k != 1 {
		t.Fatalf("standby has %d rows, want 1", k)
	}
	s.PauseReplay()
	p.Exec("INSERT INTO t VALUES (2)")
	var inRecovery bool
	s.QueryRow("SELECT pg_is_in_recovery()", &inRecovery)
	if k := count(s); k != 1 || !inRecovery {
		t.Fatalf("paused standby has %d rows (in recovery %v), want 1", k, inRecovery)
	}
	s.ResumeReplay()
	c.CatchUp()
	if k := count(s); k != 2 {
		t.Fatalf("resumed standby has %d rows, want 2", k)
	}

	c.CutReplication()
	p.Exec("INSERT INTO t VALUES (3)")
	p.Stop("immediate")
	s.Promote()
	s.Exec("INSERT INTO t VALUES (4)")
	rows := 0
	s.QueryRow("SELECT count(*) FROM t WHERE n = 3", &rows)
	if k := count(s); k != 3 || rows != 0 {
		t.Fatalf("promoted standby has %d rows (%d of the lost one), want 3 without it", k, rows)
	}
}
