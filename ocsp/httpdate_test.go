package ocsp

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

// TestAppendHTTPDate holds appendHTTPDate to time.Format(http.TimeFormat)
// over years 1000 to 9999, in and out of UTC.
func TestAppendHTTPDate(t *testing.T) {
	jst := time.FixedZone("JST", 9*3600)
	r := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		time.Date(2028, 2, 29, 23, 59, 59, 999999999, jst),
		time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
	}
	lo, hi := time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Unix()
	for range 10000 {
		times = append(times, time.Unix(lo+r.Int64N(hi-lo), r.Int64N(1e9)).In(jst))
	}
	for _, tm := range times {
		want := tm.UTC().Format(http.TimeFormat)
		if got := string(appendHTTPDate([]byte("x"), tm)); got != "x"+want {
			t.Fatalf("appendHTTPDate(%v) = %q, want %q", tm, got[1:], want)
		}
	}
}
