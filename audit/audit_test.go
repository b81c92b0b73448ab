package audit

import (
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
