package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/internal/pgcluster"
	"github.com/jpkica/jpkica/internal/pgtest"
)

// outageCheck issues a certificate while a dependency is down and after it
// is back: the request during the outage is a 503 "unavailable" that
// writes nothing (no certificate, no audit entry, the idempotency key still
// free), and the same request once the dependency is back issues the
// certificate, once. The 503 says which part is down in message, and
// when to retry in Retry-After. down takes the dependency away; up brings it back and
// may take a while to be noticed, so the retry is repeated while it is 503.
func outageCheck(t *testing.T, e *env, down, up func(), message string) {
	t.Helper()
	ctx := context.Background()
	if a, _ := e.counter.issue(issueBody("authentication", "CARD-UP", "RES-UP", "302015"), "before"); a.status != 201 {
		t.Fatalf("before the outage: %d %s", a.status, a.body)
	}
	entries := auditCount(t, e.s)

	down()
	body := issueBody("authentication", "CARD-OUT", "RES-OUT", "302015")
	a, _ := e.counter.issue(body, "during")
	if a.status != 503 || a.code() != wire.CodeUnavailable || a.message() != message {
		t.Fatalf("during the outage: %d %s, want 503 %s %q", a.status, a.body, wire.CodeUnavailable, message)
	}
	up()
	if a.header.Get("Retry-After") == "" {
		t.Errorf("the 503 has no Retry-After")
	}

	if recs, err := e.s.Store.CertificatesByCard(ctx, "CARD-OUT"); err != nil || len(recs) != 0 {
		t.Fatalf("after the 503: %d certificates on the card (%v), want none", len(recs), err)
	}
	if n := auditCount(t, e.s); n != entries {
		t.Fatalf("after the 503: %d audit entries, %d before", n, entries)
	}
	var got wire.Issued
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if a, got = e.counter.issue(body, "during"); a.status != 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still 503 a minute after the outage: %s", a.body)
		}
	}
	if a.status != 201 {
		t.Fatalf("the same request after the outage: %d %s", a.status, a.body)
	}
	if a, again := e.counter.issue(body, "during"); a.status != 201 || again.Serial != got.Serial {
		t.Fatalf("replayed: %d serial %s, want 201 %s", a.status, again.Serial, got.Serial)
	}
	if recs, _ := e.s.Store.CertificatesByCard(ctx, "CARD-OUT"); len(recs) != 1 {
		t.Fatalf("%d certificates on the card, want 1", len(recs))
	}
	var v audit.Verifier
	if err := e.s.Store.AuditEntries(ctx, v.Next); err != nil {
		t.Fatalf("audit chain after the outage: %v", err)
	}
}

// TestIssueHSMDown: the issuer keys' token goes away (SoftHSM2's token
// directory moved out) under a running API.
func TestIssueHSMDown(t *testing.T) {
	keys, tk := openSoftHSM(t)
	e := newEnv(t, apitest.Options{Keys: keys})
	var plugBack func()
	// The message names the part that is down and nothing inside it: no
	// key or token label, no PKCS #11 code (the log has those).
	outageCheck(t, e, func() { plugBack = tk.Unplug(t) }, func() { plugBack() }, "the key store is unavailable; safe to retry")
}

