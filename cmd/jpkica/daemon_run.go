package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// shutdownGrace is how long a server that stops waits for the requests in
// flight.
const shutdownGrace = 10 * time.Second

// run binds every listener, starts the roles' loops and servers, and serves
// until ctx ends or the status listener fails. Then it shuts the servers
// down, each waiting up to shutdownGrace for requests in flight, and
// returns once every loop has returned: the pre-signer's writes to the
// store among them, so that the caller may close the store and the key
// store.
func (dm *daemon) run(ctx context.Context) error {
	ls, err := dm.listen()
	if err != nil {
		return err
	}
	// The roles' work ends with bg, and run waits for it.
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	spawn := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
		}()
	}
	if dm.ca != nil {
		dm.ca.start(bg, ls.api, spawn, dm.logger)
	}
	if dm.ocsp != nil {
		dm.ocsp.start(bg, ls.ocsp, spawn, dm.logger)
	}
	if dm.crl != nil {
		dm.crl.start(bg, spawn)
	}
	if dm.watch != nil {
		spawn(func() { dm.watch.Run(bg) })
	}

	if dm.durability != nil {
		warnUnsynchronised(ctx, dm.durability, dm.logger)
	}
	dm.logger.Info("serving", "status", ls.status.Addr().String(), "status_stack", dm.statusStack, "roles", dm.roles.String())
	if dm.revocationOpen && !isLoopback(ls.status.Addr()) {
		dm.logger.Warn("OCSP responses and CRLs go to every client: set listen.status_clients to the registered verifiers' networks",
			"status", ls.status.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- dm.status.Serve(ls.status) }()
	select {
	case err := <-errc:
		return fmt.Errorf("status listener: %w", err)
	case <-ctx.Done():
	}
	dm.logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := dm.status.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutting down status listener: %w", err)
	}
	return nil
}

// listeners are the daemon's bound listeners; api and ocsp are nil when
// not served.
type listeners struct {
	status, api, ocsp net.Listener
}

// listen binds every listener before anything starts, so that an address
// in use stops serve with nothing running; on an error it closes those it
// bound.
func (dm *daemon) listen() (listeners, error) {
	var ls listeners
	bind := func(ln *net.Listener, name, addr string) error {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, open := range []net.Listener{ls.status, ls.api, ls.ocsp} {
				if open != nil {
					open.Close()
				}
			}
			return fmt.Errorf("%s listener: %w", name, err)
		}
		*ln = l
		return nil
	}
	if dm.ca != nil {
		if err := bind(&ls.api, "API", dm.ca.addr); err != nil {
			return listeners{}, err
		}
	}
	if dm.ocsp != nil && dm.ocsp.fast != nil {
		if err := bind(&ls.ocsp, "OCSP", dm.ocsp.fastAddr); err != nil {
			return listeners{}, err
		}
	}
	if err := bind(&ls.status, "status", dm.statusAddr); err != nil {
		return listeners{}, err
	}
	return ls, nil
}

// start serves the API on ln until ctx ends, then shuts it down.
func (c *caRole) start(ctx context.Context, ln net.Listener, spawn func(func()), log *slog.Logger) {
	log.Info("serving the /v1 API over mutual TLS", "addr", ln.Addr().String(),
		"server_certificate", "made at start, signed by the client CA", "hosts", c.hosts)
	spawn(func() {
		if err := c.server.Serve(tls.NewListener(ln, c.tls)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API listener stopped", "err", err)
		}
	})
	spawn(func() {
		if err := c.console.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("console stopped", "err", err)
		}
	})
	spawn(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		if err := c.server.Shutdown(sctx); err != nil {
			log.Error("shutting down the API listener", "err", err)
		}
	})
}

// start runs the pre-signer until ctx ends, and serves the responder on
// ln, its own listener, if any.
func (o *ocspRole) start(ctx context.Context, ln net.Listener, spawn func(func()), log *slog.Logger) {
	p := o.presigner
	spawn(func() {
		if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("ocsp pre-signer stopped", "err", err)
		}
	})
	spawn(func() {
		select {
		case <-p.Warmed():
			log.Info("ocsp: every live certificate queued for pre-signing", "cached", p.Cache().Len())
		case <-ctx.Done():
		}
	})
	if ln == nil {
		return
	}
	log.Info("serving OCSP on its own listener (fasthttp)", "addr", ln.Addr().String())
	spawn(func() {
		if err := o.fast.Serve(ln); err != nil {
			log.Error("OCSP listener stopped", "err", err)
		}
	})
	spawn(func() {
		<-ctx.Done()
		if err := o.fast.ShutdownWithContext(context.WithoutCancel(ctx)); err != nil {
			log.Error("shutting down the OCSP listener", "err", err)
		}
	})
}

// start runs the updater until ctx ends.
func (c *crlRole) start(ctx context.Context, spawn func(func())) {
	spawn(func() {
		if err := c.updater.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			c.log.Error("CRL updater stopped", "err", err)
		}
	})
	c.log.Info("publishing CRLs", "dir", c.updater.Dir().Root(), "path", c.prefix+"/")
}

// isLoopback reports whether a listener's address is a loopback one.
func isLoopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().IsLoopback()
}
