package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// anchorEvery is how many entries a Store appends between two cross-anchors
// (PostgreSQL): a truncation of any chain's newest entries is visible to
// audit verify once some other chain anchored past it.
const anchorEvery = 64

// auditWriters hands out a Store's audit chains. On PostgreSQL each write
// transaction takes a chain of its own (a lane) for its duration, so writers
// in one process or many never wait on one another's audit head; a lane is
// made when every existing one is busy, so a Store has as many chains as it
// ever had concurrent write transactions. On SQLite, whose writes are
// serialized anyway, every transaction appends to audit.MainChain.
type auditWriters struct {
	mu     sync.Mutex
	free   []*lane
	made   int
	prefix string           // chain name prefix: host and a random suffix per Store
	writer string           // host and process, for each chain's open entry
	named  map[string]int64 // per chain, the newest seq this Store's anchors named
	since  int              // entries appended since this Store's last anchor
}

// lane is one chain of a Store's, used by one transaction at a time.
type lane struct {
	chain  string
	opened bool // its head row and open entry are committed
}

var mainLane = &lane{chain: audit.MainChain, opened: true}

// take returns a lane for one write transaction.
func (w *auditWriters) take(d Dialect) (*lane, error) {
	if d == SQLite {
		return mainLane, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := len(w.free); n > 0 {
		l := w.free[n-1]
		w.free = w.free[:n-1]
		return l, nil
	}
	if w.prefix == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("naming audit chain: %w", err)
		}
		host, _ := os.Hostname()
		host = strings.Map(func(r rune) rune {
			if r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				return r
			}
			return -1
		}, host)
		if len(host) > 40 {
			host = host[:40]
		}
		w.prefix = host + "-" + hex.EncodeToString(b[:])
		w.writer = fmt.Sprintf("%s pid %d", host, os.Getpid())
	}
	l := &lane{chain: w.prefix + "-" + strconv.Itoa(w.made)}
	w.made++
	return l, nil
}

