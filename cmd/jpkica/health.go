package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
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
// second, else 503 naming the ones that did not.
func readyHandler(deps map[string]pinger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		var down []string
		for name, p := range deps {
			if err := p.Ping(ctx); err != nil {
				down = append(down, name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if len(down) > 0 {
			sort.Strings(down)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s unreachable\n", strings.Join(down, ", "))
			return
		}
		fmt.Fprintln(w, "ready")
	})
}
