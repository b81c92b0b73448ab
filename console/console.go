// Package console is the administrators' read-only web console: server
// rendered HTML (html/template, embedded assets) served under /admin/.
//
// It shows the issuer generations and delegated OCSP responders, the
// published CRLs, OCSP pre-signing, health, today's activity by
// municipality, the audit tail with the last chain verification, and a
// certificate lookup. It only reads. Every page load is a handful of indexed
// queries and in-memory reads: none scans the certificates table or the
// whole audit log (docs/operations.md, "The administrators' console").
//
// The console does not identify its callers: mount it behind the API's
// identification, for the admin role only (api.Deps.Console). Its methods
// are safe for concurrent use.
package console

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
	"github.com/jpkica/jpkica/ocsp"
	"github.com/jpkica/jpkica/store"
)

// Registry lists the issuer generations and OCSP responders
// (store.Store).
type Registry interface {
	Issuers(ctx context.Context) ([]ca.Issuer, error)
	Responders(ctx context.Context) ([]store.Responder, error)
}

// AuditLog is the audit log's indexed reads (store.Store).
type AuditLog interface {
	AuditTail(ctx context.Context, limit int) ([]audit.Entry, error)
	AuditActivity(ctx context.Context, from, to time.Time) ([]store.ActivityCount, error)
	AuditBySubject(ctx context.Context, subject string, limit int) ([]audit.Entry, error)
}

// Records finds certificates by their indexed keys (store.Store).
type Records interface {
	Certificate(ctx context.Context, serial ca.Serial) (ca.Record, error)
	CertificatesByCard(ctx context.Context, cardID string) ([]ca.Record, error)
	CertificatesByResident(ctx context.Context, residentID string) ([]ca.Record, error)
}

// CRLs is what was last published for an issuer's CRLs (crl.Dir).
type CRLs interface {
	Published(issuer string) ([]crl.Published, error)
}

// OCSP is the pre-signer's state (ocsp.Presigner).
type OCSP interface {
	State() ocsp.PresignState
}

// Pinger is a dependency /readyz checks: the database, the key store.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Lag reports how far the database read here is behind its primary
// (store.Store: 0 on a primary); nil where there is no replication.
type Lag interface {
	ReplicationLag(ctx context.Context) (time.Duration, error)
}

// Verifier verifies the audit log's chains (store.Store).
type Verifier interface {
	VerifyAudit(ctx context.Context, kept []audit.Anchor) (store.AuditReport, error)
}

// Defaults of Config's zero fields.
const (
	DefaultAuditTail      = 50
	DefaultRefresh        = 30 * time.Second
	DefaultVerifyInterval = 24 * time.Hour
	// DefaultLookupLimit bounds the records and audit entries a lookup
	// shows.
	DefaultLookupLimit = 200
)

// Config holds the console's settings. Zero values take the defaults.
type Config struct {
	// Location is where "today" is reckoned (default: Japan Standard Time).
	Location *time.Location
	// ResponderRenewBefore is how long before expiry a delegated responder
	// is renewed (issuance.responder_renew_before): its renewal date.
	ResponderRenewBefore time.Duration
	// Municipalities names the municipality codes (optional).
	Municipalities map[string]string
	// AuditTail is how many of the newest audit entries are shown
	// (DefaultAuditTail).
	AuditTail int
	// Refresh is how often a page reloads itself when the administrator
	// turns auto-refresh on (DefaultRefresh).
	Refresh time.Duration
	// VerifyInterval is how often Run verifies the audit chains
	// (DefaultVerifyInterval).
	VerifyInterval time.Duration
}

// Deps are what the console reads. Registry, Audit, Records and Clock are
// required; a nil CRLs, OCSP, Lag or Verifier is shown as not run here.
type Deps struct {
	Registry Registry
	Audit    AuditLog
	Records  Records
	CRLs     CRLs
	OCSP     OCSP
	// Ready are the dependencies /readyz checks, by name.
	Ready    map[string]Pinger
	Lag      Lag
	Verifier Verifier
	Clock    func() time.Time
	Logger   *slog.Logger
}

//go:embed templates/*.html assets/*
var files embed.FS

// Console is the console's http.Handler, for the paths under /admin/.
type Console struct {
	cfg  Config
	deps Deps
	tmpl *template.Template
	mux  *http.ServeMux
	log  *slog.Logger

	mu       sync.Mutex
	verified *verification // the last Run verification; nil before
}

// verification is the result of one audit chain verification.
type verification struct {
	At     time.Time
	Report store.AuditReport
	Err    error
}

// jst is Japan Standard Time (no daylight saving).
var jst = time.FixedZone("JST", 9*60*60)

// New checks the configuration and dependencies once.
func New(cfg Config, deps Deps) (*Console, error) {
	if deps.Registry == nil || deps.Audit == nil || deps.Records == nil || deps.Clock == nil {
		return nil, fmt.Errorf("%w: the console needs a registry, the audit log, the records and a clock", ca.ErrInvalid)
	}
	if cfg.AuditTail < 0 || cfg.AuditTail > 1000 || cfg.Refresh < 0 || cfg.VerifyInterval < 0 || cfg.ResponderRenewBefore < 0 {
		return nil, fmt.Errorf("%w: console limits out of range", ca.ErrInvalid)
	}
	cfg.Location = cmp.Or(cfg.Location, jst)
	cfg.AuditTail = cmp.Or(cfg.AuditTail, DefaultAuditTail)
	cfg.Refresh = cmp.Or(cfg.Refresh, DefaultRefresh)
	cfg.VerifyInterval = cmp.Or(cfg.VerifyInterval, DefaultVerifyInterval)
	tmpl, err := template.New("").Funcs(funcs).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, deps: deps, tmpl: tmpl, log: log, mux: http.NewServeMux()}
	c.mux.Handle("GET /admin/assets/", http.StripPrefix("/admin/", http.FileServerFS(files)))
	c.mux.HandleFunc("GET /admin/{$}", c.page("Overview", "", viewIssuers, viewHealth, viewCRLs, viewOCSP, viewActivity, viewAudit))
	for _, v := range views {
		c.mux.HandleFunc("GET /admin/"+v.path, c.page(v.title, v.path, v))
	}
	c.mux.HandleFunc("GET /admin/lookup", c.lookup)
	c.mux.HandleFunc("/", c.notFound)
	return c, nil
}

// ServeHTTP answers one console page.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusNotFound, pageData{Title: "Not found", Message: "No console page at " + r.URL.Path + "."})
}

// Run verifies the audit chains at once and then every VerifyInterval
// until ctx ends; the audit view shows the last result. A verification
// reads the whole log: it runs here, in the background, never on a page
// load.
func (c *Console) Run(ctx context.Context) error {
	if c.deps.Verifier == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		rep, err := c.deps.Verifier.VerifyAudit(ctx, nil)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			c.log.Error("console: audit chain verification failed", "err", err)
		}
		c.mu.Lock()
		c.verified = &verification{At: c.deps.Clock().UTC(), Report: rep, Err: err}
		c.mu.Unlock()
		t.Reset(c.cfg.VerifyInterval)
	}
}

func (c *Console) lastVerification() *verification {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified
}
