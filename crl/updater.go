package crl

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// Config holds the updater's choices. Zero fields take the defaults given.
type Config struct {
	// BaseURL is urls.crl_base: a partition's CRL is at
	// BaseURL/<issuer>/<municipality>.crl, the URL ca.Profiles writes into
	// certificates.
	BaseURL string
	// Dir is the publication directory.
	Dir string
	// Interval between complete CRLs (default 24h).
	Interval time.Duration
	// Overlap is added to Interval for nextUpdate, so a relying party's
	// copy stays valid while the next one propagates (default 12h).
	Overlap time.Duration
	// DeltaInterval between delta CRLs; 0 means no delta CRLs (and no
	// freshestCRL on complete ones). A delta's nextUpdate is thisUpdate + 2
	// DeltaInterval.
	DeltaInterval time.Duration
	// DeltaDelay is how soon after a revocation the deltas are refreshed
	// (default 1m).
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
	// parser and a sample of their first entries is linted (default 8 MiB,
	// about 160,000 entries).
	LintMaxBytes int64
	// SpoolDir holds the encoder's spool files ("" = the system default).
	SpoolDir string
	// Tick is how often Run looks for due work (default 30s).
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

// ErrNoBase: a delta CRL was asked for a scope without a published complete
// CRL.
var ErrNoBase = errors.New("no complete CRL to base a delta on")

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

	mu        sync.Mutex // one generation at a time
	runMu     sync.Mutex // one RunDue at a time; guards the two below
	markSeen  int64      // RunDue: the last change mark seen
	markSince time.Time  // RunDue: when it was first seen
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
	def(&cfg.Interval, 24*time.Hour)
	def(&cfg.Overlap, 12*time.Hour)
	def(&cfg.DeltaDelay, time.Minute)
	def(&cfg.Tick, 30*time.Second)
	if cfg.Interval < 0 || cfg.Overlap < 0 || cfg.DeltaInterval < 0 || cfg.DeltaDelay < 0 || cfg.Tick < 0 {
		return nil, fmt.Errorf("%w: negative CRL schedule", ErrInvalid)
	}
	if cfg.LintMaxBytes == 0 {
		cfg.LintMaxBytes = 8 << 20
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
	return u, nil
}

// Issuers lists the issuer IDs the updater publishes for.
func (u *Updater) Issuers() []string { return slices.Clone(u.order) }

// Dir is the publication directory.
func (u *Updater) Dir() *Dir { return u.dir }

// URL is where a scope's CRL is published; for a partition it is the CRL
// distribution point of the partition's certificates.
func (u *Updater) URL(s Scope) string { return u.cfg.BaseURL + "/" + s.File() }

// Partitions lists an issuer's partitions: the municipalities with revoked
// certificates in the store, the configured municipalities, and every
// partition published before (a partition, once published, stays).
func (u *Updater) Partitions(ctx context.Context, issuerID string) ([]string, error) {
	fromStore, err := u.store.CRLPartitions(ctx, issuerID)
	if err != nil {
		return nil, fmt.Errorf("listing partitions of %s: %w", issuerID, err)
	}
	published, err := u.dir.Partitions(issuerID)
	if err != nil {
		return nil, err
	}
	all := slices.Concat(fromStore, u.cfg.Municipalities, published)
	slices.Sort(all)
	return slices.Compact(all), nil
}

// GenerateIssuer publishes an issuer's full CRL and one CRL per partition
// (complete CRLs, or with delta the delta CRLs of each). only, when not
// empty, restricts it to those partitions ("full" for the full CRL). It goes
// on after a failed CRL and returns every failure joined.
func (u *Updater) GenerateIssuer(ctx context.Context, issuerID string, delta bool, only ...string) ([]Published, error) {
	if _, ok := u.issuers[issuerID]; !ok {
		return nil, fmt.Errorf("%w: unknown issuer %q", ErrInvalid, issuerID)
	}
	parts, err := u.Partitions(ctx, issuerID)
	if err != nil {
		return nil, err
	}
	scopes := []Scope{{Issuer: issuerID, Delta: delta}}
	for _, p := range parts {
		scopes = append(scopes, Scope{Issuer: issuerID, Partition: p, Delta: delta})
	}
	if len(only) > 0 {
		var keep []Scope
		for _, s := range scopes {
			name := s.Partition
			if name == "" {
				name = fullName
			}
			if slices.Contains(only, name) {
				keep = append(keep, s)
			}
		}
		for _, o := range only {
			if o != fullName && !slices.Contains(parts, o) {
				keep = append(keep, Scope{Issuer: issuerID, Partition: o, Delta: delta})
			}
		}
		scopes = keep
	}
	var (
		out  []Published
		errs []error
	)
	for _, s := range scopes {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		p, err := u.Generate(ctx, s)
		if errors.Is(err, ErrNoBase) {
			u.log.Info("no delta CRL: no complete CRL published yet", "crl", s.File())
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// Generate builds, checks and publishes one CRL. A CRL that fails a check
// is not published: the error wraps ErrCheck, is logged at error level and
// counted in jpkica_crl_check_failures_total.
func (u *Updater) Generate(ctx context.Context, scope Scope) (Published, error) {
	if err := scope.validate(); err != nil {
		return Published{}, err
	}
	ik, ok := u.issuers[scope.Issuer]
	if !ok {
		return Published{}, fmt.Errorf("%w: unknown issuer %q", ErrInvalid, scope.Issuer)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	start := time.Now() // duration metric only; CRL times come from the clock
	kind := kindOf(scope)
	p, check, err := u.generate(ctx, scope, ik)
	u.m.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	u.m.progress.WithLabelValues(scope.Issuer).Set(0)
	if errors.Is(err, ErrNoBase) || ctx.Err() != nil {
		return Published{}, fmt.Errorf("CRL %s: %w", scope, err)
	}
	if err != nil {
		u.m.generated.WithLabelValues(scope.Issuer, kind, "failed").Inc()
		if check != "" {
			u.m.failures.WithLabelValues(scope.Issuer, kind, check).Inc()
			u.log.Error("CRL REFUSED: not published", "crl", scope.File(), "check", check, "err", err)
		} else {
			u.log.Error("CRL generation failed", "crl", scope.File(), "err", err)
		}
		return Published{}, fmt.Errorf("CRL %s: %w", scope, err)
	}
	u.m.generated.WithLabelValues(scope.Issuer, kind, "published").Inc()
	u.m.entries.WithLabelValues(scope.Issuer, kind).Set(float64(p.Entries))
	u.m.bytes.WithLabelValues(scope.Issuer, kind).Set(float64(p.Size))
	u.m.lastOK.WithLabelValues(scope.Issuer, kind).Set(float64(p.ThisUpdate.Unix()))
	u.m.nextUpdate.WithLabelValues(scope.Issuer, kind).Set(float64(p.NextUpdate.Unix()))
	u.log.Info("CRL published", "crl", scope.File(), "number", p.Number, "entries", p.Entries, "bytes", p.Size,
		"seconds", time.Since(start).Seconds())
	return p, nil
}

// generate returns the name of the failed check with a check failure.
func (u *Updater) generate(ctx context.Context, scope Scope, ik ca.IssuerKey) (Published, string, error) {
	now := u.clock().UTC().Truncate(time.Second)
	var base Published
	if scope.Delta {
		if u.cfg.DeltaInterval <= 0 {
			return Published{}, "", fmt.Errorf("%w: delta CRLs are not configured", ErrInvalid)
		}
		b, ok, err := u.dir.Last(scope.Complete())
		if err != nil {
			return Published{}, "", err
		}
		if !ok {
			return Published{}, "", ErrNoBase
		}
		base = b
	}
	// The mark is taken before the entries are read: every change after it
	// is in a later delta, whether or not this CRL saw it.
	mark, err := u.store.CRLChangeMark(ctx)
	if err != nil {
		return Published{}, "", err
	}
	number, err := u.store.NextCRLNumber(ctx, scope.Issuer, scope.Partition)
	if err != nil {
		return Published{}, "", err
	}
	spec := Spec{Issuer: ik.Cert, Number: number, ThisUpdate: now, NextUpdate: now.Add(u.cfg.Interval + u.cfg.Overlap)}
	if scope.Partition != "" {
		spec.IDP = u.URL(scope.Complete())
	}
	notExpiredAt := now
	if u.cfg.KeepExpired {
		notExpiredAt = ik.Cert.NotBefore.UTC().Truncate(time.Second)
		spec.ExpiredCertsOnCRL = notExpiredAt
	}
	var src Source
	if scope.Delta {
		spec.DeltaBase = base.Number
		spec.NextUpdate = now.Add(2 * u.cfg.DeltaInterval)
		src = changesSource(u.store, scope.Issuer, scope.Partition, base.ChangeMark, notExpiredAt)
	} else {
		if u.cfg.DeltaInterval > 0 {
			spec.FreshestCRL = u.URL(Scope{Issuer: scope.Issuer, Partition: scope.Partition, Delta: true})
		}
		src = ListerSource(u.store, scope.Issuer, scope.Partition, notExpiredAt)
	}

	f, err := u.dir.create(scope)
	if err != nil {
		return Published{}, "", err
	}
	published := false
	defer func() {
		f.Close()
		if !published {
			os.Remove(f.Name())
		}
	}()
	started := time.Now()
	opt := Options{SpoolDir: u.cfg.SpoolDir, Rand: u.rand, Progress: func(n int64) {
		u.m.progress.WithLabelValues(scope.Issuer).Set(float64(n))
		if u.progress != nil {
			u.progress(Progress{Scope: scope, Entries: n, Elapsed: time.Since(started)})
		}
	}, ProgressEvery: 100000}
	info, err := Encode(ctx, spec, ik.Signer, src, f, opt)
	if err != nil {
		return Published{}, "", fmt.Errorf("encoding: %w", err)
	}
	encoded := time.Now()
	if err := f.Sync(); err != nil {
		return Published{}, "", fmt.Errorf("syncing CRL file: %w", err)
	}
	synced := time.Now()
	if check, err := u.check(f, scope, spec, info); err != nil {
		return Published{}, check, err
	}
	u.log.Debug("CRL timings", "crl", scope.File(), "encode_s", encoded.Sub(started).Seconds(),
		"fsync_s", synced.Sub(encoded).Seconds(), "check_s", time.Since(synced).Seconds())
	p := Published{
		Scope: scope, Number: number, BaseNumber: spec.DeltaBase, ThisUpdate: now, NextUpdate: spec.NextUpdate,
		IDP: spec.IDP, Entries: info.Entries, Size: info.Size, ChangeMark: mark,
	}
	if err := f.Close(); err != nil {
		return Published{}, "", fmt.Errorf("closing CRL file: %w", err)
	}
	if err := u.dir.publish(f.Name(), p); err != nil {
		if errors.Is(err, ErrCheck) {
			return Published{}, "number", err
		}
		return Published{}, "", err
	}
	published = true
	if u.progress != nil {
		u.progress(Progress{Scope: scope, Entries: info.Entries, Elapsed: time.Since(started), Done: true})
	}
	detail, _ := json.Marshal(map[string]any{
		"number": number.String(), "base_number": bigString(spec.DeltaBase), "entries": info.Entries, "bytes": info.Size,
		"this_update": spec.ThisUpdate, "next_update": spec.NextUpdate, "url": u.URL(scope),
	})
	if err := u.store.AppendAudit(ctx, audit.Entry{
		Time: now, Actor: u.cfg.Actor, Action: "crl.publish", Subject: scope.File(), Detail: detail,
	}); err != nil {
		// Published already: the CRL is correct; the gap in the audit log
		// is reported loudly.
		u.log.Error("CRL published but not audited", "crl", scope.File(), "err", err)
	}
	return p, "", nil
}

func bigString(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.String()
}

// sampleSize is how many entries of a large CRL go into the linted sample.
const sampleSize = 1000

// check reads the written CRL back before it is published: the streaming
// parse verifies the signature against the issuer certificate over a hash
// computed while reading, and the content must be what was asked for; the
// number must be above the last published and the scope (IDP) unchanged;
// zlint runs on the CRL itself up to LintMaxBytes, and on a sample of it
// (same header and extensions, its first entries, signed by a throwaway key)
// above, because crypto/x509 and zcrypto parse a CRL whole in memory.
func (u *Updater) check(f *os.File, scope Scope, spec Spec, info Info) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	var sample []Entry
	p, err := readBack(f, spec.Issuer, func(e Entry) error {
		sample = append(sample, e)
		return nil
	}, sampleSize)
	if err != nil {
		return "readback", fmt.Errorf("%w: %w", ErrCheck, err)
	}
	switch {
	case p.Number.Cmp(spec.Number) != 0, p.IDP != spec.IDP, p.OnlyUserCerts != (spec.IDP != ""),
		p.FreshestCRL != spec.FreshestCRL, !p.ThisUpdate.Equal(spec.ThisUpdate), !p.NextUpdate.Equal(spec.NextUpdate),
		(p.DeltaBase == nil) != (spec.DeltaBase == nil), p.DeltaBase != nil && p.DeltaBase.Cmp(spec.DeltaBase) != 0,
		p.Entries != info.Entries, p.Size != info.Size:
		return "content", fmt.Errorf("%w: the CRL read back differs from the one asked for", ErrCheck)
	}
	last, ok, err := u.dir.Last(scope)
	if err != nil {
		return "", err
	}
	if ok && p.Number.Cmp(last.Number) <= 0 {
		return "number", fmt.Errorf("%w: CRL number %v is not above the published %v", ErrCheck, p.Number, last.Number)
	}
	if ok && p.IDP != last.IDP {
		return "scope", fmt.Errorf("%w: issuingDistributionPoint %q differs from the published %q", ErrCheck, p.IDP, last.IDP)
	}
	if scope.Delta {
		base, ok, err := u.dir.Last(scope.Complete())
		if err != nil {
			return "", err
		}
		if !ok || base.IDP != p.IDP || p.DeltaBase.Cmp(base.Number) > 0 {
			return "scope", fmt.Errorf("%w: delta CRL does not match its base", ErrCheck)
		}
	}
	if p.Size <= u.cfg.LintMaxBytes {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		der, err := io.ReadAll(f)
		if err != nil {
			return "", err
		}
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return "parse", fmt.Errorf("%w: crypto/x509: %w", ErrCheck, err)
		}
		if err := rl.CheckSignatureFrom(spec.Issuer); err != nil {
			return "signature", fmt.Errorf("%w: crypto/x509: %w", ErrCheck, err)
		}
		if len(rl.RevokedCertificateEntries) != int(p.Entries) {
			return "content", fmt.Errorf("%w: crypto/x509 reads %d entries, not %d", ErrCheck, len(rl.RevokedCertificateEntries), p.Entries)
		}
		if err := ca.LintCRL(der); err != nil {
			return "lint", fmt.Errorf("%w: %w", ErrCheck, err)
		}
		return "", nil
	}
	key, err := sampleKey()
	if err != nil {
		return "", err
	}
	var buf strings.Builder
	if _, err := Encode(context.Background(), spec, key, SliceSource(sample), &buf, Options{}); err != nil {
		return "lint", fmt.Errorf("%w: building the lint sample: %w", ErrCheck, err)
	}
	if err := ca.LintCRL([]byte(buf.String())); err != nil {
		return "lint", fmt.Errorf("%w: sample of the first %d entries: %w", ErrCheck, len(sample), err)
	}
	return "", nil
}

// sampleKey signs lint samples of large CRLs; nothing it signs leaves the
// process.
var sampleKey = sync.OnceValues(func() (crypto.Signer, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

// RunDue publishes what is due now: each complete CRL (full and per
// partition) that is missing or older than Interval, and, with deltas
// configured, each delta CRL that is missing, older than DeltaInterval, or
// behind a revocation in its scope seen DeltaDelay ago.
func (u *Updater) RunDue(ctx context.Context) error {
	u.runMu.Lock()
	defer u.runMu.Unlock()
	now := u.clock()
	var errs []error
	type issuerScopes struct {
		id     string
		scopes []Scope
	}
	var all []issuerScopes
	for _, id := range u.order {
		parts, err := u.Partitions(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		is := issuerScopes{id: id, scopes: []Scope{{Issuer: id}}}
		for _, p := range parts {
			is.scopes = append(is.scopes, Scope{Issuer: id, Partition: p})
		}
		all = append(all, is)
	}
	generate := func(s Scope) {
		if _, err := u.Generate(ctx, s); err != nil && !errors.Is(err, ErrNoBase) {
			errs = append(errs, err)
		}
	}
	for _, is := range all {
		for _, s := range is.scopes {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			last, ok, err := u.dir.Last(s)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !ok || !now.Before(last.ThisUpdate.Add(u.cfg.Interval)) {
				generate(s)
			}
		}
	}
	if u.cfg.DeltaInterval <= 0 {
		return errors.Join(errs...)
	}
	mark, err := u.store.CRLChangeMark(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if mark != u.markSeen {
		u.markSeen, u.markSince = mark, now
	}
	settled := !now.Before(u.markSince.Add(u.cfg.DeltaDelay))
	for _, is := range all {
		type pending struct {
			scope Scope
			last  Published
			ok    bool
		}
		var deltas []pending
		oldest := mark
		for _, s := range is.scopes {
			d := Scope{Issuer: s.Issuer, Partition: s.Partition, Delta: true}
			last, ok, err := u.dir.Last(d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			deltas = append(deltas, pending{d, last, ok})
			if ok {
				oldest = min(oldest, last.ChangeMark)
			}
		}
		changed := map[string]int64{} // partition ("" for any) -> last revocation seq
		if settled && oldest < mark {
			changes, err := u.store.CRLChanges(ctx, oldest)
			if err != nil {
				errs = append(errs, err)
			}
			for _, c := range changes {
				if c.Issuer != is.id {
					continue
				}
				changed[c.Partition] = max(changed[c.Partition], c.Seq)
				changed[""] = max(changed[""], c.Seq)
			}
		}
		for _, d := range deltas {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			due := !d.ok || !now.Before(d.last.ThisUpdate.Add(u.cfg.DeltaInterval)) ||
				changed[d.scope.Partition] > d.last.ChangeMark
			if due {
				generate(d.scope)
			}
		}
	}
	return errors.Join(errs...)
}

// Run calls RunDue every Tick until ctx ends. Failures are logged (and
// counted) and retried on the next tick.
func (u *Updater) Run(ctx context.Context) error {
	t := time.NewTicker(u.cfg.Tick)
	defer t.Stop()
	for {
		if err := u.RunDue(ctx); err != nil && ctx.Err() == nil {
			u.log.Error("CRL run failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
