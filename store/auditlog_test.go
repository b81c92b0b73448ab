package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jpkica/jpkica/audit"
)

// auditChains writes a log of two writers on one database: the first Store
// appends four entries, then a second Store appends three. On PostgreSQL
// each Store has its own chain, and the second's open entry names the
// first's head; on SQLite both append to the main chain. It returns the
// chains in the order they began, and their heads.
func auditChains(t *testing.T, dsn newDSN) (*Store, []string, []audit.Anchor) {
	t.Helper()
	d := dsn(t)
	ctx := context.Background()
	for w, n := range []int{4, 3} {
		s := mustOpen(t, d)
		for i := range n {
			e := audit.Entry{Time: t0, Actor: "system", Action: audit.ActionOCSPSign, Subject: fmt.Sprintf("writer-%d-%d", w, i)}
			if err := s.AppendAudit(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := mustOpen(t, d)
	var chains []string
	if err := s.db.SelectContext(ctx, &chains, "SELECT chain FROM audit_log GROUP BY chain ORDER BY min(id)"); err != nil {
		t.Fatal(err)
	}
	r, err := s.VerifyAudit(ctx, nil)
	if err != nil {
		t.Fatalf("before tampering: %v", err)
	}
	if want := map[Dialect]int{SQLite: 1, PostgreSQL: 2}[s.dialect]; len(chains) != want || r.Chains != want || len(r.Heads) != want {
		t.Fatalf("%d chains (%d walked, %d heads), want %d", len(chains), r.Chains, len(r.Heads), want)
	}
	return s, chains, r.Heads
}

// testAuditChainsTampered: an edit, a deletion, a reordering and a
// truncation of the newest entries of any chain each fail VerifyAudit (a
// truncation that also rewrote the chain's head only if an anchor in
// another chain, or a head kept outside the database, names a lost entry).
func testAuditChainsTampered(t *testing.T, dsn newDSN, _ func(*testing.T) *Store) {
	ctx := context.Background()
	_, first, _ := auditChains(t, dsn)
	const (
		truncate = `DELETE FROM audit_log WHERE chain = ? AND seq = (SELECT max(seq) FROM audit_log WHERE chain = ?)`
		// Move the head back onto what is now the chain's last entry.
		rewriteHead = `UPDATE audit_heads SET seq = seq - 1,
hash = (SELECT hash FROM audit_log WHERE audit_log.chain = audit_heads.chain AND audit_log.seq = audit_heads.seq - 1) WHERE chain = ?`
	)
	type tamper struct {
		name string
		sql  []string // each with the chain's name for every ?
		kept bool     // verify against the heads read before tampering
		ok   bool     // what the tampering leaves verifies
	}
	for i := range first {
		anchoredElsewhere := i < len(first)-1 // a later chain's open entry names this one's head
		for _, tt := range []tamper{
			{"edited", []string{"UPDATE audit_log SET subject = 'x' WHERE chain = ? AND seq = 2"}, false, false},
			{"deleted", []string{"DELETE FROM audit_log WHERE chain = ? AND seq = 2"}, false, false},
			{"reordered", []string{
				"UPDATE audit_log SET seq = -2 WHERE chain = ? AND seq = 2",
				"UPDATE audit_log SET seq = 2 WHERE chain = ? AND seq = 3",
				"UPDATE audit_log SET seq = 3 WHERE chain = ? AND seq = -2",
			}, false, false},
			{"newest deleted", []string{truncate}, false, false},
			{"newest deleted, head rewritten", []string{truncate, rewriteHead}, false, !anchoredElsewhere},
			{"newest deleted, head rewritten, heads kept", []string{truncate, rewriteHead}, true, false},
			{"head forged", []string{`UPDATE audit_heads SET
hash = (SELECT prev FROM audit_log WHERE audit_log.chain = audit_heads.chain AND audit_log.seq = audit_heads.seq) WHERE chain = ?`}, false, false},
			{"whole chain deleted", []string{"DELETE FROM audit_log WHERE chain = ?", "DELETE FROM audit_heads WHERE chain = ?"}, false, !anchoredElsewhere},
		} {
			t.Run(fmt.Sprintf("chain %d %s", i, tt.name), func(t *testing.T) {
				s, chains, heads := auditChains(t, dsn)
				for _, q := range tt.sql {
					args := make([]any, 0, 2)
					for range strings.Count(q, "?") {
						args = append(args, chains[i])
					}
					if _, err := s.db.ExecContext(ctx, s.q(q), args...); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				var kept []audit.Anchor
				if tt.kept {
					kept = heads
				}
				_, err := s.VerifyAudit(ctx, kept)
				switch {
				case tt.ok && err != nil:
					t.Fatalf("VerifyAudit = %v, want it to pass (nothing names the lost entries)", err)
				case !tt.ok && !errors.Is(err, audit.ErrBroken):
					t.Fatalf("VerifyAudit = %v, want ErrBroken", err)
				}
			})
		}
	}
}

// TestCrossAnchors: after anchorEvery entries a Store anchors the heads of
// the other chains that moved (PostgreSQL; SQLite has one chain), and the
// anchor is checked: cutting the entry it names off the other chain fails
// VerifyAudit even with that chain's head rewritten.
func TestCrossAnchors(t *testing.T) {
	d := postgresDSNs(t)
	ctx := context.Background()
	s1, s2 := mustOpen(t, d), mustOpen(t, d)
	add := func(s *Store, n int) {
		for range n {
			if err := s.AppendAudit(ctx, audit.Entry{Time: t0, Actor: "system", Action: audit.ActionCRLPublish}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(s2, 1) // s2's chain opens before s1 has one: its open entry names nothing
	add(s1, 2)
	add(s2, anchorEvery)
	var anchors []audit.Entry
	if err := s1.AuditAnchors(ctx, func(e audit.Entry) error {
		if e.Action == audit.ActionAuditAnchor {
			anchors = append(anchors, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(anchors) != 1 {
		t.Fatalf("%d anchor entries, want 1", len(anchors))
	}
	as, err := audit.Anchors(anchors[0])
	if err != nil || len(as) != 1 || as[0].Seq != 3 {
		t.Fatalf("the anchor names %+v (%v), want the other chain's entry 3", as, err)
	}
	if _, err := s1.VerifyAudit(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"DELETE FROM audit_log WHERE chain = $1 AND seq = 3",
		"UPDATE audit_heads SET seq = 2, hash = (SELECT hash FROM audit_log WHERE chain = $1 AND seq = 2) WHERE chain = $1",
	} {
		if _, err := s1.db.ExecContext(ctx, q, as[0].Chain); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s1.VerifyAudit(ctx, nil); !errors.Is(err, audit.ErrBroken) {
		t.Fatalf("VerifyAudit after the anchored entry was cut = %v, want ErrBroken", err)
	}
}
