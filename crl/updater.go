package crl

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/ca"
)

// The defaults of Config's zero fields. They are the only place these
// values are written: jpkica's configuration takes them from here.
const (
	DefaultInterval     = 24 * time.Hour
	DefaultOverlap      = 12 * time.Hour
	DefaultDeltaDelay   = time.Minute
	DefaultTick         = 30 * time.Second
	DefaultLintMaxBytes = 8 << 20 // about 160,000 entries
)

// Config holds the updater's choices. Zero fields take the defaults above.
type Config struct {
	// BaseURL is urls.crl_base: a partition's CRL is at
	// BaseURL/<issuer>/<municipality>.crl, the URL ca.Profiles writes into
	// certificates.
	BaseURL string
	// Dir is the publication directory.
	Dir string
	// Interval between complete CRLs (DefaultInterval).
	Interval time.Duration
	// Overlap is added to Interval for nextUpdate, so a relying party's
	// copy stays valid while the next one propagates (DefaultOverlap).
	Overlap time.Duration
	// DeltaInterval between delta CRLs; 0 means no delta CRLs (and no
	// freshestCRL on complete ones). A delta's nextUpdate is thisUpdate + 2
	// DeltaInterval.
	DeltaInterval time.Duration
	// DeltaDelay is how soon after a revocation the deltas are refreshed
	// (DefaultDeltaDelay).
	DeltaDelay time.Duration
	// KeepExpired keeps entries of expired certificates on the CRLs, with
	// expiredCertsOnCRL set to the issuer's notBefore (every certificate it
	// ever issued). Off: entries leave the CRL once the certificate expires.
	KeepExpired bool
	// Municipalities are partitions published even before they have a
	// revoked certificate (the configured municipalities).
	Municipalities []string
	// LintMaxBytes: CRLs up to this size are parsed whole by crypto/x509
	// and zcrypto and linted; larger ones are read back by the streaming
	// parser and a sample of their first entries is linted
	// (DefaultLintMaxBytes).
	LintMaxBytes int64
	// SpoolDir holds the encoder's spool files ("" = the system default).
	SpoolDir string
	// Tick is how often Run looks for due work (DefaultTick).
	Tick time.Duration
	// Actor names the updater in the audit log (default "system:crl").
	Actor string
}

// Progress reports a CRL being generated.
type Progress struct {
	Scope   Scope
	Entries int64
	Elapsed time.Duration
	Done    bool
}

// Deps are what the updater works with.
type Deps struct {
	Store Store
	// Issuers are the card issuers, every generation: each has its CRLs.
	Issuers []ca.IssuerKey
	Clock   func() time.Time
	Rand    io.Reader
	Logger  *slog.Logger
	// Metrics is where the updater registers its collectors (nil: none).
	Metrics prometheus.Registerer
	// Progress, when set, is told of long runs (the CLI prints it).
	Progress func(Progress)
}

// Updater generates, checks and publishes an issuer's CRLs. Its methods are
// safe for concurrent use; CRL generation runs one at a time per Updater.
// Several processes may run updaters on one store: CRL numbers come from the
// store; publishers sharing one directory are serialized by its lock.
type Updater struct {
	cfg      Config
	store    Store
	issuers  map[string]ca.IssuerKey
	order    []string
	dir      *Dir
	clock    func() time.Time
	rand     io.Reader
	log      *slog.Logger
	m        *metrics
	progress func(Progress)

	mu    sync.Mutex // one generation at a time
	runMu sync.Mutex // one RunDue at a time; guards the two below
	// behindSince holds, for each delta scope behind a revocation, when
	// RunDue first saw it behind.
	behindSince map[Scope]time.Time
	strays      map[Scope]bool // stray partitions already reported
	// resync is set when the store went back (wentBack) until a RunDue
	// has made every CRL again.
	resync bool

	markMu sync.Mutex
	mark   Published // the published CRL with the newest change mark
}

