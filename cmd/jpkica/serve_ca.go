package main

import (
	"context"
	"net/http"
)

// mountCA starts the ca role of `serve`: its background work runs until ctx
// ends, and its handlers go on mux (the status listener).
func mountCA(ctx context.Context, env *serveEnv, mux *http.ServeMux) error {
	env.logger.Warn("role ca is not implemented yet in this build")
	return nil
}
