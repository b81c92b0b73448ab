package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFee(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"fee", "--signature", "--authentication"}, &out, io.Discard, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "total             200 yen") {
		t.Fatalf("fee output:\n%s", out.String())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"revoke"}, {"fee", "--nope"}, {"fee"}, {"fee", "--my-number-card"},
		{"fee", "--signature", "--per-certificate", "-1"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}, io.Discard, func(string) string { return "" }); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}

// TestHelp: help lists the commands, -h after a command lists its flags,
// and neither is a failure; an unknown flag is a usage error that lists
// them too.
func TestHelp(t *testing.T) {
	getenv := func(string) string { return "" }
	for args, want := range map[string][]string{
		"help":       {"issue ", "notices ", "COUNTER_SIG_PIN"},
		"issue -h":   {"usage: counter issue ", "-card-id", "-sig-token", "-api"},
		"revoke -h":  {"usage: counter revoke ", "-serial", "-reason"},
		"fee --help": {"usage: counter fee ", "-per-certificate"},
		"notices -h": {"-municipality", "-csv"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), strings.Fields(args), &out, io.Discard, getenv)
		var help helpText
		if !errors.As(err, &help) {
			t.Errorf("run(%q) = %v, want help", args, err)
			continue
		}
		for _, w := range want {
			if !strings.Contains(string(help), w) {
				t.Errorf("run(%q) help lacks %q:\n%s", args, w, help)
			}
		}
	}
	err := run(context.Background(), []string{"revoke", "--nope"}, &bytes.Buffer{}, io.Discard, getenv)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "-serial") {
		t.Errorf("an unknown flag: %v, want a usage error listing the flags", err)
	}
}
