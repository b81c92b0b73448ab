package crl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
)

// TestRunDue: everything missing is published at once; later, only what is
// due: the deltas of the partition a revocation touched (and the full
// delta), after DeltaDelay; complete CRLs after Interval.
func TestRunDue(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	ctx := context.Background()
	clock := newClock(crlNow)
	u := f.updater(t, clock, crl.Config{DeltaInterval: time.Hour, DeltaDelay: time.Minute}, nil)
	numbers := func() map[string]string {
		out := map[string]string{}
		files, _ := filepath.Glob(filepath.Join(f.dir, "*", "*.json"))
		for _, file := range files {
			b, _ := os.ReadFile(file)
			var m struct{ Number json.Number }
			json.Unmarshal(b, &m)
			rel, _ := filepath.Rel(f.dir, file)
			out[rel] = m.Number.String()
		}
		return out
	}
	if err := u.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	first := numbers()
	// 4 issuers x (full + 2 partitions) x (complete + delta)
	if len(first) != 24 {
		t.Fatalf("published %d CRLs: %v", len(first), first)
	}
	clock.add(10 * time.Minute)
	if err := u.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := numbers(); fmt.Sprint(got) != fmt.Sprint(first) {
		t.Fatalf("nothing was due, but CRLs changed:\n%v\n%v", first, got)
	}

	var target fixtureCert
	for _, c := range f.certs {
		if c.want == wantGood && c.rec.Municipality == "082201" {
			target = c
			break
		}
	}
	if _, err := f.st.ChangeStatus(ctx, ca.StatusChange{Serials: []ca.Serial{target.rec.Serial}, Status: ca.Revoked,
		Reason: ca.KeyCompromise, At: clock.now(), Audit: audit.Entry{Actor: "admin:test", Action: audit.ActionCertificateRevoke}}); err != nil {
		t.Fatal(err)
	}
	if err := u.RunDue(ctx); err != nil { // change seen, DeltaDelay not over
		t.Fatal(err)
	}
	if got := numbers(); fmt.Sprint(got) != fmt.Sprint(first) {
		t.Fatal("deltas regenerated before DeltaDelay")
	}
	clock.add(2 * time.Minute)
	if err := u.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	got := numbers()
	var changed []string
	for k, v := range got {
		if first[k] != v {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	id := target.rec.IssuerID
	want := []string{id + "/082201-delta.json", id + "/full-delta.json"}
	if fmt.Sprint(changed) != fmt.Sprint(want) {
		t.Fatalf("regenerated %v, want %v", changed, want)
	}
	_, entries := readCRL(t, filepath.Join(f.dir, id, "082201-delta.crl"), target.issuer.Cert)
	if e, ok := entries[target.rec.Serial]; !ok || e.Reason != ca.KeyCompromise {
		t.Fatalf("the delta lacks the revocation: %v", entries)
	}

	clock.add(24 * time.Hour)
	if err := u.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	for k, v := range numbers() {
		if got[k] == v {
			t.Errorf("%s not regenerated after a day", k)
		}
	}
}
