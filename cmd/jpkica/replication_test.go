package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/internal/pgcluster"
	"github.com/jpkica/jpkica/store"
)

// gauge is the value of the metric called name on reg (gatherValues);
// the test fails when reg has none.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	v, ok := gatherValues(t, reg)[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	return v
}

func openStore(t *testing.T, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestReadyzLag: a node reading a hot standby exports its lag, and turns
// /readyz 503, naming the lag, while the standby's replay is paused under
// writes on the primary; 200 again once the standby has caught up.
func TestReadyzLag(t *testing.T) {
	c := pgcluster.Start(t, pgcluster.Options{Standbys: 1})
	primary := openStore(t, c.Primary.DSN())
	c.CatchUp()
	st := openStore(t, c.Standbys[0].DSN())
	const maxLag = 500 * time.Millisecond
	ready := readyHandler(map[string]pinger{"database": st, "replication": lagCheck{st: st, max: maxLag}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(newReplicationCollector(st, false))
	readyz := func() (int, string) {
		rec := httptest.NewRecorder()
		ready.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	lag := func() float64 { return gauge(t, reg, "jpkica_store_replication_lag_seconds") }
	if code, body := readyz(); code != 200 || lag() != 0 {
		t.Fatalf("caught up: /readyz %d %q, lag %v; want 200 and 0", code, body, lag())
	}

	c.Standbys[0].PauseReplay()
	if err := primary.AppendAudit(context.Background(), audit.Entry{Actor: "admin:test", Action: audit.ActionCertificateRevoke,
		Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	code, body := readyz()
	for deadline := time.Now().Add(time.Minute); code == 200; code, body = readyz() {
		if time.Now().After(deadline) {
			t.Fatalf("replay paused a minute: /readyz still 200 (lag %v)", lag())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != 503 || !strings.Contains(body, "replication lag") || lag() <= maxLag.Seconds() {
		t.Fatalf("replay paused: /readyz %d %q, lag %v; want 503 naming the lag, over %v", code, body, lag(), maxLag)
	}

	c.Standbys[0].ResumeReplay()
	c.CatchUp()
	if code, body := readyz(); code != 200 || lag() != 0 {
		t.Fatalf("resumed: /readyz %d %q, lag %v; want 200 and 0", code, body, lag())
	}
}

// TestSynchronousStandbyCheck: the ca role's primary with a synchronous
// standby exports 1 and starts quietly; with an asynchronous one, 0 and a
// warning.
func TestSynchronousStandbyCheck(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(map[bool]string{true: "synchronous", false: "asynchronous"}[sync], func(t *testing.T) {
			c := pgcluster.Start(t, pgcluster.Options{Standbys: 1, Synchronous: sync})
			st := openStore(t, c.Primary.DSN())
			c.CatchUp()
			var log bytes.Buffer
			warnUnsynchronised(context.Background(), st, slog.New(slog.NewTextHandler(&log, nil)))
			reg := prometheus.NewRegistry()
			reg.MustRegister(newReplicationCollector(st, true))
			want, wantWarning := 1.0, false
			if !sync {
				want, wantWarning = 0, true
			}
			if got := gauge(t, reg, "jpkica_store_synchronous_standbys"); got != want {
				t.Errorf("jpkica_store_synchronous_standbys = %v, want %v", got, want)
			}
			if warned := strings.Contains(log.String(), "NO SYNCHRONOUS STANDBY"); warned != wantWarning {
				t.Errorf("warned %v, want %v; log:\n%s", warned, wantWarning, log.String())
			}
		})
	}
}
