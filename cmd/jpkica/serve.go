package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/ceremony/responderwatch"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/config"
	"github.com/jpkica/jpkica/ocsp"
	"github.com/jpkica/jpkica/store"
)

// roles are the parts of the daemon `serve --role` can run.
var roles = map[string]bool{"ca": true, "ocsp": true, "crl": true}

func parseRoles(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if !roles[r] {
			return nil, fmt.Errorf("%w: unknown role %q (want ca, ocsp, crl)", errUsage, r)
		}
		out[r] = true
	}
	return out, nil
}

func cmdServe(ctx context.Context, args []string, logger *slog.Logger) error {
	fs, configPath := newFlags("serve")
	roleFlag := fs.String("role", "ca,ocsp,crl", "comma-separated roles to run")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	run, err := parseRoles(*roleFlag)
	if err != nil {
		return err
	}
	d, err := open(ctx, *configPath, logger, withKeys)
	if err != nil {
		return err
	}
	defer d.Close()
	if d.cfg.Embedded() {
		if err := bootstrapEmbedded(ctx, d); err != nil {
			return fmt.Errorf("first start on embedded defaults: %w", err)
		}
	}
	if err := d.loadKeyring(ctx); err != nil {
		return err
	}
	cfg, st, keys, kr := d.cfg, d.store, d.keys, d.keyring
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := registerKeyStoreMetrics(reg, keys); err != nil {
		return fmt.Errorf("key store metrics: %w", err)
	}

	mux := http.NewServeMux()
	// The roles' background work ends with roleCtx, and serve waits for it
	// before the store and the key store close.
	roleCtx, stopRoles := context.WithCancel(ctx)
	env := &serveEnv{cfg: cfg, store: st, keys: keys, keyring: kr, logger: logger, metrics: reg, clock: time.Now}
	defer func() {
		stopRoles()
		env.background.Wait()
	}()
	if run["ocsp"] {
		if env.ocsp, err = newOCSPPresigner(env); err != nil {
			return fmt.Errorf("building the OCSP pre-signer: %w", err)
		}
	}
	for _, role := range []struct {
		name  string
		mount func(context.Context, *serveEnv, *http.ServeMux) error
	}{{"ca", mountCA}, {"ocsp", mountOCSP}, {"crl", mountCRL}} {
		if !run[role.name] {
			continue
		}
		if err := role.mount(roleCtx, env, mux); err != nil {
			return fmt.Errorf("starting role %s: %w", role.name, err)
		}
	}
	if run["ca"] || run["ocsp"] {
		// The ca role renews the delegated OCSP responders; the ocsp role
		// signs with the newest.
		deps := responderwatch.Deps{Clock: env.clock, Logger: logger}
		if run["ca"] {
			deps.Renewer = responderwatch.Ceremony{Config: ceremonyConfig(cfg, "system:ca"), Deps: ceremonyDeps(st, keys, logger),
				RenewBefore: cfg.Issuance.ResponderRenewBefore}
		}
		if run["ocsp"] {
			deps.Presigner, deps.Keyring, deps.Store, deps.Keys = env.ocsp, kr, st, keys
		}
		w, err := responderwatch.New(responderwatch.Config{}, deps)
		if err != nil {
			return fmt.Errorf("responder watch: %w", err)
		}
		env.spawn(func() { w.Run(roleCtx) })
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /readyz", readyHandler(map[string]pinger{"database": st, "keys": keys}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	var handler http.Handler = mux
	if env.statusGuard != nil {
		handler = env.statusGuard(mux)
	}
	status := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	ln, err := net.Listen("tcp", cfg.Listen.Status)
	if err != nil {
		return fmt.Errorf("status listener: %w", err)
	}
	logger.Info("serving", "status", ln.Addr().String(), "roles", *roleFlag)
	if (run["ocsp"] || run["crl"]) && cfg.StatusClients().Open() && !isLoopback(ln.Addr()) {
		logger.Warn("OCSP responses and CRLs go to every client: set listen.status_clients to the registered verifiers' networks",
			"status", ln.Addr().String())
	}

	errc := make(chan error, 1)
	go func() { errc <- status.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("status listener: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := status.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down status listener: %w", err)
	}
	return nil
}

// serveEnv is what every role of `serve` starts from.
type serveEnv struct {
	cfg     *config.Config
	store   *store.Store
	keys    hsm.KeyStore
	keyring *ceremony.Keyring
	logger  *slog.Logger
	metrics *prometheus.Registry
	clock   func() time.Time

	// ocsp is the OCSP pre-signer when the ocsp role runs: the ca role's
	// StatusListener too.
	ocsp *ocsp.Presigner
	// statusGuard, when set, wraps the status listener's mux.
	statusGuard func(http.Handler) http.Handler

	background sync.WaitGroup
}

// spawn runs fn in the background; serve waits for every fn to return
// before it closes the store and the key store.
func (e *serveEnv) spawn(fn func()) {
	e.background.Add(1)
	go func() {
		defer e.background.Done()
		fn()
	}()
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

// isLoopback reports whether a listener's address is a loopback one.
func isLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().IsLoopback()
}
