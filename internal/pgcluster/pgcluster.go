// Package pgcluster starts throwaway PostgreSQL clusters for tests: a
// primary and streaming hot standbys, each its own server on a free port of
// 127.0.0.1, made with initdb and pg_basebackup -R under a temporary
// directory, and stopped and removed when the test ends. Tests use it for
// what one shared server cannot show: a reader on a standby, replication
// lag, a failover, a failover that loses transactions.
//
// The server binaries come from pg_config --bindir. PostgreSQL refuses to
// run as root; when the test runs as root, the binaries run as the postgres
// user. Without the binaries, Start skips the test loudly. A Cluster is not
// safe for concurrent use: one test drives it.
package pgcluster

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver
)

// Options shape a cluster.
type Options struct {
	// Standbys is how many streaming hot standbys follow the primary.
	Standbys int
	// Synchronous makes the first standby synchronous: a commit on the
	// primary waits until the standby has it (synchronous_commit on).
	Synchronous bool
}

// Cluster is a primary and its standbys.
type Cluster struct {
	t        testing.TB
	dir      string
	bin      string
	asUser   string // "" to run the binaries as the test's own user
	Primary  *Node
	Standbys []*Node
}

// Node is one server of a cluster.
type Node struct {
	c    *Cluster
	Name string
	Dir  string // the data directory
	Port int
}

// Start makes and starts a cluster; it stops when the test ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	bin := binDir(t)
	dir, err := os.MkdirTemp("", "jpkica-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	// The servers write their logs and sockets here, as another user.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Skipf("!!! running as root without a postgres user: SKIPPING this PostgreSQL cluster test (%v) !!!", err)
		}
		c.asUser = "postgres"
	}
	t.Cleanup(c.stopAll)
	c.Primary = c.node("primary")
	c.run("initdb", "-D", c.Primary.Dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	conf := fmt.Sprintf(`port = %d
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
fsync = off
full_page_writes = off
`, c.Primary.Port, dir)
	c.appendFile(filepath.Join(c.Primary.Dir, "postgresql.conf"), conf)
	c.appendFile(filepath.Join(c.Primary.Dir, "pg_hba.conf"), "host replication postgres 127.0.0.1/32 trust\n")
	c.Primary.Start()
	c.Primary.Exec("CREATE DATABASE test")
	for i := range opts.Standbys {
		c.Standbys = append(c.Standbys, c.AddStandby(fmt.Sprintf("standby%d", i+1)))
	}
	// Only now: a synchronous standby named before it exists would hold
	// every commit above (CREATE DATABASE, pg_basebackup's checkpoint).
	if opts.Synchronous && opts.Standbys > 0 {
		c.Primary.Exec("ALTER SYSTEM SET synchronous_standby_names = 'standby1'")
		c.Primary.Exec("ALTER SYSTEM SET synchronous_commit = on")
		c.Primary.Exec("SELECT pg_reload_conf()")
		c.Primary.waitFor("standby1 to be synchronous", "SELECT count(*) = 1 FROM pg_stat_replication WHERE sync_state = 'sync'")
	}
	return c
}

// AddStandby clones the primary into a new streaming hot standby named
// name (its application_name) and starts it.
func (c *Cluster) AddStandby(name string) *Node {
	c.t.Helper()
	n := c.node(name)
	c.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Primary.Port), "-U", "postgres", "-D", n.Dir,
		"-R", "-X", "stream", "-c", "fast", "--no-sync")
	// In postgresql.auto.conf, after what pg_basebackup -R wrote there,
	// which would otherwise win: the application_name is the standby's
	// name in synchronous_standby_names.
	c.appendFile(filepath.Join(n.Dir, "postgresql.auto.conf"), fmt.Sprintf("port = %d\nprimary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=%s'\n",
		n.Port, c.Primary.Port, name))
	n.Start()
	return n
}

