package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony/responderwatch"
	"github.com/jpkica/jpkica/internal/config"
	"github.com/jpkica/jpkica/ocsp"
	"github.com/jpkica/jpkica/store"
)

// daemon is `jpkica serve` built: every component of the roles it runs,
// constructed before any of them starts (run starts them). A role that
// does not run is nil.
type daemon struct {
	logger *slog.Logger
	roles  roles
	ca     *caRole
	ocsp   *ocspRole
	crl    *crlRole
	// watch renews the delegated OCSP responders (ca role) and signs with
	// the newest (ocsp role).
	watch *responderwatch.Watch
	// status serves OCSP, CRLs, /healthz, /readyz and /metrics on
	// statusAddr, by the HTTP stack named statusStack.
	status      statusServer
	statusAddr  string
	statusStack string
	// revocationOpen: the status listener hands OCSP responses or CRLs to
	// every client (listen.status_clients is empty).
	revocationOpen bool
	// durability, when set, is the ca role's primary, checked for a
	// synchronous standby at start (production on PostgreSQL only).
	durability replication
}

// build constructs the daemon of the roles rs from the deployment, whose
// keyring must be loaded. Components are built in the order of their
// dependencies, whatever the order of the roles: the OCSP pre-signer
// first, since the ca role's authority tells it of every change when both
// run here.
func build(d *deployment, rs roles, clock func() time.Time) (*daemon, error) {
	cfg := d.cfg
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := registerKeyStoreMetrics(reg, d.keys); err != nil {
		return nil, fmt.Errorf("key store metrics: %w", err)
	}
	dm := &daemon{logger: d.logger, roles: rs, statusAddr: cfg.Listen.Status, statusStack: cfg.Listen.StatusStack,
		revocationOpen: (rs.ocsp || rs.crl) && cfg.StatusClients().Open()}
	var err error
	if rs.ocsp {
		if dm.ocsp, err = newOCSPRole(d, reg, clock); err != nil {
			return nil, fmt.Errorf("building role ocsp: %w", err)
		}
	}
	if rs.ca {
		// With the ocsp role in the same process, the pre-signer hears of
		// every committed change at once; otherwise OCSP nodes follow the
		// store.
		var listener ca.StatusListener
		if dm.ocsp != nil {
			listener = dm.ocsp.presigner
		}
		con, err := newConsole(d, dm.ocsp, rs.crl, clock)
		if err != nil {
			return nil, fmt.Errorf("building the console: %w", err)
		}
		if dm.ca, err = newCARole(d, listener, con, reg, clock); err != nil {
			return nil, fmt.Errorf("building role ca: %w", err)
		}
	}
	if rs.crl {
		if dm.crl, err = newCRLRole(d, reg, clock); err != nil {
			return nil, fmt.Errorf("building role crl: %w", err)
		}
	}
	if rs.ca || rs.ocsp {
		if dm.watch, err = newResponderWatch(d, dm.ocsp, rs.ca, clock); err != nil {
			return nil, fmt.Errorf("responder watch: %w", err)
		}
	}
	// The ca role of a deployment (a config file, not the embedded
	// defaults) on PostgreSQL needs a synchronous standby.
	if rs.ca && !cfg.Embedded() && d.store.Dialect() == store.PostgreSQL {
		dm.durability = d.store
	}
	if err := reg.Register(newReplicationCollector(d.store, dm.durability != nil)); err != nil {
		return nil, fmt.Errorf("store metrics: %w", err)
	}
	cps, err := newCPSPage(d.cfg)
	if err != nil {
		return nil, err
	}
	mux := newStatusMux(dm.ocsp, dm.crl, cps, map[string]pinger{"database": d.store, "keys": d.keys,
		"replication": lagCheck{st: d.store, max: cfg.Store.MaxLag}}, reg)
	if cfg.Listen.StatusStack == config.StackNetHTTP {
		dm.status = newStatusServer(dm.ocsp, mux)
	} else {
		dm.status = newFastStatusServer(dm.ocsp, mux, d.logger)
	}
	return dm, nil
}

// newResponderWatch builds the watch of the delegated OCSP responders: with
// renew (the ca role) it renews them as the ceremony's configuration says;
// with o (the ocsp role) it makes o's pre-signer sign with the newest.
func newResponderWatch(d *deployment, o *ocspRole, renew bool, clock func() time.Time) (*responderwatch.Watch, error) {
	deps := responderwatch.Deps{Clock: clock, Logger: d.logger}
	if renew {
		cfg, cdeps := d.keyCeremony("system:ca")
		deps.Renewer = responderwatch.Ceremony{Config: cfg, Deps: cdeps, RenewBefore: d.cfg.Issuance.ResponderRenewBefore}
	}
	if o != nil {
		deps.Presigner, deps.Keyring, deps.Store, deps.Keys = o.presigner, d.keyring, d.store, d.keys
	}
	return responderwatch.New(responderwatch.Config{}, deps)
}

// statusServer is the status listener's server, of either HTTP stack.
type statusServer interface {
	Serve(ln net.Listener) error
	// Shutdown stops accepting, then waits for the requests in flight
	// until ctx ends.
	Shutdown(ctx context.Context) error
}

// newStatusMux is the status listener's routes on net/http: the handlers of
// the ocsp and crl roles (nil when not run), the CPS page, /healthz, /readyz
// on ready and /metrics on reg.
func newStatusMux(o *ocspRole, c *crlRole, cps *cpsPage, ready map[string]pinger, reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	if o != nil {
		mux.Handle("/ocsp", o.responder)
		mux.Handle("/ocsp/", o.responder)
	}
	if c != nil {
		mux.Handle("GET "+c.prefix+"/", c.handler)
	}
	for _, p := range cps.paths {
		mux.Handle("GET "+p, cps)
	}
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /readyz", readyHandler(ready))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// newStatusServer is the status listener on net/http (listen.status_stack:
// nethttp): mux behind the responder's guard.
func newStatusServer(o *ocspRole, mux *http.ServeMux) *http.Server {
	var handler http.Handler = mux
	if o != nil {
		// The mux would clean GET paths holding "//" (base64 may) and
		// redirect them; the guard hands /ocsp paths over first.
		handler = o.responder.Guard(mux)
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

// fastStatusServer is the status listener on fasthttp (listen.status_stack:
// fasthttp, the default): OCSP answered by the responder's fasthttp
// handler, every other path by mux through fasthttpadaptor, which buffers
// each answer whole before it goes out. The server's timeouts and limits
// are ocsp.NewFastServerFor's: those of the net/http server but the 5 s
// bound on the headers alone (the 10 s read timeout covers them), and a
// request body bounded by the OCSP POST limit on every path.
type fastStatusServer struct{ s *ocsp.FastServer }

func newFastStatusServer(o *ocspRole, mux *http.ServeMux, log *slog.Logger) fastStatusServer {
	next := fasthttpadaptor.NewFastHTTPHandler(mux)
	if o != nil {
		return fastStatusServer{o.responder.NewFastServerWith(next)}
	}
	return fastStatusServer{ocsp.NewFastServerFor(next, ocsp.DefaultMaxBody, log)}
}

func (f fastStatusServer) Serve(ln net.Listener) error { return f.s.Serve(ln) }

func (f fastStatusServer) Shutdown(ctx context.Context) error { return f.s.ShutdownWithContext(ctx) }