// TestRetryAfterFromKeyStore: while the token stays away, the key store
// backs off between re-initialisation attempts, and a 503 that meets it
// down says how long until the next attempt, in whole seconds, rather than
// the default 1.
func TestRetryAfterFromKeyStore(t *testing.T) {
	keys, tk := openSoftHSM(t)
	e := newEnv(t, apitest.Options{Keys: keys})
	plugBack := tk.Unplug(t)
	defer plugBack()
	body := issueBody("authentication", "CARD-WAIT", "RES-WAIT", "302015")
	deadline := time.Now().Add(30 * time.Second) // only a failure waits this long
	for i := 0; ; i++ {
		a, _ := e.counter.issue(body, fmt.Sprintf("wait-%d", i))
		if a.status != 503 {
			t.Fatalf("during the outage: %d %s", a.status, a.body)
		}
		n, err := strconv.Atoi(a.header.Get("Retry-After"))
		if err != nil || n < 1 || n > 5 {
			t.Fatalf("Retry-After %q, want 1 to 5 (the default cap on the backoff)", a.header.Get("Retry-After"))
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no 503 told more than 1 s while the backoff grew")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIssueHSMLoginRefused: the token goes away and comes back with the
// same label and another PIN (re-initialised). The key store refuses to
// try the PIN again, so as not to lock the token, and the API says so: a
// 503 whose code tells the counter that only an operator can help, with
// no Retry-After, and nothing written.
func TestIssueHSMLoginRefused(t *testing.T) {
	keys, tk := openSoftHSM(t)
	e := newEnv(t, apitest.Options{Keys: keys})
	if a, _ := e.counter.issue(issueBody("authentication", "CARD-PIN0", "RES-PIN0", "302015"), "pin-0"); a.status != 201 {
		t.Fatalf("before: %d %s", a.status, a.body)
	}
	entries := auditCount(t, e.s)
	tk.Unplug(t)
	tk.InitToken(t, tk.Label, "another-pin-0000")

	body := issueBody("authentication", "CARD-PIN", "RES-PIN", "302015")
	var a answer
	deadline := time.Now().Add(30 * time.Second) // only a failure waits this long
	for i := 0; ; i++ {
		// While the store re-initialises it is an ordinary outage.
		if a, _ = e.counter.issue(body, fmt.Sprintf("refused-%d", i)); a.status != 503 || a.code() != wire.CodeUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still 503 %s 30 s after the token came back with another PIN", wire.CodeUnavailable)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if a.status != 503 || a.code() != wire.CodeHSMLoginRefused {
		t.Fatalf("after the PIN was refused: %d %s, want 503 %s", a.status, a.body, wire.CodeHSMLoginRefused)
	}
	if ra, ok := a.header["Retry-After"]; ok {
		t.Errorf("the 503 carries Retry-After %q: no retry can succeed", ra)
	}
	if strings.Contains(string(a.body), tk.PIN) || strings.Contains(string(a.body), tk.Label) {
		t.Errorf("the answer names the PIN or the token: %s", a.body)
	}
	// It stays so: the store does not try again by itself.
	time.Sleep(200 * time.Millisecond)
	if a, _ := e.counter.issue(body, "pin-again"); a.status != 503 || a.code() != wire.CodeHSMLoginRefused {
		t.Fatalf("again: %d %s, want 503 %s", a.status, a.body, wire.CodeHSMLoginRefused)
	}
	if recs, err := e.s.Store.CertificatesByCard(context.Background(), "CARD-PIN"); err != nil || len(recs) != 0 {
		t.Fatalf("%d certificates on the card (%v), want none", len(recs), err)
	}
	if n := auditCount(t, e.s); n != entries {
		t.Fatalf("%d audit entries, %d before", n, entries)
	}
}

// TestIssueDatabaseGone: the PostgreSQL server becomes unreachable under a
// running API (a proxy between them drops every connection and refuses
// new ones), and comes back.
func TestIssueDatabaseGone(t *testing.T) {
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := startTCPProxy(t, u.Host)
	u.Host = p.addr
	e := newEnv(t, apitest.Options{DSN: u.String()})
	outageCheck(t, e, p.cut, p.restore, "the database is unavailable; safe to retry")
}

// TestIssueDatabaseReadOnly: the database turns read-only under a running
// API (SQLSTATE 25006, as a demoted primary or a standby answers): the
// issuance is a 503 with Retry-After that writes nothing, and the log line
// carries the driver's error, not the client's message.
func TestIssueDatabaseReadOnly(t *testing.T) {
	c := pgcluster.Start(t, pgcluster.Options{})
	var log syncBuffer
	e := newEnv(t, apitest.Options{DSN: c.Primary.DSN(), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	setReadOnly := func(on string) func() {
		return func() {
			c.Primary.Exec("ALTER SYSTEM SET default_transaction_read_only = " + on)
			c.Primary.Exec("SELECT pg_reload_conf()")
		}
	}
	outageCheck(t, e, setReadOnly("on"), setReadOnly("off"), "the database is unavailable; safe to retry")
	if !strings.Contains(log.String(), "SQLSTATE 25006") {
		t.Errorf("the log does not carry the driver's error:\n%s", log.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tcpProxy forwards connections to a server until cut: then it closes
// those it has and refuses new ones, until restore.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	down         bool
	conns        map[net.Conn]struct{}
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c) })
		}
	})
	return p
}

func (p *tcpProxy) serve(c net.Conn) {
	defer c.Close()
	if !p.track(c) {
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(up) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// track remembers c for cut, or says no while the proxy is down.
func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// TestIssuerExpiring: a certificate that would outlive the current issuer
// generation is a 503 that says a new generation is needed, and nothing is
// written.
func TestIssuerExpiring(t *testing.T) {
	e := newEnv(t, apitest.Options{IssuerValidity: 2 * 365 * 24 * time.Hour})
	before := auditCount(t, e.s)
	a, _ := e.counter.issue(issueBody("authentication", "CARD-LATE", "RES-LATE", "302015"), "late-1")
	if a.status != 503 || a.code() != wire.CodeUnavailable || !strings.Contains(a.message(), "new generation") {
		t.Fatalf("issuance past the issuer: %d %s", a.status, a.body)
	}
	if n := auditCount(t, e.s) - before; n != 0 {
		t.Fatalf("%d audit entries written for a refused issuance", n)
	}
}
