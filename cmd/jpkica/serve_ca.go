package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/api"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/internal/config"
	"github.com/jpkica/jpkica/lint"
)

// apiServerCertValidity is the lifetime of the API server certificate made
// at start.
const apiServerCertValidity = 30 * 24 * time.Hour

// profileConfig is the certificate profiles of the configuration.
func profileConfig(cfg *config.Config) ca.ProfileConfig {
	ms := make(map[string]ca.Municipality, len(cfg.Municipalities))
	for code, m := range cfg.Municipalities {
		ms[code] = ca.Municipality{Prefecture: m.Prefecture, Name: m.Name}
	}
	return ca.ProfileConfig{
		OCSPURL: cfg.URLs.OCSP, CRLBaseURL: cfg.URLs.CRLBase,
		SignatureCPSURL: cfg.URLs.CPSSignature, AuthenticationCPSURL: cfg.URLs.CPSAuthentication,
		SignatureExtKeyUsage: cfg.Issuance.SignatureExtKeyUsage, Municipalities: ms,
		OmitIssuerAltName: !cfg.Profile.IssuerAltName, OmitCRLDirectoryName: !cfg.Profile.CRLDirectoryName,
		AKIKeyIDOnly: !cfg.Profile.AKIIssuerSerial,
	}
}

// mountCA starts the ca role of `serve`: the /v1 API over mutual TLS on
// cfg.Listen.API, until ctx ends (then it shuts down gracefully, waiting up
// to ten seconds for calls in flight). The API's metrics go on the shared
// registry; nothing goes on mux.
//
// The server certificate is made at every start: a fresh ECDSA P-256 key in
// memory, certified by the client CA for the listener's host,
// listen.api_names, 127.0.0.1 and localhost, valid for 30 days and renewed
// after 20 (api.ServerCerts). Counters already trust the client CA (their
// -ca.crt file), so they verify the server with it.
func mountCA(ctx context.Context, env *serveEnv, mux *http.ServeMux) error {
	profiles, err := ca.NewProfiles(profileConfig(env.cfg))
	if err != nil {
		return fmt.Errorf("certificate profiles: %w", err)
	}
	// With the ocsp role in the same process, the pre-signer hears of every
	// committed change at once; otherwise OCSP nodes follow the store.
	var listener ca.StatusListener
	if env.ocsp != nil {
		listener = env.ocsp
	}
	auth, err := ca.NewAuthority(ca.AuthorityConfig{RenewalWindowMonths: env.cfg.Issuance.RenewalWindowMonths}, ca.AuthorityDeps{
		Store: env.store, Profiles: profiles, Issuers: env.keyring.Current, Clock: env.clock, Rand: rand.Reader, Linter: lint.Linter{},
		Listener: listener,
	})
	if err != nil {
		return fmt.Errorf("authority: %w", err)
	}
	if err := registerIssuerExpiry(env); err != nil {
		return err
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(env.keyring.ClientCA.Cert)
	h, err := api.New(api.Config{RenewalWindowMonths: env.cfg.Issuance.RenewalWindowMonths}, api.Deps{
		Authority: auth, Store: env.store, ClientCAs: clientCAs, Clock: env.clock, Rand: rand.Reader,
		Logger: env.logger, Metrics: env.metrics,
	})
	if err != nil {
		return fmt.Errorf("API: %w", err)
	}
	host, _, err := net.SplitHostPort(env.cfg.Listen.API)
	if err != nil {
		return fmt.Errorf("listen.api: %w", err)
	}
	hosts := []string{"127.0.0.1", "localhost"}
	anyHost := host == "" || host == "0.0.0.0" || host == "::"
	if !anyHost && !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	for _, n := range env.cfg.Listen.APINames {
		if !slices.Contains(hosts, n) {
			hosts = append(hosts, n)
		}
	}
	if anyHost && len(env.cfg.Listen.APINames) == 0 {
		env.logger.Warn("the API listens on every interface, but its server certificate names only 127.0.0.1 and localhost: "+
			"set listen.api_names to the names counters connect to", "addr", env.cfg.Listen.API)
	}
	certs, err := api.NewServerCerts(api.ServerCertRequest{ClientCA: env.keyring.ClientCA, Hosts: hosts,
		Validity: apiServerCertValidity, Rand: rand.Reader}, env.clock, env.logger)
	if err != nil {
		return fmt.Errorf("API server certificate: %w", err)
	}
	tlsCfg := certs.TLSConfig()
	ln, err := net.Listen("tcp", env.cfg.Listen.API)
	if err != nil {
		return fmt.Errorf("API listener: %w", err)
	}
	srv := api.NewServer(h, tlsCfg, env.logger)
	env.logger.Info("serving the /v1 API over mutual TLS", "addr", ln.Addr().String(),
		"server_certificate", "made at start, signed by the client CA", "hosts", hosts)
	env.spawn(func() {
		if err := srv.Serve(tls.NewListener(ln, tlsCfg)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			env.logger.Error("API listener stopped", "err", err)
		}
	})
	env.spawn(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			env.logger.Error("shutting down the API listener", "err", err)
		}
	})
	return nil
}

// registerIssuerExpiry exports when the issuer generations this node issues
// from expire: a certificate may run 5 years and 3 months, and one that
// would outlive its issuer is refused (ca.ErrIssuerExpiring), so a new
// generation is due well before.
func registerIssuerExpiry(env *serveEnv) error {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jpkica_ca_issuer_not_after_seconds",
		Help: "When the issuer generation a ca node issues from expires (Unix time)."}, []string{"issuer"})
	for _, ik := range env.keyring.Current {
		g.WithLabelValues(ik.Issuer.ID).Set(float64(ik.Cert.NotAfter.Unix()))
	}
	if err := env.metrics.Register(g); err != nil {
		return fmt.Errorf("registering issuer metrics: %w", err)
	}
	return nil
}
