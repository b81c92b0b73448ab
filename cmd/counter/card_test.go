package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/counter"
	"github.com/jpkica/jpkica/internal/softhsmtest"
)

// counterDesk is a counter terminal of 302015 with a card in its reader:
// the API, the terminal's files, and the card's two SoftHSM2 tokens with
// their transport PINs.
type counterDesk struct {
	s        *apitest.Server
	tk       *softhsmtest.Token
	authTk   string
	authPIN  string
	resident string // the resident record file
	dir      string
	stderr   bytes.Buffer // of the last run
}

func newCounterDesk(t *testing.T, opts apitest.Options) *counterDesk {
	t.Helper()
	s := apitest.New(t, opts)
	tk := softhsmtest.New(t)
	d := &counterDesk{s: s, tk: tk, authTk: tk.Label + "-auth", authPIN: "0000", dir: t.TempDir()}
	tk.InitToken(t, d.authTk, d.authPIN)
	cert, _ := s.Enrol(t, "counter", "302015", "desk-1", 24*time.Hour)
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"terminal.crt":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		"terminal.key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}),
		"server-ca.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Keyring.ClientCA.Cert.Raw}),
		"resident.json": []byte(`{"id": "R-302015-77", "municipality": "302015", "name": "和歌山　花子",
			"birth_date": "1990-05-02", "sex": "female", "address": "和歌山県和歌山市七番丁２３番地"}`),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(d.dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d.resident = filepath.Join(d.dir, "resident.json")
	return d
}

// run runs a card command (issue or renew) for card CARD-77 with env as
// the environment and extra flags, with --json, and returns the
// certificates it printed, which a visit that failed half-way prints too.
func (d *counterDesk) run(cmd string, env map[string]string, extra ...string) ([]wire.Issued, error) {
	out, err := d.runRaw(cmd, env, append([]string{"--json"}, extra...)...)
	var got []wire.Issued
	if len(out) > 0 {
		if jerr := json.Unmarshal(out, &got); jerr != nil {
			return nil, errors.Join(err, jerr)
		}
	}
	return got, err
}

// runRaw runs a card command as run does, and returns what it printed.
func (d *counterDesk) runRaw(cmd string, env map[string]string, extra ...string) ([]byte, error) {
	return d.command(env, append(append([]string{cmd}, args(d.flags())...), extra...)...)
}

// flags are the connection, card and visit flags of the desk, by name.
func (d *counterDesk) flags() map[string]string {
	return map[string]string{
		"api": d.s.URL, "cert": filepath.Join(d.dir, "terminal.crt"), "key": filepath.Join(d.dir, "terminal.key"),
		"ca":     filepath.Join(d.dir, "server-ca.crt"),
		"module": d.tk.Module, "sig-token": d.tk.Label, "auth-token": d.authTk,
		"resident": d.resident, "card-id": "CARD-77", "card-expires": "2036-05-02",
	}
}

// args is flags as a command line, in the order of their names.
func args(flags map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(flags)) {
		out = append(out, "--"+k, flags[k])
	}
	return out
}

// command runs the command line args on the desk, at the API's time, with
// env as the environment, and returns what it printed.
func (d *counterDesk) command(env map[string]string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	d.stderr.Reset()
	err := run(context.Background(), args, system{stdout: &out, stderr: &d.stderr,
		getenv: func(k string) string { return env[k] }, now: d.s.Clock.Now})
	return out.Bytes(), err
}

