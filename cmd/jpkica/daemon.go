package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony/responderwatch"
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
	// statusAddr.
	status     *http.Server
	statusAddr string
	// revocationOpen: the status listener hands OCSP responses or CRLs to
	// every client (listen.status_clients is empty).
	revocationOpen bool
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
	dm := &daemon{logger: d.logger, roles: rs, statusAddr: cfg.Listen.Status,
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
	cps, err := newCPSPage(d.cfg)
	if err != nil {
		return nil, err
	}
	dm.status = newStatusServer(dm.ocsp, dm.crl, cps, map[string]pinger{"database": d.store, "keys": d.keys}, reg)
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

// newStatusServer is the status listener's server: the handlers of the
// ocsp and crl roles (nil when not run), the CPS page, /healthz, /readyz on
// ready and /metrics on reg.
func newStatusServer(o *ocspRole, c *crlRole, cps *cpsPage, ready map[string]pinger, reg *prometheus.Registry) *http.Server {
	mux := http.NewServeMux()
	var handler http.Handler = mux
	if o != nil {
		mux.Handle("/ocsp", o.responder)
		mux.Handle("/ocsp/", o.responder)
		// The mux would clean GET paths holding "//" (base64 may) and
		// redirect them; the guard hands /ocsp paths over first.
		handler = o.responder.Guard(mux)
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
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}