// NewUpdater validates the configuration once.
func NewUpdater(cfg Config, deps Deps) (*Updater, error) {
	if cfg.BaseURL == "" || !strings.Contains(cfg.BaseURL, "://") {
		return nil, fmt.Errorf("%w: CRL base URL %q", ErrInvalid, cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if deps.Store == nil || deps.Clock == nil || len(deps.Issuers) == 0 {
		return nil, fmt.Errorf("%w: the updater needs a store, a clock and issuers", ErrInvalid)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Interval, DefaultInterval)
	def(&cfg.Overlap, DefaultOverlap)
	def(&cfg.DeltaDelay, DefaultDeltaDelay)
	def(&cfg.Tick, DefaultTick)
	if cfg.Interval < 0 || cfg.Overlap < 0 || cfg.DeltaInterval < 0 || cfg.DeltaDelay < 0 || cfg.Tick < 0 {
		return nil, fmt.Errorf("%w: negative CRL schedule", ErrInvalid)
	}
	if cfg.LintMaxBytes == 0 {
		cfg.LintMaxBytes = DefaultLintMaxBytes
	}
	if cfg.Actor == "" {
		cfg.Actor = "system:crl"
	}
	for _, m := range cfg.Municipalities {
		if !partitionPattern.MatchString(m) || m == fullName {
			return nil, fmt.Errorf("%w: municipality %q", ErrInvalid, m)
		}
	}
	dir, err := OpenDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("registering CRL metrics: %w", err)
	}
	u := &Updater{
		cfg: cfg, store: deps.Store, issuers: map[string]ca.IssuerKey{}, dir: dir,
		clock: deps.Clock, rand: deps.Rand, log: deps.Logger, m: m, progress: deps.Progress,
		behindSince: map[Scope]time.Time{}, strays: map[Scope]bool{},
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.rand == nil {
		u.rand = rand.Reader
	}
	for _, ik := range deps.Issuers {
		id := ik.Issuer.ID
		if err := (Scope{Issuer: id}).validate(); err != nil {
			return nil, err
		}
		if ik.Cert == nil || ik.Signer == nil {
			return nil, fmt.Errorf("%w: issuer %s without certificate or signer", ErrInvalid, id)
		}
		if _, dup := u.issuers[id]; dup {
			return nil, fmt.Errorf("%w: issuer %s twice", ErrInvalid, id)
		}
		u.issuers[id] = ik
		u.order = append(u.order, id)
	}
	// The gauges start from what is published, so that a restarted node
	// shows every CRL's nextUpdate before it makes its next one.
	for _, id := range u.order {
		ps, err := u.dir.Published(id)
		if err != nil {
			return nil, fmt.Errorf("reading the published CRLs of %s: %w", id, err)
		}
		for _, p := range ps {
			u.observe(p)
		}
	}
	return u, nil
}

// Issuers lists the issuer IDs the updater publishes for.
func (u *Updater) Issuers() []string { return slices.Clone(u.order) }

// Dir is the publication directory.
func (u *Updater) Dir() *Dir { return u.dir }

// URL is where a scope's CRL is published; for a partition it is the CRL
// distribution point of the partition's certificates.
func (u *Updater) URL(s Scope) string { return u.cfg.BaseURL + "/" + s.File() }

// Partitions lists an issuer's partitions: the configured municipalities,
// and the municipalities with revoked certificates in the store (a
// certificate names its partition's CRL for life, also after its
// municipality left the configuration).
func (u *Updater) Partitions(ctx context.Context, issuerID string) ([]string, error) {
	fromStore, err := u.store.CRLPartitions(ctx, issuerID)
	if err != nil {
		return nil, fmt.Errorf("listing partitions of %s: %w", issuerID, err)
	}
	all := slices.Concat(fromStore, u.cfg.Municipalities)
	slices.Sort(all)
	return slices.Compact(all), nil
}

// StrayPartitions lists the partitions published for an issuer that are
// not among parts, its Partitions: published by hand for a code that is no
// municipality's, or for one that left the configuration before any of its
// certificates was revoked. They are left as they are, not extended.
func (u *Updater) StrayPartitions(issuerID string, parts []string) ([]string, error) {
	published, err := u.dir.Partitions(issuerID)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(published, func(p string) bool { return slices.Contains(parts, p) }), nil
}