// certificates counts the card's certificates in the store.
func (d *counterDesk) certificates(t *testing.T) int {
	t.Helper()
	recs, err := d.s.Store.CertificatesByCard(context.Background(), "CARD-77")
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// TestIssueThenRenew: issue logs in to a new card with its transport PINs
// and sets the resident's; renew logs in to the card in use with the
// resident's PINs, a signature PIN typed in lower case included, and keeps
// them. A resident's PIN that breaks its rule is refused before it is
// tried on the card, a wrong one is named by its variable (never by its
// value), and neither issues anything.
func TestIssueThenRenew(t *testing.T) {
	d := newCounterDesk(t, apitest.Options{})
	issueEnv := map[string]string{
		"COUNTER_SIG_TRANSPORT_PIN": d.tk.PIN, "COUNTER_AUTH_TRANSPORT_PIN": d.authPIN,
		"COUNTER_SIG_PIN": "hanako2026", "COUNTER_AUTH_PIN": "4321",
	}
	for _, unset := range []string{"COUNTER_SIG_PIN", "COUNTER_AUTH_TRANSPORT_PIN"} {
		env := with(issueEnv, unset, "")
		if _, err := d.run("issue", env); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), unset) {
			t.Fatalf("issue without %s: %v, want a usage error naming it", unset, err)
		}
	}
	issued, err := d.run("issue", issueEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(issued) != 2 || d.certificates(t) != 2 {
		t.Fatalf("issue: %d certificates answered, %d stored; want 2", len(issued), d.certificates(t))
	}
	// The desk's terminal certificate expires in a day: the clerk is told.
	if !strings.Contains(d.stderr.String(), "this terminal's certificate expires on") {
		t.Fatalf("no expiry warning for a terminal certificate that expires in a day; stderr: %q", d.stderr.String())
	}

	renewEnv := map[string]string{"COUNTER_SIG_PIN": "hanako2026", "COUNTER_AUTH_PIN": "4321"}
	for _, c := range []struct {
		name    string
		env     map[string]string
		want    error
		mention string
	}{
		{"PIN breaking the rule", with(renewEnv, "COUNTER_AUTH_PIN", "43210"), counter.ErrPIN, "COUNTER_AUTH_PIN"},
		{"wrong signature PIN", with(renewEnv, "COUNTER_SIG_PIN", "hanako2027"), counter.ErrCard, "COUNTER_SIG_PIN"},
		{"transport PIN", with(renewEnv, "COUNTER_AUTH_PIN", d.authPIN), counter.ErrCard, "COUNTER_AUTH_PIN"},
	} {
		_, err := d.run("renew", c.env)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.mention) {
			t.Fatalf("renew with a %s: %v, want %v naming %s", c.name, err, c.want, c.mention)
		}
		for _, pin := range c.env {
			if strings.Contains(err.Error(), pin) || strings.Contains(err.Error(), strings.ToUpper(pin)) {
				t.Fatalf("renew with a %s: the error %q shows a PIN", c.name, err)
			}
		}
		if n := d.certificates(t); n != 2 {
			t.Fatalf("renew with a %s: %d certificates stored, want 2", c.name, n)
		}
	}

	renewed, err := d.run("renew", renewEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(renewed) != 2 || d.certificates(t) != 4 {
		t.Fatalf("renew: %d certificates answered, %d stored; want 2 and 4", len(renewed), d.certificates(t))
	}
	for i, r := range renewed {
		if !slices.Equal(r.Superseded, []string{issued[i].Serial}) {
			t.Errorf("renewed %s supersedes %v, want %s", r.Type, r.Superseded, issued[i].Serial)
		}
	}

	// The card keeps the resident's PINs, the signature PIN as folded.
	card, err := counter.OpenCard(counter.CardConfig{Module: d.tk.Module, SignatureToken: d.tk.Label, AuthenticationToken: d.authTk})
	if err != nil {
		t.Fatal(err)
	}
	defer card.Close()
	for typ, pin := range map[ca.CertType]string{ca.Signature: "HANAKO2026", ca.Authentication: "4321"} {
		if err := card.Login(typ, pin); err != nil {
			t.Errorf("after renewal, the %v PIN: %v", typ, err)
		}
		c, err := card.Certificate(typ)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.SerialNumber.Text(16); !slices.ContainsFunc(renewed, func(r wire.Issued) bool { return strings.TrimLeft(r.Serial, "0") == got }) {
			t.Errorf("the card's %v certificate is %s, not a renewed one", typ, got)
		}
	}
}

// with is m with k set to v ("" removes it).
func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{}
	for kk, vv := range m {
		out[kk] = vv
	}
	if v == "" {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// TestIssueHalfWay: a resident under 15 asked both certificates is told
// before anything is made on the card; with --types authentication the
// user-authentication certificate is issued and its PIN set. A visit the
// API stops at the signature certificate still sets the PIN of the
// user-authentication certificate it wrote, and shows it, before the error.
func TestIssueHalfWay(t *testing.T) {
	refuseSignatures := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if bytes.Contains(body, []byte(`"type":"signature"`)) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnprocessableEntity)
				io.WriteString(w, `{"error":{"code":"not_eligible","message":"not eligible: adult guardianship"}}`)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
		})
	}
	for _, c := range []struct {
		name     string
		opts     apitest.Options
		birth    string
		types    []string
		wantErr  func(error) bool
		wantAuth bool
	}{
		{"under 15, both asked", apitest.Options{}, "2016-04-10", nil,
			func(err error) bool { return errors.Is(err, ca.ErrNotEligible) }, false},
		{"under 15, user authentication", apitest.Options{}, "2016-04-10", []string{"--types", "authentication"},
			func(err error) bool { return err == nil }, true},
		{"signature refused by the API", apitest.Options{Wrap: refuseSignatures}, "1990-05-02", nil,
			func(err error) bool {
				var ae *counter.APIError
				return errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity
			}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newCounterDesk(t, c.opts)
			res := fmt.Sprintf(`{"id": "R-302015-78", "municipality": "302015", "name": "和歌山　次郎",
				"birth_date": %q, "sex": "male", "address": "和歌山県和歌山市七番丁２３番地"}`, c.birth)
			if err := os.WriteFile(d.resident, []byte(res), 0o600); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{
				"COUNTER_SIG_TRANSPORT_PIN": d.tk.PIN, "COUNTER_AUTH_TRANSPORT_PIN": d.authPIN,
				"COUNTER_SIG_PIN": "jiro2026", "COUNTER_AUTH_PIN": "4321",
			}
			got, err := d.run("issue", env, c.types...)
			if !c.wantErr(err) {
				t.Fatalf("issue: unexpected error %v", err)
			}
			wantN := 0
			if c.wantAuth {
				wantN = 1
			}
			if len(got) != wantN || d.certificates(t) != wantN || wantN == 1 && got[0].Type != "authentication" {
				t.Fatalf("issue printed %+v, stored %d; want %d user-authentication certificate(s)", got, d.certificates(t), wantN)
			}
			card, err := counter.OpenCard(counter.CardConfig{Module: d.tk.Module, SignatureToken: d.tk.Label, AuthenticationToken: d.authTk})
			if err != nil {
				t.Fatal(err)
			}
			defer card.Close()
			wantPIN := d.authPIN // untouched
			if c.wantAuth {
				wantPIN = "4321"
			}
			if err := card.Login(ca.Authentication, wantPIN); err != nil {
				t.Fatalf("the user-authentication PIN is not %s: %v", wantPIN, err)
			}
		})
	}
}
