package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/api"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/console"
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

// caRole is the ca role of `serve` built: the /v1 API over mutual TLS,
// to be served on addr.
//
// The server certificate is made at every start: a fresh ECDSA P-256 key in
// memory, certified by the client CA for the listener's host,
// listen.api_names, 127.0.0.1 and localhost, valid for 30 days and renewed
// after 20 (api.ServerCerts). Counters already trust the client CA (their
// -ca.crt file), so they verify the server with it.
type caRole struct {
	server *http.Server
	tls    *tls.Config
	addr   string
	// hosts are the names the server certificate is for.
	hosts []string
	// console is the administrators' console, served at /admin/.
	console *console.Console
}

// newCARole builds the authority, which tells listener (if any) of every
// committed change, and the API over it. The API's metrics and the issuer
// generations' expiry go on reg.
func newCARole(d *deployment, listener ca.StatusListener, con *console.Console, reg prometheus.Registerer, clock func() time.Time) (*caRole, error) {
	cfg, kr := d.cfg, d.keyring
	profiles, err := ca.NewProfiles(profileConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("certificate profiles: %w", err)
	}
	auth, err := ca.NewAuthority(ca.AuthorityConfig{RenewalWindowMonths: cfg.Issuance.RenewalWindowMonths}, ca.AuthorityDeps{
		Store: d.store, Profiles: profiles, Issuers: kr.Current, Clock: clock, Rand: rand.Reader, Linter: lint.Linter{},
		Listener: listener,
	})
	if err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	if err := registerIssuerExpiry(reg, kr.Current); err != nil {
		return nil, err
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(kr.ClientCA.Cert)
	h, err := api.New(api.Config{RenewalWindowMonths: cfg.Issuance.RenewalWindowMonths}, api.Deps{
		Authority: auth, Store: d.store, ClientCAs: clientCAs, Clock: clock, Rand: rand.Reader,
		Logger: d.logger, Metrics: reg, Console: con,
	})
	if err != nil {
		return nil, fmt.Errorf("API: %w", err)
	}
	host, _, err := net.SplitHostPort(cfg.Listen.API)
	if err != nil {
		return nil, fmt.Errorf("listen.api: %w", err)
	}
	hosts := []string{"127.0.0.1", "localhost"}
	anyHost := host == "" || host == "0.0.0.0" || host == "::"
	if !anyHost && !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	for _, n := range cfg.Listen.APINames {
		if !slices.Contains(hosts, n) {
			hosts = append(hosts, n)
		}
	}
	if anyHost && len(cfg.Listen.APINames) == 0 {
		d.logger.Warn("the API listens on every interface, but its server certificate names only 127.0.0.1 and localhost: "+
			"set listen.api_names to the names counters connect to", "addr", cfg.Listen.API)
	}
	certs, err := api.NewServerCerts(api.ServerCertRequest{ClientCA: kr.ClientCA, Hosts: hosts,
		Validity: apiServerCertValidity, Rand: rand.Reader}, clock, d.logger)
	if err != nil {
		return nil, fmt.Errorf("API server certificate: %w", err)
	}
	tlsCfg := certs.TLSConfig()
	return &caRole{server: api.NewServer(h, tlsCfg, d.logger), tls: tlsCfg, addr: cfg.Listen.API, hosts: hosts, console: con}, nil
}
