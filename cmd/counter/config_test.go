package main

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/counter"
)

// TestConfig: a terminal is set up once in a config file, which the
// commands read from the file COUNTER_CONFIG names, else from
// $XDG_CONFIG_HOME/jpkica-counter.json, else from
// ~/.config/jpkica-counter.json; relative paths in it are taken from its
// folder, and a flag overrides it. A file COUNTER_CONFIG names must exist;
// a file with an unknown key or a PIN is refused, naming the file and the
// key but never the value.
func TestConfig(t *testing.T) {
	d := newCounterDesk(t, apitest.Options{})
	flags := d.flags()
	// setup is a config file for the API at api, in a folder up from the
	// desk's folder (its certificate and key are named relative to it).
	setup := func(api, up string) string {
		b, err := json.Marshal(map[string]string{
			"api": api, "cert": up + "/terminal.crt", "key": up + "/terminal.key", "ca": filepath.Join(d.dir, "server-ca.crt"),
			"module": flags["module"], "sig-token": flags["sig-token"], "auth-token": flags["auth-token"],
		})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	good := d.writeFile(t, "etc/good.json", setup(d.s.URL, ".."))
	deaf := d.writeFile(t, "etc/deaf.json", setup("https://127.0.0.1:1", "..")) // nothing listens there
	d.writeFile(t, "xdg/jpkica-counter.json", setup(d.s.URL, ".."))
	d.writeFile(t, "home/.config/jpkica-counter.json", setup(d.s.URL, "../.."))
	unknown := d.writeFile(t, "etc/unknown.json", `{"api": "`+d.s.URL+`", "url": "https://127.0.0.1:8443"}`)
	withPIN := d.writeFile(t, "etc/pin.json", `{"api": "`+d.s.URL+`", "sig-pin": "SECRET1234"}`)
	badCert := d.writeFile(t, "etc/bad-cert.json", `{"api": "`+d.s.URL+`", "cert": "nope.crt"}`)

	// The card flags come from the file too: issue needs only the visit's.
	visit := []string{"--resident", d.resident, "--card-id", "CARD-77", "--card-expires", "2036-05-02"}
	if _, err := d.command(with(d.issueEnv(), "COUNTER_CONFIG", good), append([]string{"issue"}, visit...)...); err != nil {
		t.Fatal(err)
	}
	if n := d.certificates(t); n != 2 {
		t.Fatalf("issue with the config file: %d certificates stored, want 2", n)
	}

	// Which file, and the flags before it, on the notices of those two
	// certificates.
	notices := []string{"notices", "--on", "2031-03-01"}
	for _, c := range []struct {
		name  string
		env   map[string]string
		flags []string
		want  []string // the settings the error names; nil: no error
		is    error    // what the error is, besides
	}{
		{"COUNTER_CONFIG", map[string]string{"COUNTER_CONFIG": good}, nil, nil, nil},
		{"XDG_CONFIG_HOME", map[string]string{"XDG_CONFIG_HOME": filepath.Join(d.dir, "xdg"), "HOME": "/nonexistent"}, nil, nil, nil},
		{"HOME", map[string]string{"HOME": filepath.Join(d.dir, "home")}, nil, nil, nil},
		{"COUNTER_CONFIG before the default file", map[string]string{"COUNTER_CONFIG": deaf, "HOME": filepath.Join(d.dir, "home")}, nil,
			[]string{"--api"}, counter.ErrNoAnswer},
		{"a flag before the file", map[string]string{"COUNTER_CONFIG": deaf}, []string{"--api", d.s.URL}, nil, nil},
		{"a flag before the file, which is right", map[string]string{"COUNTER_CONFIG": good}, []string{"--api", "https://127.0.0.1:1"},
			[]string{"--api"}, counter.ErrNoAnswer},
		{"no file", nil, nil, []string{"--ca", "--cert", "--key"}, errUsage},
		{"COUNTER_CONFIG names no file", map[string]string{"COUNTER_CONFIG": filepath.Join(d.dir, "etc/nope.json")}, nil,
			[]string{"COUNTER_CONFIG"}, errUsage},
		{"an unknown key", map[string]string{"COUNTER_CONFIG": unknown}, nil, []string{"COUNTER_CONFIG"}, errUsage},
		{"a PIN in the file", map[string]string{"COUNTER_CONFIG": withPIN}, nil, []string{"COUNTER_CONFIG"}, errUsage},
		{"a bad path in the file", map[string]string{"COUNTER_CONFIG": badCert}, nil, []string{"--ca", "--cert", "--key"}, errUsage},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := d.command(c.env, append(slices.Clone(notices), c.flags...)...)
			if c.want == nil {
				if err != nil || len(lines(out)) != 2 {
					t.Fatalf("notices: %v\n%s\nwant 2 notices", err, out)
				}
				return
			}
			if got := settingNames(err); !slices.Equal(got, c.want) || !errors.Is(err, c.is) {
				t.Fatalf("notices: %v\nnames %q, want %q and %v", err, got, c.want, c.is)
			}
			if strings.Contains(err.Error(), "SECRET1234") {
				t.Fatalf("the error %q shows the PIN of the file", err)
			}
			if c.name == "a bad path in the file" && !strings.Contains(err.Error(), filepath.Join(d.dir, "etc", "nope.crt")) {
				t.Fatalf("the error %q does not name the path as taken from the file's folder", err)
			}
		})
	}
}