// put gives l back after its transaction; c is that transaction's chain
// (nil if it never got one), committed whether it committed.
func (w *auditWriters) put(l *lane, c *chain, committed bool) {
	if l == mainLane {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if committed && c != nil {
		if len(c.pending) > 0 {
			l.opened = true
		}
		w.since += len(c.pending)
		if c.anchored != nil {
			w.since = 0
			if w.named == nil {
				w.named = make(map[string]int64)
			}
			for ch, seq := range c.anchored {
				w.named[ch] = max(w.named[ch], seq)
			}
		}
	}
	w.free = append(w.free, l)
}

// chain appends audit entries inside one write transaction. It is made by
// lockChain; its entries are inserted together by close.
type chain struct {
	s        *Store
	ctx      context.Context
	tx       *sqlx.Tx
	lane     *lane
	head     *audit.Entry // the last entry; nil before the first
	pending  []audit.Entry
	anchored map[string]int64 // the heads this transaction's anchor names
	ordered  bool             // orderChanges took the change_seq lock
}

// changeSeqLockKey is the PostgreSQL advisory lock that orders change_seq:
// migration 0007's trigger takes it before it draws a row's change_seq.
const changeSeqLockKey = 0x6a706b6963610002 // "jpkica" 0002

// orderChanges takes the change_seq lock for the rest of the transaction
// (PostgreSQL; SQLite's write lock orders everything). A transaction that
// moves change_seq calls it after its resident and card locks and before
// its first certificate write, so that it never holds a certificate row
// while it waits for the lock, and so never deadlocks with another that
// holds the lock and wants that row. The trigger takes the lock again for
// every row (it is re-entrant), so a path that forgets still orders
// change_seq correctly.
func (c *chain) orderChanges() error {
	if c.ordered || c.s.dialect != PostgreSQL {
		return nil
	}
	if _, err := c.tx.ExecContext(c.ctx, "SELECT pg_advisory_xact_lock($1)", int64(changeSeqLockKey)); err != nil {
		return fmt.Errorf("taking the change_seq lock: %w", c.s.classify(err))
	}
	c.ordered = true
	return nil
}

// lockChain takes the head of l's chain for the rest of tx: FOR UPDATE on
// PostgreSQL (a lane is one transaction's at a time, so this never waits
// unless two processes share a chain by mistake); on SQLite the IMMEDIATE
// transaction already holds the write lock. A new lane's head row is
// inserted here, and its open entry comes before its first entry.
func (s *Store) lockChain(ctx context.Context, tx *sqlx.Tx, l *lane) (*chain, error) {
	c := &chain{s: s, ctx: ctx, tx: tx, lane: l}
	if !l.opened {
		if _, err := tx.ExecContext(ctx, s.q("INSERT INTO audit_heads (chain, seq, hash) VALUES (?, 0, NULL)"), l.chain); err != nil {
			return nil, fmt.Errorf("opening audit chain %s: %w", l.chain, s.classify(err))
		}
		return c, nil
	}
	query := "SELECT seq, hash FROM audit_heads WHERE chain = ?"
	if s.dialect == PostgreSQL {
		query += " FOR UPDATE"
	}
	var (
		seq  int64
		hash []byte
	)
	if err := tx.QueryRowContext(ctx, s.q(query), l.chain).Scan(&seq, &hash); err != nil {
		return nil, fmt.Errorf("locking audit head %s: %w", l.chain, s.classify(err))
	}
	if seq > 0 {
		c.head = &audit.Entry{Chain: l.chain, Seq: seq, Hash: hash}
	}
	return c, nil
}

// add seals e after the head; close inserts it.
func (c *chain) add(e audit.Entry) error {
	if e.Action == "" || e.Actor == "" || e.Time.IsZero() {
		return fmt.Errorf("%w: audit entry needs an actor, an action and a time", ca.ErrInvalid)
	}
	if !c.lane.opened && len(c.pending) == 0 {
		if err := c.anchor(audit.ActionAuditOpen, e.Time); err != nil {
			return err
		}
	}
	c.seal(e)
	return nil
}

func (c *chain) seal(e audit.Entry) {
	e.Chain = c.lane.chain
	audit.Seal(&e, c.head)
	c.pending = append(c.pending, e)
	c.head = &e
}

// anchor adds an entry naming the heads of the other chains that moved
// since this Store last named them: an open entry always, an anchor entry
// only if some head moved. Heads are read as committed, without locks.
func (c *chain) anchor(action audit.Action, t time.Time) error {
	s := c.s
	rows, err := c.tx.QueryContext(c.ctx, s.q("SELECT chain, seq, hash FROM audit_heads WHERE chain <> ? AND seq > 0 ORDER BY chain"), c.lane.chain)
	if err != nil {
		return fmt.Errorf("reading audit heads: %w", s.classify(err))
	}
	defer rows.Close()
	var heads []audit.Anchor
	for rows.Next() {
		var a audit.Anchor
		if err := rows.Scan(&a.Chain, &a.Seq, &a.Hash); err != nil {
			return fmt.Errorf("reading audit heads: %w", s.classify(err))
		}
		heads = append(heads, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading audit heads: %w", s.classify(err))
	}
	d := audit.AnchorDetail{Heads: []audit.Anchor{}}
	s.aw.mu.Lock()
	for _, a := range heads {
		if a.Seq > s.aw.named[a.Chain] {
			d.Heads = append(d.Heads, a)
		}
	}
	if action == audit.ActionAuditOpen {
		d.Writer = s.aw.writer
	}
	s.aw.mu.Unlock()
	if action == audit.ActionAuditAnchor && len(d.Heads) == 0 {
		return nil
	}
	detail, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding audit anchor: %w", err)
	}
	c.anchored = make(map[string]int64, len(d.Heads))
	for _, a := range d.Heads {
		c.anchored[a.Chain] = a.Seq
	}
	c.seal(audit.Entry{Time: t, Actor: "system:audit", Action: action, Detail: detail})
	return nil
}

// close adds a cross-anchor if this Store is due one, inserts the entries
// added in one statement and moves the head to the last.
func (c *chain) close() error {
	if len(c.pending) == 0 {
		return nil
	}
	s := c.s
	if s.dialect == PostgreSQL && c.anchored == nil {
		s.aw.mu.Lock()
		due := s.aw.since+len(c.pending) >= anchorEvery
		s.aw.mu.Unlock()
		if due {
			if err := c.anchor(audit.ActionAuditAnchor, c.head.Time); err != nil {
				return err
			}
		}
	}
	var (
		b    strings.Builder
		args = make([]any, 0, 9*len(c.pending))
	)
	b.WriteString("INSERT INTO audit_log (chain, seq, time, actor, action, subject, detail, prev, hash) VALUES ")
	for i, e := range c.pending {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, e.Chain, e.Seq, e.Time, e.Actor, e.Action, e.Subject, string(e.Detail), e.Prev, e.Hash)
	}
	if _, err := c.tx.ExecContext(c.ctx, s.q(b.String()), args...); err != nil {
		return fmt.Errorf("appending audit entries %s:%d-%d: %w", c.lane.chain, c.pending[0].Seq, c.head.Seq, s.classify(err))
	}
	_, err := c.tx.ExecContext(c.ctx, s.q("UPDATE audit_heads SET seq = ?, hash = ? WHERE chain = ?"), c.head.Seq, c.head.Hash, c.lane.chain)
	if err != nil {
		return fmt.Errorf("moving audit head %s: %w", c.lane.chain, s.classify(err))
	}
	return nil
}

