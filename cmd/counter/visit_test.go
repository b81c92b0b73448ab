package main

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/counter"
)

// settingNames are the flags and variables that err names, sorted.
func settingNames(err error) []string {
	var names []string
	var walk func(error)
	walk = func(e error) {
		if s, ok := e.(interface{ setting() string }); ok {
			names = append(names, s.setting())
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	slices.Sort(names)
	return names
}

// objects counts the objects of the card's two tokens by class, logged in
// with the PINs given.
func (d *counterDesk) objects(t *testing.T, sigPIN, authPIN string) [2]map[uint]int {
	t.Helper()
	return [2]map[uint]int{d.tk.Objects(t, d.tk.Label, sigPIN), d.tk.Objects(t, d.authTk, authPIN)}
}

func sameObjects(a, b [2]map[uint]int) bool { return maps.Equal(a[0], b[0]) && maps.Equal(a[1], b[1]) }

// writeFile writes a file of the desk's folder and returns its path.
func (d *counterDesk) writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(d.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// resident is a resident record of the municipality, born on birth.
func resident(municipality, birth string) string {
	return `{"id": "R-` + municipality + `-9", "municipality": "` + municipality + `", "name": "和歌山　三郎",
		"birth_date": "` + birth + `", "sex": "male", "address": "和歌山県和歌山市七番丁２３番地"}`
}

// issueEnv is the environment of an issuance onto the desk's new card.
func (d *counterDesk) issueEnv() map[string]string {
	return map[string]string{
		"COUNTER_SIG_TRANSPORT_PIN": d.tk.PIN, "COUNTER_AUTH_TRANSPORT_PIN": d.authPIN,
		"COUNTER_SIG_PIN": "hanako2026", "COUNTER_AUTH_PIN": "4321",
	}
}

// TestVisitChecksBeforeTheCard: every flag and combination of flags of
// issue, the config file and the PINs are checked before the card is
// touched. Each case is a usage error naming the flags and variables at
// fault (all of them at once), and leaves the card's tokens with the
// objects they had and the store without a certificate.
func TestVisitChecksBeforeTheCard(t *testing.T) {
	d := newCounterDesk(t, apitest.Options{})
	other := d.writeFile(t, "other.json", resident("131016", "1990-05-02"))
	young := d.writeFile(t, "young.json", resident("302015", "2016-04-10"))
	notJSON := d.writeFile(t, "not.json", `{"id": "R-1",`)
	before := d.objects(t, d.tk.PIN, d.authPIN)
	for _, c := range []struct {
		name  string
		flags map[string]string // changed; "" removes the flag
		env   map[string]string // changed; "" removes the variable
		later time.Duration     // the terminal's clock, after apitest.Start
		want  []string
	}{
		{"no --cert", map[string]string{"cert": ""}, nil, 0, []string{"--cert"}},
		{"no --key", map[string]string{"key": ""}, nil, 0, []string{"--key"}},
		{"no --ca", map[string]string{"ca": ""}, nil, 0, []string{"--ca"}},
		{"--cert names no file", map[string]string{"cert": filepath.Join(d.dir, "nope.crt")}, nil, 0, []string{"--cert"}},
		{"--key not a key", map[string]string{"key": filepath.Join(d.dir, "terminal.crt")}, nil, 0, []string{"--key"}},
		{"--ca not a certificate", map[string]string{"ca": d.resident}, nil, 0, []string{"--ca"}},
		{"--api not https", map[string]string{"api": "http://127.0.0.1:8443"}, nil, 0, []string{"--api"}},
		{"terminal certificate expired", nil, nil, 48 * time.Hour, []string{"--cert"}},
		{"no --module", map[string]string{"module": ""}, nil, 0, []string{"--module"}},
		{"--module names no file", map[string]string{"module": filepath.Join(d.dir, "libnope.so")}, nil, 0, []string{"--module"}},
		{"no --sig-token", map[string]string{"sig-token": ""}, nil, 0, []string{"--sig-token"}},
		{"one token for both areas", map[string]string{"auth-token": d.tk.Label}, nil, 0, []string{"--auth-token"}},
		{"no --resident", map[string]string{"resident": ""}, nil, 0, []string{"--resident"}},
		{"--resident not JSON", map[string]string{"resident": notJSON}, nil, 0, []string{"--resident"}},
		{"resident of another municipality", map[string]string{"resident": other}, nil, 0, []string{"--resident"}},
		{"no --card-id", map[string]string{"card-id": ""}, nil, 0, []string{"--card-id"}},
		{"--card-expires not a date", map[string]string{"card-expires": "2036-13-01"}, nil, 0, []string{"--card-expires"}},
		{"--card-expires passed", map[string]string{"card-expires": "2026-11-24"}, nil, 0, []string{"--card-expires"}},
		{"--types unknown", map[string]string{"types": "signature,terminal"}, nil, 0, []string{"--types"}},
		{"--types twice", map[string]string{"types": "signature,signature"}, nil, 0, []string{"--types"}},
		{"under 15, both types", map[string]string{"resident": young}, nil, 0, []string{"--types"}},
		{"--proxy-app without --answer", map[string]string{"proxy-app": strings.Repeat("0a", 16)}, nil, 0, []string{"--answer"}},
		{"--answer without --proxy-app", map[string]string{"answer": "ANSWER1"}, nil, 0, []string{"--proxy-app"}},
		{"--proxy-app malformed", map[string]string{"proxy-app": "APP-1", "answer": "ANSWER1"}, nil, 0, []string{"--proxy-app"}},
		{"--answer malformed", map[string]string{"proxy-app": strings.Repeat("0a", 16), "answer": "ANSWER-1"}, nil, 0, []string{"--answer"}},
		{"no resident's PIN", nil, map[string]string{"COUNTER_SIG_PIN": ""}, 0, []string{"COUNTER_SIG_PIN"}},
		{"resident's PIN breaking its rule", nil, map[string]string{"COUNTER_AUTH_PIN": "43210"}, 0, []string{"COUNTER_AUTH_PIN"}},
		{"COUNTER_CONFIG names no file", nil, map[string]string{"COUNTER_CONFIG": filepath.Join(d.dir, "nope.json")}, 0,
			[]string{"COUNTER_CONFIG"}},
		{"three at once", map[string]string{"cert": "", "card-id": ""}, map[string]string{"COUNTER_AUTH_TRANSPORT_PIN": ""}, 0,
			[]string{"--card-id", "--cert", "COUNTER_AUTH_TRANSPORT_PIN"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			flags, env := d.flags(), d.issueEnv()
			for k, v := range c.flags {
				flags = with(flags, k, v)
			}
			for k, v := range c.env {
				env = with(env, k, v)
			}
			d.s.Clock.Set(apitest.Start.Add(c.later))
			defer d.s.Clock.Set(apitest.Start)
			_, err := d.command(env, append([]string{"issue"}, args(flags)...)...)
			if got := settingNames(err); !errors.Is(err, errUsage) || !slices.Equal(got, c.want) {
				t.Fatalf("issue: %v\nnames %q, want a usage error naming %q", err, got, c.want)
			}
			for k, pin := range env {
				if !strings.HasSuffix(k, "_PIN") {
					continue
				}
				if strings.Contains(err.Error(), pin) || strings.Contains(err.Error(), strings.ToUpper(pin)) {
					t.Fatalf("the error %q shows a PIN", err)
				}
			}
			if after := d.objects(t, d.tk.PIN, d.authPIN); !sameObjects(after, before) {
				t.Fatalf("the card holds %v, before it held %v", after, before)
			}
			if n := d.certificates(t); n != 0 {
				t.Fatalf("%d certificates stored, want none", n)
			}
		})
	}
}

// TestCommandSettings: revoke, proxy and notices check their flags before
// they call the API, and name the flags at fault.
func TestCommandSettings(t *testing.T) {
	d := newCounterDesk(t, apitest.Options{})
	conn := without(d.flags(), "module", "sig-token", "auth-token", "resident", "card-id", "card-expires")
	visit := without(d.flags(), "module", "sig-token", "auth-token")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"revoke without --serial", append([]string{"revoke", "--reason", "keyCompromise"}, args(conn)...), []string{"--serial"}},
		{"revoke with a serial not in hex", append([]string{"revoke", "--serial", "xyz", "--reason", "keyCompromise"}, args(conn)...),
			[]string{"--serial"}},
		{"revoke with no reason of RFC 5280", append([]string{"revoke", "--serial", "0a", "--reason", "moved"}, args(conn)...),
			[]string{"--reason"}},
		{"revoke without --cert", []string{"revoke", "--serial", "0a", "--reason", "keyCompromise", "--key", conn["key"], "--ca", conn["ca"]},
			[]string{"--cert"}},
		{"proxy without --card-id", append([]string{"proxy"}, args(with(visit, "card-id", ""))...), []string{"--card-id"}},
		{"notices of another municipality", append([]string{"notices", "--municipality", "131016"}, args(conn)...),
			[]string{"--municipality"}},
		{"notices with a bad date", append([]string{"notices", "--on", "2031-02-30"}, args(conn)...), []string{"--on"}},
		{"notices as CSV and JSON", append([]string{"notices", "--csv", "--json"}, args(conn)...), []string{"--json"}},
		{"fee of nothing", []string{"fee", "--my-number-card"}, []string{"--signature, --authentication"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := d.command(nil, c.args...)
			if got := settingNames(err); !errors.Is(err, errUsage) || !slices.Equal(got, c.want) || len(out) > 0 {
				t.Fatalf("%v\nnames %q, printed %q; want a usage error naming %q", err, got, out, c.want)
			}
		})
	}
}

// without is m without the keys.
func without(m map[string]string, keys ...string) map[string]string {
	out := maps.Clone(m)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// TestRefusedRenewalsLeaveNoKeys: two renewals that the API refuses after
// the key was made on the card (another card expiry; a proxy whose answer
// code is wrong) leave the card with the keys it held before: the key
// pair of each refused visit is deleted, and the certified keys stay.
func TestRefusedRenewalsLeaveNoKeys(t *testing.T) {
	d := newCounterDesk(t, apitest.Options{})
	if _, err := d.run("issue", d.issueEnv()); err != nil {
		t.Fatal(err)
	}
	renewEnv := map[string]string{"COUNTER_SIG_PIN": "hanako2026", "COUNTER_AUTH_PIN": "4321"}
	before := d.objects(t, "HANAKO2026", "4321")
	if before[0][pkcs11.CKO_PRIVATE_KEY] != 1 || before[1][pkcs11.CKO_PRIVATE_KEY] != 1 {
		t.Fatalf("after the issuance the card holds %v, want one private key a token", before)
	}
	out, err := d.command(nil, append([]string{"proxy", "--json"}, args(without(d.flags(), "module", "sig-token", "auth-token"))...)...)
	if err != nil {
		t.Fatal(err)
	}
	var app wire.ProxyApplicationResponse
	if err := json.Unmarshal(out, &app); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		extra  []string
		status int
		names  []string // the flags the refusal points at
	}{
		{"another card expiry", []string{"--card-expires", "2035-05-02"}, http.StatusConflict, []string{"--card-expires"}},
		{"a proxy's wrong answer code", []string{"--proxy-app", app.ApplicationID, "--answer", "WRONG0ANSWER"},
			http.StatusUnprocessableEntity, nil},
	} {
		got, err := d.run("renew", renewEnv, c.extra...)
		var ae *counter.APIError
		if !errors.As(err, &ae) || ae.Status != c.status || len(got) != 0 || !slices.Equal(settingNames(err), c.names) {
			t.Fatalf("renew with %s: printed %d certificates, %v (naming %q); want API status %d naming %q",
				c.name, len(got), err, settingNames(err), c.status, c.names)
		}
		if after := d.objects(t, "HANAKO2026", "4321"); !sameObjects(after, before) {
			t.Fatalf("after renewing with %s the card holds %v, before it held %v", c.name, after, before)
		}
	}
	if n := d.certificates(t); n != 2 {
		t.Fatalf("%d certificates stored, want the 2 first issued", n)
	}
}
