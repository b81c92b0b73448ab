package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/jpkica/jpkica/hsm"
)

// healthz answers that the process is alive.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// pinger is anything /readyz checks.
type pinger interface {
	Ping(ctx context.Context) error
}

// readyHandler answers 200 when every dependency answers a ping within a
// second, else 503 naming the ones that did not: "unreachable", or, for a
// key store whose token refused the PIN, that an operator must act (no
// wait will make it ready), or, for the replication check (lagCheck), the
// lag over its maximum. It never names the PIN.
func readyHandler(deps map[string]pinger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		var down, refused, stale []string
		for name, p := range deps {
			err := p.Ping(ctx)
			lag, isLag := isLagging(err)
			switch {
			case errors.Is(err, hsm.ErrLogin):
				refused = append(refused, name)
			case isLag:
				stale = append(stale, name+": "+lag.Error())
			case err != nil:
				down = append(down, name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(down)+len(refused)+len(stale) == 0 {
			fmt.Fprintln(w, "ready")
			return
		}
		var why []string
		if len(down) > 0 {
			sort.Strings(down)
			why = append(why, strings.Join(down, ", ")+" unreachable")
		}
		if len(refused) > 0 {
			sort.Strings(refused)
			why = append(why, strings.Join(refused, ", ")+": the HSM refused the PIN: an operator must act")
		}
		if len(stale) > 0 {
			sort.Strings(stale)
			why = append(why, strings.Join(stale, ", "))
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", strings.Join(why, "; "))
	})
}