// writeAudited runs fn in a write transaction holding an audit chain of its
// own, and commits fn's changes with the entries it added.
func (s *Store) writeAudited(ctx context.Context, step string, fn func(tx *sqlx.Tx, c *chain) error) error {
	l, err := s.aw.take(s.dialect)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	var c *chain
	err = s.write(ctx, step, func(tx *sqlx.Tx) error {
		var err error
		if c, err = s.lockChain(ctx, tx, l); err != nil {
			return err
		}
		if err := fn(tx, c); err != nil {
			return err
		}
		return c.close()
	})
	s.aw.put(l, c, err == nil)
	return err
}

// AppendAudit appends a standalone audit entry (a CRL or OCSP signing, a key
// ceremony step). Chain, Seq, Prev and Hash are set by the store; Actor,
// Action and Time are required.
func (s *Store) AppendAudit(ctx context.Context, e audit.Entry) error {
	return s.writeAudited(ctx, "appending audit entry", func(_ *sqlx.Tx, c *chain) error {
		return c.add(e)
	})
}

const auditColumns = "id, chain, seq, time, actor, action, subject, detail, prev, hash"

// auditRows calls fn with each entry rows holds.
func (s *Store) auditRows(rows *sql.Rows, fn func(audit.Entry) error) error {
	defer rows.Close()
	for rows.Next() {
		var (
			e      audit.Entry
			t      time.Time
			detail []byte
		)
		if err := rows.Scan(&e.ID, &e.Chain, &e.Seq, &t, &e.Actor, &e.Action, &e.Subject, &detail, &e.Prev, &e.Hash); err != nil {
			return s.fail("reading audit entry", err)
		}
		e.Time = t.UTC()
		if len(detail) > 0 {
			e.Detail = detail
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail("reading audit log", err)
	}
	return nil
}

// AuditEntries streams the whole audit log to fn in ID order (each chain's
// entries in seq order, the chains interleaved), without loading it into
// memory. An error from fn stops the walk and is returned.
func (s *Store) AuditEntries(ctx context.Context, fn func(audit.Entry) error) error {
	rows, err := s.db.QueryContext(ctx, "SELECT "+auditColumns+" FROM audit_log ORDER BY id")
	if err != nil {
		return s.fail("reading audit log", err)
	}
	return s.auditRows(rows, fn)
}

// AuditAnchors streams the open and anchor entries of every chain, in ID
// order: what audit verify expects before it walks the log.
func (s *Store) AuditAnchors(ctx context.Context, fn func(audit.Entry) error) error {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+auditColumns+" FROM audit_log WHERE action IN (?, ?) ORDER BY id"),
		audit.ActionAuditOpen, audit.ActionAuditAnchor)
	if err != nil {
		return s.fail("reading audit anchors", err)
	}
	return s.auditRows(rows, fn)
}

