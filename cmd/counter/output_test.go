package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
)

// lines splits what a command printed into its lines.
func lines(out []byte) []string {
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// TestOutput: issue and renew print one line per certificate (type,
// serial, last day in Japan, what it supersedes), revoke one line, notices
// one line per certificate due, proxy the application; --json prints the
// API's full answer, PEM included. Resident 1990-05-02, issued 2026-11-25:
// the certificates run to 2031-05-02 23:59:59 JST, whose renewal window
// opens 2031-02-02; the API's clock stands at 2026-11-25 12:00 JST.
func TestOutput(t *testing.T) {
	d := newCounterDesk(t, apitest.Options{})
	out, err := d.runRaw("issue", d.issueEnv())
	if err != nil {
		t.Fatal(err)
	}
	recs, err := d.s.Store.CertificatesByCard(t.Context(), "CARD-77")
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d certificates stored (%v), want 2", len(recs), err)
	}
	serial := map[string]string{} // by type
	for _, r := range recs {
		serial[r.Type.String()] = r.Serial.Hex()
	}
	want := []string{
		"authentication  " + serial["authentication"] + "  not after 2031-05-02",
		"signature       " + serial["signature"] + "  not after 2031-05-02",
	}
	if got := lines(out); !slices.Equal(got, want) {
		t.Fatalf("issue printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A renewal's line names the certificate it supersedes.
	renewEnv := map[string]string{"COUNTER_SIG_PIN": "hanako2026", "COUNTER_AUTH_PIN": "4321"}
	out, err = d.runRaw("renew", renewEnv)
	if err != nil {
		t.Fatal(err)
	}
	got := lines(out)
	for i, typ := range []string{"authentication", "signature"} {
		fields := strings.Fields(got[min(i, len(got)-1)])
		if len(got) != 2 || len(fields) != 7 {
			t.Fatalf("renew printed\n%s\nwant 2 lines of 7 fields", out)
		}
		if want := fmt.Sprintf("%-14s  %s  not after 2031-05-02  supersedes %s", typ, fields[1], serial[typ]); got[i] != want {
			t.Fatalf("renew printed\n%s\nwant\n%s", got[i], want)
		}
		serial[typ] = fields[1]
	}

	out, err = d.runRaw("renew", renewEnv, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var renewed []wire.Issued
	if err := json.Unmarshal(out, &renewed); err != nil {
		t.Fatalf("renew --json: %v\n%s", err, out)
	}
	for _, r := range renewed {
		if !strings.HasPrefix(r.Certificate, "-----BEGIN CERTIFICATE-----") || len(r.Chain) == 0 ||
			!slices.Equal(r.Superseded, []string{serial[r.Type]}) || r.NotAfter != "2031-05-02T14:59:59Z" {
			t.Fatalf("renew --json: %+v, want the full answer, superseding %s", r, serial[r.Type])
		}
		serial[r.Type] = r.Serial
	}

	conn := without(d.flags(), "module", "sig-token", "auth-token", "resident", "card-id", "card-expires")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"notices", []string{"notices", "--on", "2031-03-01"}, []string{
			"authentication  " + serial["authentication"] + "  card CARD-77  resident R-302015-77  not after 2031-05-02  window opens 2031-02-02",
			"signature       " + serial["signature"] + "  card CARD-77  resident R-302015-77  not after 2031-05-02  window opens 2031-02-02",
		}},
		{"no notices", []string{"notices", "--on", "2031-01-01"}, []string{
			"no certificate of 302015 is due for an expiry notice on 2031-01-01",
		}},
		{"revoke", []string{"revoke", "--serial", serial["signature"], "--reason", "keycompromise"}, []string{
			"signature       " + serial["signature"] + "  revoked (keyCompromise) 2026-11-25 12:00 JST  not after 2031-05-02",
		}},
	} {
		out, err := d.command(nil, append(c.args, args(conn)...)...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		// The API lists notices in an order of its own.
		if got := lines(out); !slices.Equal(slices.Sorted(slices.Values(got)), c.want) {
			t.Fatalf("%s printed\n%s\nwant\n%s", c.name, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}

	out, err = d.command(nil, append([]string{"notices", "--on", "2031-03-01", "--json"}, args(conn)...)...)
	var notices wire.RenewalNotices
	if err != nil || json.Unmarshal(out, &notices) != nil || len(notices.Notices) != 1 || notices.Notices[0].Serial != serial["authentication"] {
		t.Fatalf("notices --json: %v\n%s\nwant the user-authentication certificate's notice", err, out)
	}
	out, err = d.command(nil, append([]string{"revoke", "--serial", serial["authentication"], "--reason", "keyCompromise", "--json"}, args(conn)...)...)
	var rec wire.Certificate
	if err != nil || json.Unmarshal(out, &rec) != nil || rec.Status != "revoked" || !strings.HasPrefix(rec.Certificate, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("revoke --json: %v\n%s\nwant the revoked record with its certificate", err, out)
	}

	visit := without(d.flags(), "module", "sig-token", "auth-token")
	out, err = d.command(nil, append([]string{"proxy"}, args(visit)...)...)
	if err != nil {
		t.Fatal(err)
	}
	var id, code string
	got = lines(out)
	if n, err := fmt.Sscanf(got[0], "proxy application %s  inquiry code %s  the answer is accepted from 2026-11-26", &id, &code); n != 2 || err != nil ||
		len(got) != 2 || !strings.HasPrefix(got[1], "mail the inquiry to the resident's registered address") {
		t.Fatalf("proxy printed\n%s\nwant the application, its inquiry code and the day the answer is accepted from (%v)", out, err)
	}
}
