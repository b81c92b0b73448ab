package main

import (
	"context"
	"net/http"
)

// mountOCSP starts the ocsp role of `serve`: its background work runs until ctx
// ends, and its handlers go on mux (the status listener).
func mountOCSP(ctx context.Context, env *serveEnv, mux *http.ServeMux) error {
	env.logger.Warn("role ocsp is not implemented yet in this build")
	return nil
}
