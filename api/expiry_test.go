package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
)

// TestTerminalExpiryNotice: a terminal whose certificate expires within 30
// days is told when on every answer, refusals included, and the call is
// counted; one with longer to go is not.
func TestTerminalExpiryNotice(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	for _, c := range []struct {
		name     string
		validity time.Duration
		notice   bool
	}{
		{"expires in 20 days", 20 * 24 * time.Hour, true},
		{"expires in 40 days", 40 * 24 * time.Hour, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := counterValue(t, s, "jpkica_api_expiring_terminal_calls_total")
			cert, _ := s.Enrol(t, "counter", "302015", "desk-"+c.name, c.validity)
			cl := caller{t: t, s: s, client: s.Client(&cert)}
			for i, a := range []answer{
				cl.do("GET", "/v1/renewal-notices?municipality=302015&on=2031-03-01", nil),
				cl.do("GET", "/v1/renewal-notices?municipality=131016&on=2031-03-01", nil), // another municipality
			} {
				if want := []int{http.StatusOK, http.StatusForbidden}[i]; a.status != want {
					t.Fatalf("answer %d: status %d, want %d", i, a.status, want)
				}
				got := a.header.Get(wire.HeaderTerminalExpires)
				want := ""
				if c.notice {
					want = cert.Leaf.NotAfter.UTC().Format(time.RFC3339)
				}
				if got != want {
					t.Errorf("%d answer: %s %q, want %q", a.status, wire.HeaderTerminalExpires, got, want)
				}
			}
			wantCalls := 0.0
			if c.notice {
				wantCalls = 2
			}
			if got := counterValue(t, s, "jpkica_api_expiring_terminal_calls_total") - before; got != wantCalls {
				t.Errorf("%v expiring-terminal calls counted, want %v", got, wantCalls)
			}
		})
	}
}
