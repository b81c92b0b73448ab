package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestFee(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"fee", "--signature", "--authentication"}, &out, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "total             200 yen") {
		t.Fatalf("fee output:\n%s", out.String())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"revoke"}, {"fee", "--nope"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}, func(string) string { return "" }); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}