func (c *Cluster) node(name string) *Node {
	c.t.Helper()
	n := &Node{c: c, Name: name, Dir: filepath.Join(c.dir, name), Port: freePort(c.t)}
	if err := os.Mkdir(n.Dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	if c.asUser != "" {
		u, err := user.Lookup(c.asUser)
		if err != nil {
			c.t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(n.Dir, uid, gid); err != nil {
			c.t.Fatal(err)
		}
	}
	return n
}

// DSN is the test database's DSN on the node.
func (n *Node) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable", n.Port)
}

// WritableDSN is the test database's DSN over every node of the cluster,
// primary first, taking whichever accepts writes
// (target_session_attrs=read-write), as a deployment's multi-host DSN does:
// after a failover it reaches the promoted standby.
func (c *Cluster) WritableDSN() string {
	hosts := []string{fmt.Sprintf("127.0.0.1:%d", c.Primary.Port)}
	for _, s := range c.Standbys {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", s.Port))
	}
	return "postgres://postgres@" + strings.Join(hosts, ",") + "/test?sslmode=disable&target_session_attrs=read-write"
}

// Start starts the node and waits until it accepts connections.
func (n *Node) Start() {
	n.c.t.Helper()
	n.c.run("pg_ctl", "-D", n.Dir, "-l", filepath.Join(n.c.dir, n.Name+".log"), "-w", "-t", "60", "start")
}

// Stop stops the node: mode is "fast" (a clean shutdown) or "immediate"
// (as a crash: no checkpoint, nothing more sent to the standbys).
func (n *Node) Stop(mode string) {
	n.c.t.Helper()
	n.c.run("pg_ctl", "-D", n.Dir, "-m", mode, "-w", "stop")
}

// Promote makes a standby a primary and waits until it accepts writes.
func (n *Node) Promote() {
	n.c.t.Helper()
	n.c.run("pg_ctl", "-D", n.Dir, "-w", "promote")
	n.waitFor("the promoted node to accept writes", "SELECT NOT pg_is_in_recovery()")
}

// PauseReplay pauses a standby's WAL replay: it goes on receiving, and
// shows nothing new. ResumeReplay undoes it.
func (n *Node) PauseReplay() { n.Exec("SELECT pg_wal_replay_pause()") }

// ResumeReplay resumes a paused standby's replay.
func (n *Node) ResumeReplay() { n.Exec("SELECT pg_wal_replay_resume()") }

// CutReplication stops the primary sending WAL to its standbys (the
// standbys' primary_conninfo is pointed nowhere and reloaded), so that what
// the primary commits from then on exists only there.
func (c *Cluster) CutReplication() {
	c.t.Helper()
	for _, s := range c.Standbys {
		s.Exec("ALTER SYSTEM SET primary_conninfo = ''")
		s.Exec("SELECT pg_reload_conf()")
	}
	// The primary would notice only after wal_sender_timeout.
	c.Primary.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
	c.Primary.waitFor("the standbys to disconnect", "SELECT count(*) = 0 FROM pg_stat_replication")
}

// CatchUp waits until every standby has replayed what the primary has
// written.
func (c *Cluster) CatchUp() {
	c.t.Helper()
	var lsn string
	c.Primary.QueryRow("SELECT pg_current_wal_lsn()::text", &lsn)
	for _, s := range c.Standbys {
		s.waitFor("standby "+s.Name+" to replay "+lsn, "SELECT pg_last_wal_replay_lsn() >= '"+lsn+"'::pg_lsn")
	}
}

// Exec runs statements on the node's test database (postgres for CREATE
// DATABASE).
func (n *Node) Exec(query string, args ...any) {
	n.c.t.Helper()
	db := n.open(query)
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		n.c.t.Fatalf("%s: %s: %v", n.Name, query, err)
	}
}

// QueryRow scans one row of a query on the node's test database into dest.
func (n *Node) QueryRow(query string, dest ...any) {
	n.c.t.Helper()
	db := n.open(query)
	defer db.Close()
	if err := db.QueryRowContext(context.Background(), query).Scan(dest...); err != nil {
		n.c.t.Fatalf("%s: %s: %v", n.Name, query, err)
	}
}

func (n *Node) open(query string) *sql.DB {
	dsn := n.DSN()
	if strings.HasPrefix(query, "CREATE DATABASE") {
		dsn = strings.Replace(dsn, "/test?", "/postgres?", 1)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		n.c.t.Fatal(err)
	}
	return db
}

// waitFor polls a boolean query for up to a minute.
func (n *Node) waitFor(what, query string) {
	n.c.t.Helper()
	db := n.open(query)
	defer db.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		var ok bool
		err := db.QueryRowContext(context.Background(), query).Scan(&ok)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			n.c.t.Fatalf("%s: waited a minute for %s (last error %v)", n.Name, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopAll stops every node that runs, and removes the cluster.
func (c *Cluster) stopAll() {
	for _, n := range append(c.Standbys, c.Primary) {
		if n != nil {
			c.cmd("pg_ctl", "-D", n.Dir, "-m", "immediate", "-w", "stop").Run() // a stopped node refuses: fine
		}
	}
	os.RemoveAll(c.dir)
}

// run runs a server binary, failing the test with its output.
func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	cmd := c.cmd(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
}

func (c *Cluster) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if c.asUser != "" {
		return exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (c *Cluster) appendFile(path, text string) {
	c.t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		c.t.Fatal(err)
	}
}

// binDir finds the server binaries, or skips the test.
func binDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("pg_config", "--bindir").Output()
	if err != nil {
		t.Skipf("!!! pg_config not found: SKIPPING this PostgreSQL cluster test (%v) !!!", err)
	}
	dir := strings.TrimSpace(string(out))
	for _, b := range []string{"initdb", "pg_ctl", "pg_basebackup", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Skipf("!!! %s not in %s: SKIPPING this PostgreSQL cluster test !!!", b, dir)
		}
	}
	return dir
}

// freePort is a TCP port of 127.0.0.1 free at the time of asking.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
