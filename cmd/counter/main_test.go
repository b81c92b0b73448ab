package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// bare is a system with an empty environment and the real clock, which
// prints to out.
func bare(out io.Writer) system {
	return system{stdout: out, stderr: io.Discard, getenv: func(string) string { return "" }, now: time.Now}
}

func TestFee(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"fee", "--signature", "--authentication"}, bare(&out)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "total             200 yen") {
		t.Fatalf("fee output:\n%s", out.String())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"revoke"}, {"fee", "--nope"}, {"fee"}, {"fee", "--my-number-card"},
		{"fee", "--signature", "--per-certificate", "-1"}} {
		if err := run(context.Background(), args, bare(&bytes.Buffer{})); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}

// TestHelp: help lists the commands, the config file and the PINs' variables;
// -h after a command lists its flags and only those it uses (no card flags
// for revoke, proxy and notices, only fee's for fee), and neither is a
// failure; an unknown flag is a usage error that lists them too, and so is
// an argument that belongs to no flag.
func TestHelp(t *testing.T) {
	cardFlags := []string{"-module", "-sig-token", "-auth-token"}
	connFlags := []string{"-api", "-cert", "-key", "-ca"}
	for _, c := range []struct {
		args       string
		want, none []string
	}{
		{"help", []string{"issue ", "notices ", "COUNTER_SIG_PIN", "COUNTER_CONFIG", "~/.config/jpkica-counter.json", "--json"}, nil},
		{"issue -h", append(append([]string{"usage: counter issue ", "-card-id", "-answer", "-json"}, cardFlags...), connFlags...), nil},
		{"renew -h", append(append([]string{"usage: counter renew ", "-card-id"}, cardFlags...), connFlags...), nil},
		{"revoke -h", append([]string{"usage: counter revoke ", "-serial", "-reason", "-json"}, connFlags...), cardFlags},
		{"proxy -h", append([]string{"usage: counter proxy ", "-resident", "-types"}, connFlags...), append(cardFlags, "-answer")},
		{"notices -h", append([]string{"-municipality", "-csv", "-json"}, connFlags...), cardFlags},
		{"fee --help", []string{"usage: counter fee ", "-per-certificate"}, append(cardFlags, connFlags...)},
	} {
		var out bytes.Buffer
		err := run(context.Background(), strings.Fields(c.args), bare(&out))
		var help helpText
		if !errors.As(err, &help) {
			t.Errorf("run(%q) = %v, want help", c.args, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(string(help), w) {
				t.Errorf("run(%q) help lacks %q:\n%s", c.args, w, help)
			}
		}
		for _, n := range c.none {
			if strings.Contains(string(help), n+" ") {
				t.Errorf("run(%q) help lists %q, which the command does not use:\n%s", c.args, n, help)
			}
		}
	}
	err := run(context.Background(), []string{"revoke", "--nope"}, bare(&bytes.Buffer{}))
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "-serial") {
		t.Errorf("an unknown flag: %v, want a usage error listing the flags", err)
	}
	err = run(context.Background(), []string{"revoke", "0a1b", "--reason", "keyCompromise"}, bare(&bytes.Buffer{}))
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), `"0a1b"`) {
		t.Errorf("an argument without its flag: %v, want a usage error naming it", err)
	}
}
