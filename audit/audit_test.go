package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func chainOf(n int) []Entry {
	var out []Entry
	var prev *Entry
	for i := 0; i < n; i++ {
		e := Entry{
			Time:    time.Date(2026, 11, 25, 3, 0, i, 123456789, time.UTC),
			Actor:   "counter:302015:t1",
			Action:  ActionCertificateIssue,
			Subject: fmt.Sprintf("%032x", i),
			Detail:  json.RawMessage(`{"type":"signature"}`),
		}
		Seal(&e, prev)
		out = append(out, e)
		prev = &out[len(out)-1]
	}
	return out
}

func verify(entries []Entry) error {
	var v Verifier
	for _, e := range entries {
		if err := v.Next(e); err != nil {
			return err
		}
	}
	return nil
}

func TestSealTruncatesTime(t *testing.T) {
	c := chainOf(1)
	if c[0].Time.Nanosecond()%1000 != 0 || c[0].Seq != 1 || string(c[0].Prev) != string(Genesis) {
		t.Fatalf("first entry: seq %d time %v prev %x", c[0].Seq, c[0].Time, c[0].Prev)
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name   string
		tamper func([]Entry) []Entry
		ok     bool
	}{
		{"intact", func(c []Entry) []Entry { return c }, true},
		{"actor edited", func(c []Entry) []Entry { c[2].Actor = "admin:mallory"; return c }, false},
		{"detail edited", func(c []Entry) []Entry { c[3].Detail = json.RawMessage(`{"type":"authentication"}`); return c }, false},
		{"time edited", func(c []Entry) []Entry { c[1].Time = c[1].Time.Add(time.Second); return c }, false},
		{"edited and rehashed", func(c []Entry) []Entry { c[2].Subject = "x"; c[2].Hash = hash(&c[2]); return c }, false},
		{"middle entry deleted", func(c []Entry) []Entry { return append(c[:2:2], c[3:]...) }, false},
		{"first entry deleted", func(c []Entry) []Entry { return c[1:] }, false},
		{"two entries swapped", func(c []Entry) []Entry { c[1], c[2] = c[2], c[1]; return c }, false},
		{"swapped and renumbered", func(c []Entry) []Entry {
			c[1], c[2] = c[2], c[1]
			c[1].Seq, c[2].Seq = 2, 3
			return c
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verify(tt.tamper(chainOf(5)))
			if tt.ok && err != nil {
				t.Fatalf("intact chain: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrBroken) {
				t.Fatalf("tampered chain verified: %v", err)
			}
		})
	}
}

func TestVerifierCount(t *testing.T) {
	var v Verifier
	for _, e := range chainOf(4) {
		if err := v.Next(e); err != nil {
			t.Fatal(err)
		}
	}
	if v.Count() != 4 {
		t.Fatalf("Count = %d", v.Count())
	}
}

// chains builds the main chain of n entries and a writer's chain "w" that
// opens naming main's entry k, then appends m entries of its own.
func chains(t *testing.T, n, k, m int) (main, w []Entry) {
	t.Helper()
	main = chainOf(n)
	detail, err := json.Marshal(AnchorDetail{Writer: "node-1", Heads: []Anchor{{Chain: MainChain, Seq: main[k-1].Seq, Hash: main[k-1].Hash}}})
	if err != nil {
		t.Fatal(err)
	}
	var prev *Entry
	for i := 0; i <= m; i++ {
		e := Entry{Chain: "w", Time: time.Date(2026, 11, 25, 4, 0, i, 0, time.UTC), Actor: "system", Action: ActionOCSPSign, Subject: "r1"}
		if i == 0 {
			e.Action, e.Detail = ActionAuditOpen, detail
		}
		Seal(&e, prev)
		w = append(w, e)
		prev = &w[len(w)-1]
	}
	return main, w
}

// verifyAll walks the chains interleaved, after expecting every anchor in
// them and every given head, as `jpkica audit verify` does.
func verifyAll(heads []Anchor, cs ...[]Entry) error {
	var v Verifier
	for _, c := range cs {
		for _, e := range c {
			as, err := Anchors(e)
			if err != nil {
				return err
			}
			for _, a := range as {
				if err := v.Expect(a, "anchor"); err != nil {
					return err
				}
			}
		}
	}
	for _, h := range heads {
		if err := v.Expect(h, "head"); err != nil {
			return err
		}
	}
	for i := 0; ; i++ {
		more := false
		for _, c := range cs {
			if i < len(c) {
				more = true
				if err := v.Next(c[i]); err != nil {
					return err
				}
			}
		}
		if !more {
			break
		}
	}
	return v.Finish()
}

func head(c []Entry) Anchor {
	if len(c) == 0 {
		return Anchor{}
	}
	e := c[len(c)-1]
	return Anchor{Chain: e.Chain, Seq: e.Seq, Hash: e.Hash}
}

func TestVerifyChains(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(main, w []Entry) (heads []Anchor, cs [][]Entry)
		ok     bool
	}{
		{"intact", func(m, w []Entry) ([]Anchor, [][]Entry) { return []Anchor{head(m), head(w)}, [][]Entry{m, w} }, true},
		{"intact, no heads", func(m, w []Entry) ([]Anchor, [][]Entry) { return nil, [][]Entry{m, w} }, true},
		{"main edited", func(m, w []Entry) ([]Anchor, [][]Entry) {
			m[1].Actor = "admin:mallory"
			return nil, [][]Entry{m, w}
		}, false},
		{"writer's entry edited", func(m, w []Entry) ([]Anchor, [][]Entry) {
			w[2].Subject = "r2"
			return nil, [][]Entry{m, w}
		}, false},
		{"writer's entry deleted", func(m, w []Entry) ([]Anchor, [][]Entry) {
			return nil, [][]Entry{m, append(w[:1:1], w[2:]...)}
		}, false},
		{"writer's entries swapped", func(m, w []Entry) ([]Anchor, [][]Entry) {
			w[1], w[2] = w[2], w[1]
			return nil, [][]Entry{m, w}
		}, false},
		{"entry moved to another chain", func(m, w []Entry) ([]Anchor, [][]Entry) {
			w[3].Chain = "x"
			return nil, [][]Entry{m, w[:3], w[3:]}
		}, false},
		{"open entry deleted", func(m, w []Entry) ([]Anchor, [][]Entry) {
			return nil, [][]Entry{m, w[1:]}
		}, false},
		// main's newest entries cut, and its recorded head rewritten to
		// match: the writer's open entry still names main's entry 4.
		{"main truncated after the anchor", func(m, w []Entry) ([]Anchor, [][]Entry) {
			return []Anchor{head(m[:3]), head(w)}, [][]Entry{m[:3], w}
		}, false},
		// Entries after the one the anchor names are only covered by the
		// recorded head (or a head kept outside the database).
		{"main truncated past the anchor, head rewritten", func(m, w []Entry) ([]Anchor, [][]Entry) {
			return []Anchor{head(m[:4]), head(w)}, [][]Entry{m[:4], w}
		}, true},
		{"main truncated past the anchor, head kept", func(m, w []Entry) ([]Anchor, [][]Entry) {
			return []Anchor{head(m), head(w)}, [][]Entry{m[:4], w}
		}, false},
		{"writer's chain truncated, head kept", func(m, w []Entry) ([]Anchor, [][]Entry) {
			return []Anchor{head(m), head(w)}, [][]Entry{m, w[:2]}
		}, false},
		{"writer's chain deleted, anchored head kept", func(m, w []Entry) ([]Anchor, [][]Entry) {
			return []Anchor{head(m), head(w)}, [][]Entry{m}
		}, false},
		{"forged anchor, chain rehashed", func(m, w []Entry) ([]Anchor, [][]Entry) {
			d, _ := json.Marshal(AnchorDetail{Heads: []Anchor{{Chain: MainChain, Seq: 4, Hash: m[2].Hash}}})
			w[0].Detail = d
			var prev *Entry
			for i := range w {
				Seal(&w[i], prev)
				prev = &w[i]
			}
			return nil, [][]Entry{m, w}
		}, false},
		{"head disagrees with anchor", func(m, w []Entry) ([]Anchor, [][]Entry) {
			return []Anchor{{Chain: MainChain, Seq: 4, Hash: m[1].Hash}}, [][]Entry{m, w}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, w := chains(t, 6, 4, 4)
			heads, cs := tt.tamper(m, w)
			err := verifyAll(heads, cs...)
			if tt.ok && err != nil {
				t.Fatalf("intact chains: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrBroken) {
				t.Fatalf("tampered chains verified: %v", err)
			}
		})
	}
}

// TestMainChainHash: the main chain's entries hash without the chain's
// name, as entries did before there were chains; other chains' hashes cover
// it.
func TestMainChainHash(t *testing.T) {
	e := chainOf(1)[0]
	legacy := hash(&e)
	e.Chain = MainChain
	if !bytes.Equal(hash(&e), legacy) {
		t.Error("main chain hash differs from the hash without a chain")
	}
	e.Chain = "w"
	if bytes.Equal(hash(&e), legacy) {
		t.Error("a writer's chain hash does not cover the chain")
	}
}
