package main

import (
	"context"
	"net/http"
)

// mountCRL starts the crl role of `serve`: its background work runs until ctx
// ends, and its handlers go on mux (the status listener).
func mountCRL(ctx context.Context, env *serveEnv, mux *http.ServeMux) error {
	env.logger.Warn("role crl is not implemented yet in this build")
	return nil
}
