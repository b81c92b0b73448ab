// Package apitest starts a real jpkica API for tests: a fresh SQLite store
// (or the PostgreSQL DSN the test gives), the key ceremony in the key store
// the test gives (a software one by default), an Authority and the API
// behind httptest's TLS server. Server.Enrol makes a terminal's client
// certificate with ceremony.IssueClient. The clock is the test's to move.
package apitest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/jpkica/jpkica/api"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/catest"
	"github.com/jpkica/jpkica/store"
)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Set moves the clock.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// Start is the clock's first reading: 2026-11-25 12:00 JST.
var Start = catest.Now

// Options tune the server.
type Options struct {
	// Keys holds the issuer keys; nil means a software key store in a
	// temporary directory.
	Keys   hsm.KeyStore
	Config api.Config
	// Listener, if set, is the Authority's StatusListener.
	Listener ca.StatusListener
	// ResponderAlgorithm is the delegated OCSP responders' key type
	// (catest's default, ECDSA P-256, when zero).
	ResponderAlgorithm hsm.Algorithm
	// DSN is the store's; "" means a fresh SQLite file.
	DSN string
	// Wrap, if set, wraps the API's handler: a test's way to lose or delay
	// answers between the API and its clients.
	Wrap func(http.Handler) http.Handler
	// IssuerValidity is the issuers' lifetime (20 years when zero).
	IssuerValidity time.Duration
	// Logger, if set, gets the API's log.
	Logger *slog.Logger
}

// Server is a running API with its parts.
type Server struct {
	URL      string
	HTTP     *httptest.Server
	API      *api.API
	Store    *store.Store
	Keyring  *ceremony.Keyring
	Auth     *ca.Authority
	Clock    *Clock
	Roots    *x509.CertPool // the card issuers, for verifying issued certificates
	ServerCA *x509.CertPool // the client CA, which also signs the server certificate
	Metrics  *prometheus.Registry
}

// Municipalities are the profiles' municipalities.
var Municipalities = catest.Municipalities

// New starts a server; it stops when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	clock := &Clock{t: Start}
	if opts.IssuerValidity == 0 {
		opts.IssuerValidity = 20 * 365 * 24 * time.Hour
	}
	c := catest.New(t, catest.Options{Keys: opts.Keys, DSN: opts.DSN, IssuerValidity: opts.IssuerValidity, Clock: clock.Now,
		Listener: opts.Listener, Municipalities: Municipalities, ResponderAlgorithm: opts.ResponderAlgorithm})
	st, kr, auth := c.Store, c.Keyring, c.Auth[1]
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(kr.ClientCA.Cert)
	cfg := opts.Config
	if cfg.RateLimit == 0 {
		cfg.RateLimit = rate.Inf
	}
	if cfg.IdentityCacheTTL == 0 {
		cfg.IdentityCacheTTL = time.Nanosecond
	}
	metrics := prometheus.NewRegistry()
	a, err := api.New(cfg, api.Deps{Authority: auth, Store: st, ClientCAs: clientCAs, Clock: clock.Now, Rand: rand.Reader,
		Metrics: metrics, Logger: opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := api.ServerCertificate(api.ServerCertRequest{ClientCA: kr.ClientCA, Hosts: []string{"127.0.0.1", "localhost"},
		Now: time.Now(), Validity: 24 * time.Hour, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = a
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = api.TLSConfig(cert)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &Server{URL: srv.URL, HTTP: srv, API: a, Store: st, Keyring: kr, Auth: auth, Clock: clock, Roots: c.Roots,
		ServerCA: clientCAs, Metrics: metrics}
}

// Enrol issues a terminal certificate (valid from the clock's time for
// validity) and returns it as a TLS client certificate.
func (s *Server) Enrol(t testing.TB, role, municipality, name string, validity time.Duration) (tls.Certificate, ca.Serial) {
	t.Helper()
	c, err := ceremony.IssueClient(context.Background(), s.Store, s.Keyring, ceremony.ClientRequest{
		Role: role, Municipality: municipality, Name: name, Validity: validity, Actor: "admin:test",
	}, s.Clock.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair, c.Serial
}

// Client is an HTTPS client for the server presenting cert (none when
// cert is nil).
func (s *Server) Client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: s.ServerCA, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}
}
