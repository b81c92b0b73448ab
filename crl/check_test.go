package crl_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/crl"
)

func TestRefusedCRLIsNotPublished(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	ctx := context.Background()
	clock := newClock(crlNow)
	ik := f.kr.Issuers[len(f.kr.Issuers)-1]
	scope := crl.Scope{Issuer: ik.Issuer.ID, Partition: "302015"}
	path := filepath.Join(f.dir, filepath.FromSlash(scope.File()))

	t.Run("signed by the wrong key", func(t *testing.T) {
		wrong, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		var logs bytes.Buffer
		u := f.updater(t, clock, crl.Config{}, func(d *crl.Deps) {
			d.Issuers = nil
			for _, k := range f.kr.Issuers {
				if k.Issuer.ID == ik.Issuer.ID {
					k.Signer = wrong // an HSM label pointing at another key
				}
				d.Issuers = append(d.Issuers, k)
			}
			d.Metrics = reg
			d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
		_, err = u.Generate(ctx, scope)
		if !errors.Is(err, crl.ErrCheck) || !errors.Is(err, crl.ErrMalformed) {
			t.Fatalf("err = %v, want ErrCheck (read back)", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("refused CRL was published: %v", err)
		}
		if left, _ := filepath.Glob(filepath.Join(f.dir, ik.Issuer.ID, ".tmp-*")); len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
		wantRefused(t, err, reg, scope, crl.CheckReadBack)
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "CRL REFUSED") {
			t.Fatalf("no loud log: %s", logs.String())
		}
	})

	reg := prometheus.NewRegistry()
	u := f.updater(t, clock, crl.Config{}, func(d *crl.Deps) { d.Metrics = reg })
	first, err := u.Generate(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	publishedDER, _ := os.ReadFile(path)

	t.Run("number not above the published one", func(t *testing.T) {
		// Another node published number 1000 into the same directory.
		meta := filepath.Join(f.dir, ik.Issuer.ID, "302015.json")
		b, _ := os.ReadFile(meta)
		var m map[string]any
		json.Unmarshal(b, &m)
		m["number"] = 1000
		b, _ = json.Marshal(m)
		os.WriteFile(meta, b, 0o644)
		defer func() { // restore for the next subtest
			m["number"] = first.Number
			b, _ = json.Marshal(m)
			os.WriteFile(meta, b, 0o644)
		}()
		clock.add(time.Minute)
		_, err := u.Generate(ctx, scope)
		wantRefused(t, err, reg, scope, crl.CheckNumber)
		if now, _ := os.ReadFile(path); !bytes.Equal(now, publishedDER) {
			t.Fatal("the published CRL changed")
		}
	})

	t.Run("scope changed", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		moved := f.updater(t, clock, crl.Config{BaseURL: "http://crl.elsewhere.example/crl"},
			func(d *crl.Deps) { d.Metrics = reg })
		clock.add(time.Minute)
		_, err := moved.Generate(ctx, scope)
		wantRefused(t, err, reg, scope, crl.CheckScope)
		if now, _ := os.ReadFile(path); !bytes.Equal(now, publishedDER) {
			t.Fatal("the published CRL changed")
		}
	})

	clock.add(time.Minute)
	next, err := u.Generate(ctx, scope)
	if err != nil || next.Number.Cmp(first.Number) <= 0 {
		t.Fatalf("next CRL: %v, number %v after %v", err, next.Number, first.Number)
	}
}

// wantRefused asserts that err is a refusal of the partition CRL scope by
// check: a *crl.CheckError that errors.As finds and errors.Is matches to
// ErrCheck, counted once in reg under the check's label.
func wantRefused(t *testing.T, err error, reg *prometheus.Registry, scope crl.Scope, check crl.Check) {
	t.Helper()
	var ce *crl.CheckError
	if !errors.As(err, &ce) || !errors.Is(err, crl.ErrCheck) {
		t.Fatalf("err = %v, want a CheckError", err)
	}
	if ce.Check != check || ce.Scope != scope {
		t.Fatalf("refused by %q for %s, want %q for %s (err %v)", ce.Check, ce.Scope, check, scope, err)
	}
	if n := failures(reg, scope.Issuer, "partition", string(check)); n != 1 {
		t.Fatalf("check failure metric %q = %v, want 1", check, n)
	}
}

// failures reads jpkica_crl_check_failures_total for one label set.
func failures(reg *prometheus.Registry, issuer, kind, check string) float64 {
	v, _ := metricValue(reg, "jpkica_crl_check_failures_total", map[string]string{"issuer": issuer, "kind": kind, "check": check})
	return v
}
