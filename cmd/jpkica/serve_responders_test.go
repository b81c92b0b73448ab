package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestResponderWatch: 25 days into the 30 of the responders, the ca role's
// watch renews each card issuer's responder (once, however often it
// looks), and the ocsp role's watch, on another node, starts signing with
// the new ones. An issuer generation made after the start is not served
// until a restart, and the watch says so once. After a restart the
// pre-signer also knows the replaced responders, whose stored responses it
// keeps serving.
func TestResponderWatch(t *testing.T) {
	tc := writeConfig(t)
	ctx := context.Background()
	if err := run(ctx, []string{"init", "--config", tc.path}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	d, err := open(ctx, tc.path, quiet(), withKeys)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var logs bytes.Buffer
	later := func() time.Time { return time.Now().Add(25 * 24 * time.Hour) }
	newEnv := func() *serveEnv {
		t.Helper()
		if err := d.loadKeyring(ctx); err != nil {
			t.Fatal(err)
		}
		kr := d.keyring
		env := &serveEnv{cfg: d.cfg, store: d.store, keys: d.keys, keyring: kr, metrics: prometheus.NewRegistry(), clock: later,
			logger: slog.New(slog.NewTextHandler(&logs, nil))}
		if env.ocsp, err = newOCSPPresigner(env); err != nil {
			t.Fatal(err)
		}
		return env
	}
	responders := func() int {
		t.Helper()
		rs, err := d.store.Responders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(rs)
	}
	ocspNode, caNode := newEnv(), newEnv()
	follow, renew := newResponderWatch(ocspNode, false, true), newResponderWatch(caNode, true, false)
	before, _ := ocspNode.ocsp.ResponderNotAfter("signature-g1")

	follow.check(ctx)
	if got, _ := ocspNode.ocsp.ResponderNotAfter("signature-g1"); !got.Equal(before) || responders() != 2 {
		t.Fatalf("before any renewal: signing with a responder until %v (want %v), %d responders", got, before, responders())
	}
	renew.check(ctx)
	renew.check(ctx)
	if n := responders(); n != 4 {
		t.Fatalf("%d responders after the ca role's checks, want 4 (2 renewed once)", n)
	}
	follow.check(ctx)
	for _, id := range []string{"signature-g1", "authentication-g1"} {
		got, _ := ocspNode.ocsp.ResponderNotAfter(id)
		if !got.After(before.Add(24 * 24 * time.Hour)) {
			t.Errorf("%s: after following, signing with a responder until %v, want one made 25 days after %v", id, got, before)
		}
	}

	if err := run(ctx, []string{"init", "--config", tc.path, "--new-generation"}, io.Discard, quiet()); err != nil {
		t.Fatal(err)
	}
	follow.check(ctx)
	follow.check(ctx)
	if n := strings.Count(logs.String(), "not served here"); n != 2 { // signature-g2, authentication-g2
		t.Fatalf("%d warnings of an unserved issuer, want one per new issuer:\n%s", n, logs.String())
	}

	restarted := newEnv()
	if got, _ := restarted.ocsp.ResponderNotAfter("signature-g1"); !got.After(before) {
		t.Fatalf("after a restart: signing with a responder until %v", got)
	}
	if n := len(restarted.keyring.Replaced["signature-g1"]); n != 1 {
		t.Fatalf("after a restart: %d replaced responders of signature-g1, want 1", n)
	}
}