// AuditPage returns up to limit audit entries with ID > after, in ID order:
// the API's paged read of the log. IDs are drawn when a transaction inserts
// its entries, so on PostgreSQL an entry may commit after another with a
// greater ID: a reader that pages while writers append can pass over it,
// and should page again from an older ID (or verify the chains) to be sure.
func (s *Store) AuditPage(ctx context.Context, after int64, limit int) ([]audit.Entry, error) {
	if limit <= 0 || limit > 1000 {
		return nil, fmt.Errorf("reading audit log: %w: limit %d out of 1..1000", ca.ErrInvalid, limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+auditColumns+" FROM audit_log WHERE id > ? ORDER BY id LIMIT ?"), after, limit)
	if err != nil {
		return nil, s.fail("reading audit log", err)
	}
	return s.collectAudit(rows)
}

// AuditHeads returns the head of every chain, as the transactions that
// appended to it recorded it.
func (s *Store) AuditHeads(ctx context.Context) ([]audit.Anchor, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT chain, seq, hash FROM audit_heads WHERE seq > 0 ORDER BY chain")
	if err != nil {
		return nil, s.fail("reading audit heads", err)
	}
	defer rows.Close()
	var out []audit.Anchor
	for rows.Next() {
		var a audit.Anchor
		if err := rows.Scan(&a.Chain, &a.Seq, &a.Hash); err != nil {
			return nil, s.fail("reading audit heads", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("reading audit heads", err)
	}
	return out, nil
}

// AuditReport is what VerifyAudit found.
type AuditReport struct {
	Entries int64          // entries verified, in all chains
	Chains  int            // chains walked
	Heads   []audit.Anchor // each chain's recorded head, read before the walk
}

// VerifyAudit checks every chain of the audit log: it walks each from its
// first entry, and checks that it still holds the entries that its recorded
// head, every open and anchor entry in the log, and each of kept (heads
// recorded earlier, outside the database) name. It returns an error
// wrapping audit.ErrBroken for the first entry that was changed, removed or
// reordered, or the first named entry that is missing (a chain cut short).
// Heads and anchors are read before the walk, so entries appended meanwhile
// do not fail it.
func (s *Store) VerifyAudit(ctx context.Context, kept []audit.Anchor) (AuditReport, error) {
	var v audit.Verifier
	for _, a := range kept {
		if err := v.Expect(a, "a kept head"); err != nil {
			return AuditReport{}, err
		}
	}
	heads, err := s.AuditHeads(ctx)
	if err != nil {
		return AuditReport{}, err
	}
	for _, h := range heads {
		if err := v.Expect(h, "the recorded head of "+h.Chain); err != nil {
			return AuditReport{}, err
		}
	}
	err = s.AuditAnchors(ctx, func(e audit.Entry) error {
		as, err := audit.Anchors(e)
		if err != nil {
			return err
		}
		for _, a := range as {
			if err := v.Expect(a, fmt.Sprintf("the anchor %s:%d", e.Chain, e.Seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return AuditReport{}, err
	}
	if err := s.AuditEntries(ctx, v.Next); err != nil {
		return AuditReport{}, err
	}
	if err := v.Finish(); err != nil {
		return AuditReport{}, err
	}
	return AuditReport{Entries: v.Count(), Chains: v.Chains(), Heads: heads}, nil
}
