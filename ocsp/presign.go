package ocsp

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/internal/netacl"
)

// Source is where certificate statuses come from; *store.Store satisfies it.
// The Records it gives need only Serial, IssuerID, Status, Reason, RevokedAt
// and NotAfter.
type Source interface {
	// StatusFeed streams every certificate changed after afterSeq in
	// change_seq order; an error from fn stops it and is returned.
	StatusFeed(ctx context.Context, afterSeq int64, fn func(seq int64, r ca.Record) error) error
	// StatusOf returns one certificate's status and change_seq, or an error
	// matching ca.ErrNotFound when the serial was never issued.
	StatusOf(ctx context.Context, serial ca.Serial) (int64, ca.Record, error)
	// NewestChange is the newest change_seq and the certificate it changed
	// (0 and a zero serial for an empty store).
	NewestChange(ctx context.Context) (int64, ca.Serial, error)
}

// NonceMode says what to do with a request nonce (RFC 8954).
type NonceMode int

const (
	// NonceIgnore answers with the pre-signed, cacheable response; the
	// nonce is left out (RFC 8954 section 2.1 allows it). The default.
	NonceIgnore NonceMode = iota
	// NonceEcho answers a request that carries a nonce with a freshly
	// signed response carrying it, when signing capacity allows; otherwise
	// with the pre-signed response.
	NonceEcho
)

// The defaults of Config's zero fields. They are the only place these
// values are written: jpkica's configuration takes them from here.
const (
	DefaultValidity           = 24 * time.Hour
	DefaultMaxAge             = 5 * time.Minute
	DefaultMaxInFlight        = 64
	DefaultQueueSize          = 1 << 16
	DefaultMaxCertsPerRequest = 8
	DefaultPollInterval       = time.Second
	DefaultRefreshInterval    = time.Minute
	DefaultMaxBody            = 10 << 10
	DefaultAuditInterval      = 10 * time.Minute
)

// Config holds the responder's tunables; zero fields take the defaults
// above (Workers: GOMAXPROCS).
type Config struct {
	// Validity is nextUpdate - thisUpdate (DefaultValidity). Responses are
	// re-signed between 1/2 and 3/4 of it, spread by serial.
	Validity time.Duration
	// MaxAge caps Cache-Control max-age (DefaultMaxAge; never past
	// nextUpdate).
	MaxAge time.Duration
	// Workers is how many pre-signings run at once (GOMAXPROCS).
	Workers int
	// MaxInFlight bounds on-demand signings (cache misses, nonces, multi-
	// certificate requests) at once (DefaultMaxInFlight); past it a request
	// gets a still valid cached response, or tryLater.
	MaxInFlight int
	// QueueSize bounds each pre-signing queue (DefaultQueueSize).
	QueueSize int
	// MaxCertsPerRequest is the most CertIDs one request may carry
	// (DefaultMaxCertsPerRequest); more is malformedRequest.
	MaxCertsPerRequest int
	// Nonce is the nonce mode (NonceIgnore).
	Nonce NonceMode
	// PollInterval is how often the store is asked for changes
	// (DefaultPollInterval).
	PollInterval time.Duration
	// RefreshInterval is how often the cache is scanned for responses due
	// for re-signing (DefaultRefreshInterval).
	RefreshInterval time.Duration
	// MaxBody bounds a POST body, in bytes (DefaultMaxBody).
	MaxBody int64
	// AuditInterval is how often the signatures made are written to the
	// audit log, one entry per issuer (DefaultAuditInterval), with
	// Deps.Audit.
	AuditInterval time.Duration
	// Clients are the networks the Responder answers (the registered
	// verifiers'); others get unauthorized (RFC 6960 section 2.3). The
	// zero List answers everyone.
	Clients netacl.List
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Validity, DefaultValidity)
	def(&c.MaxAge, DefaultMaxAge)
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.RefreshInterval, DefaultRefreshInterval)
	def(&c.AuditInterval, DefaultAuditInterval)
	defInt(&c.Workers, runtime.GOMAXPROCS(0))
	defInt(&c.MaxInFlight, DefaultMaxInFlight)
	defInt(&c.QueueSize, DefaultQueueSize)
	defInt(&c.MaxCertsPerRequest, DefaultMaxCertsPerRequest)
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultMaxBody
	}
	return c
}

// Deps are what a Presigner works with.
type Deps struct {
	Issuers []IssuerConfig
	Source  Source
	Clock   func() time.Time
	Rand    io.Reader
	// Responses, if set, keeps every pre-signed response (SHA-1 CertID) and
	// gives them back at the next start, so that a restart does not re-sign
	// what is still valid.
	Responses ResponseStore
	// Audit, if set, receives an "ocsp.sign" entry per issuer and
	// Config.AuditInterval: how many responses were signed, by which
	// responder. One entry per response would be hundreds of millions a day.
	Audit Auditor
	// Metrics, if set, receives the responder's Prometheus metrics.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
}

// Presigner keeps a signed response ready for every live certificate of the
// issuers it serves, and answers decoded requests from them. It implements
// ca.StatusListener. It is safe for concurrent use.
type Presigner struct {
	cfg    Config
	src    Source
	clock  func() time.Time
	rand   io.Reader
	log    *slog.Logger
	m      *metrics
	cache  *Cache
	auths  []*authority
	byID   map[string]*authority
	byKey  [2]map[string]*authority // by hashIndex, by issuerKeyHash
	keysMu sync.Mutex               // serialises changes to the authorities' keys
	urgent chan job
	bulk   chan job
	sem    chan struct{}
	flight singleflight.Group
	warm   chan struct{} // closed when the first load is done
	// mark is the newest change followed: its change_seq and certificate
	// (see followed).
	mark atomic.Pointer[changeMark]
	// gen is bumped by resync; signAndPut puts a response only while the
	// generation its job was queued in is current, under genMu's read lock.
	gen   atomic.Uint64
	genMu sync.RWMutex
	bg    sync.WaitGroup // loads started by resync
	// pending counts signing jobs queued or running and responses waiting
	// to be stored: Drain waits for it to reach zero.
	pending atomic.Int64

	responses ResponseStore
	persistQ  chan ca.OCSPResponse

	audit      Auditor
	auditSince time.Time // start of the interval the next audit entries cover

	retryMu sync.Mutex
	retry   map[ca.Serial]struct{}

	// withdrawn holds the cache keys whose responses withdraw took out,
	// until a response is signed for them again: the tryLater answers they
	// get are counted.
	withdrawn sync.Map

	// oldest is the oldest producedAt the last refresh scan saw (low 32
	// bits, Unix seconds; MaxUint32 for an empty cache) and when that scan
	// ran (high 32 bits); 0 before the first (State).
	oldest atomic.Uint64
}

var _ ca.StatusListener = (*Presigner)(nil)

// changeMark is a change the follower has seen: the newest change_seq and
// the certificate it changed.
type changeMark struct {
	seq    int64
	serial ca.Serial
}

// job is one certificate to sign. Without rec the status is read first.
type job struct {
	serial  ca.Serial
	rec     *ca.Record
	seq     int64
	refresh bool // re-signing a cached response: skip if it changed meanwhile
	hashIdx int  // for refresh jobs: the variant
	issuer  uint8
	at      uint32 // refresh: producedAt of the response being replaced
	gen     uint64 // the generation it was queued in (see resync)
}

// NewPresigner checks its configuration once.
func NewPresigner(cfg Config, deps Deps) (*Presigner, error) {
	if deps.Source == nil || deps.Clock == nil || deps.Rand == nil || len(deps.Issuers) == 0 {
		return nil, fmt.Errorf("%w: a presigner needs a source, a clock, a random source and issuers", ErrInvalid)
	}
	if len(deps.Issuers) > 127 {
		return nil, fmt.Errorf("%w: %d issuers (at most 127)", ErrInvalid, len(deps.Issuers))
	}
	cfg = cfg.withDefaults()
	if cfg.Nonce != NonceIgnore && cfg.Nonce != NonceEcho {
		return nil, fmt.Errorf("%w: nonce mode %d", ErrInvalid, cfg.Nonce)
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Presigner{
		cfg: cfg, src: deps.Source, clock: deps.Clock, rand: deps.Rand, log: logger,
		cache:  NewCache(),
		byID:   map[string]*authority{},
		byKey:  [2]map[string]*authority{{}, {}},
		urgent: make(chan job, cfg.QueueSize),
		bulk:   make(chan job, cfg.QueueSize),
		sem:    make(chan struct{}, cfg.MaxInFlight),
		warm:   make(chan struct{}),
		retry:  map[ca.Serial]struct{}{},

		responses: deps.Responses,
		persistQ:  make(chan ca.OCSPResponse, cfg.QueueSize),
		audit:     deps.Audit,
	}
	for i, ic := range deps.Issuers {
		a, err := newAuthority(i, ic)
		if err != nil {
			return nil, err
		}
		if _, dup := p.byID[a.id]; dup {
			return nil, fmt.Errorf("%w: issuer %s given twice", ErrInvalid, a.id)
		}
		p.auths = append(p.auths, a)
		p.byID[a.id] = a
		for h := range hashes {
			p.byKey[h][string(a.keyHash[h])] = a
		}
	}
	m, err := newMetrics(deps.Metrics, p)
	if err != nil {
		return nil, err
	}
	p.m = m
	return p, nil
}

// Cache is the presigner's response cache.
func (p *Presigner) Cache() *Cache { return p.cache }

// Run loads the cache and keeps it current until ctx ends: the signing
// workers, the stored responses still valid (with Deps.Responses), the
// first load (a stream of every certificate's status from the
// store, signed in the background while requests are already answered),
// the follower that polls the store for changes made by any node, and the
// refresher that re-signs responses before their nextUpdate. It returns
// ctx's error.
func (p *Presigner) Run(ctx context.Context) error {
	start, err := p.newest(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() { p.work(ctx) })
	}
	if p.responses != nil {
		wg.Go(func() { p.writeResponses(ctx) })
	}
	wg.Go(func() {
		if p.responses != nil {
			n, err := p.warmFromStore(ctx)
			if err != nil && ctx.Err() == nil {
				p.log.Warn("ocsp: reading stored responses; signing afresh", "err", err)
			}
			p.log.Info("ocsp: stored responses still valid", "kept", n)
		}
		p.load(ctx, start)
		close(p.warm)
	})
	wg.Go(func() { p.follow(ctx) })
	wg.Go(func() { p.refreshLoop(ctx) })
	if p.audit != nil {
		wg.Go(func() { p.auditLoop(ctx) })
	}
	wg.Wait()
	p.bg.Wait()
	return ctx.Err()
}

// Warmed is closed once the first load has queued every certificate.
func (p *Presigner) Warmed() <-chan struct{} { return p.warm }

// StatusChanged queues the serials for re-signing at once (ca.StatusListener).
// It never blocks: if the queue is full the follower catches the change on
// its next poll.
func (p *Presigner) StatusChanged(ctx context.Context, serials ...ca.Serial) {
	for _, sn := range serials {
		select {
		case p.urgent <- job{serial: sn, gen: p.gen.Load()}:
			p.m.queued.Inc()
			p.pending.Add(1)
		default:
			p.m.dropped.Inc()
		}
	}
}

func (p *Presigner) work(ctx context.Context) {
	for {
		var j job
		select {
		case j = <-p.urgent:
		default:
			select {
			case j = <-p.urgent:
			case j = <-p.bulk:
			case <-ctx.Done():
				return
			}
		}
		p.m.queued.Dec()
		err := p.do(ctx, j)
		p.pending.Add(-1)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("ocsp: pre-signing failed, will retry", "serial", j.serial.Hex(), "err", err)
			p.retryMu.Lock()
			p.retry[j.serial] = struct{}{}
			p.retryMu.Unlock()
		}
	}
}

func (p *Presigner) enqueue(ctx context.Context, q chan job, j job) bool {
	j.gen = p.gen.Load()
	p.m.queued.Inc()
	p.pending.Add(1)
	select {
	case q <- j:
		return true
	case <-ctx.Done():
		p.m.queued.Dec()
		p.pending.Add(-1)
		return false
	}
}

// Drain waits, while Run runs, until the first load has queued every live
// certificate and every queued signature and stored write is done: what
// `jpkica ocsp presign` waits for. Signatures that failed are retried by Run
// later, not waited for.
func (p *Presigner) Drain(ctx context.Context) error {
	select {
	case <-p.warm:
	case <-ctx.Done():
		return ctx.Err()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for p.pending.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// do signs one job's responses and caches them; a job queued before a
// resync is dropped.
func (p *Presigner) do(ctx context.Context, j job) error {
	if j.gen != p.gen.Load() {
		return nil
	}
	if j.refresh {
		a := p.auths[j.issuer]
		k := makeKey(a.idx, j.hashIdx, j.serial.Bytes())
		it, ok := p.cache.get(k.bytes())
		if !ok || it.Seq != j.seq || it.ProducedAt != j.at {
			return nil // changed or gone meanwhile
		}
		_, err := p.signAndPut(ctx, j.gen, a, j.hashIdx, j.serial, j.seq, itemRecord(&it, j.serial, a))
		return err
	}
	rec, seq := j.rec, j.seq
	if rec == nil {
		s, r, err := p.src.StatusOf(ctx, j.serial)
		if errors.Is(err, ca.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		rec, seq = &r, s
	}
	a := p.byID[rec.IssuerID]
	if a == nil {
		return nil // an issuer this responder does not serve
	}
	for h := range hashes {
		k := makeKey(a.idx, h, rec.Serial.Bytes())
		cached, ok := p.cache.get(k.bytes())
		switch {
		case !ok && h != 0:
			continue // SHA-1 CertIDs (RFC 5019) are always kept; SHA-256 ones once asked
		case ok && cached.Seq >= seq:
			// Signed for this change or a newer one since the job was
			// queued: on demand, for a request that came first.
			continue
		}
		if _, err := p.signAndPut(ctx, j.gen, a, h, rec.Serial, seq, rec); err != nil {
			if errors.Is(err, errResynced) {
				return nil
			}
			p.withdraw(a, rec, seq)
			return err
		}
	}
	return nil
}

// withdraw fails closed: when a certificate's new status could not be
// signed, the cached responses that still say the old one are taken out,
// so that requests get tryLater (the on-demand signing fails too) instead of
// a valid-looking response with a status that is no longer true, up to a
// day old (RFC 6960 2.3). Responses of an unchanged status (a change that
// only moved the sequence) stay. The change is signed later (retry), which
// puts a response back.
func (p *Presigner) withdraw(a *authority, rec *ca.Record, seq int64) {
	for h := range hashes {
		k := makeKey(a.idx, h, rec.Serial.Bytes())
		cached, ok := p.cache.get(k.bytes())
		if !ok || cached.Seq >= seq || sameStatus(itemRecord(&cached, rec.Serial, a), rec) {
			continue
		}
		if p.cache.removeBefore(k.bytes(), seq) {
			p.withdrawn.Store(string(k.bytes()), struct{}{})
			p.m.withdrawn.Inc()
			p.log.Warn("ocsp: status changed but its response cannot be signed: withdrawn, answering tryLater until it is",
				"serial", rec.Serial.Hex(), "issuer", a.id, "status", rec.Status.String())
		}
	}
}

// sameStatus reports whether two records say the same to a relying party.
func sameStatus(a, b *ca.Record) bool {
	return a.Status == b.Status && (a.Status == ca.Good || a.Reason == b.Reason)
}

// itemRecord rebuilds the status a cached item reflects.
func itemRecord(it *Item, serial ca.Serial, a *authority) *ca.Record {
	r := &ca.Record{Serial: serial, IssuerID: a.id, Status: ca.Good, NotAfter: time.Unix(int64(it.Expires), 0)}
	if it.Status == StatusRevoked {
		r.Status, r.Reason, r.RevokedAt = ca.Revoked, ca.Reason(it.Reason), time.Unix(int64(it.RevokedAt), 0)
		if r.Reason == ca.CertificateHold {
			r.Status = ca.OnHold
		}
	}
	return r
}

// thisUpdate is now, to the second (DER GeneralizedTime carries seconds).
func (p *Presigner) thisUpdate() time.Time { return p.clock().UTC().Truncate(time.Second) }

// singleFor builds the SingleResponse of a stored certificate.
func (p *Presigner) singleFor(a *authority, h int, serialDER []byte, rec *ca.Record, now time.Time) single {
	s := single{
		hash: hashes[h], nameHash: a.nameHash[h], keyHash: a.keyHash[h], serialDER: serialDER,
		status: StatusGood, thisUpdate: now, nextUpdate: p.nextUpdate(a, now),
	}
	switch {
	case rec == nil:
		s.status = StatusUnknown
	case rec.Status == ca.OnHold:
		s.status, s.revokedAt, s.reason = StatusRevoked, rec.RevokedAt, ca.CertificateHold
	case rec.Status == ca.Revoked:
		s.status, s.revokedAt, s.reason = StatusRevoked, rec.RevokedAt, rec.Reason
	}
	return s
}

// nextUpdate is now + Validity, but never past the signer's certificate.
func (p *Presigner) nextUpdate(a *authority, now time.Time) time.Time {
	n := now.Add(p.cfg.Validity)
	if na := a.key().notAfter; na.Before(n) && na.After(now) {
		n = na.Truncate(time.Second)
	}
	return n
}

// signAndPut signs the response of one CertID variant and caches it.
// errResynced: a response signed for a change read before a resync is not
// cached (see resync).
var errResynced = errors.New("the change feed was resynchronised meanwhile")

// signAndPut signs a response for rec's status and caches it, unless the
// generation gen is no longer current (errResynced).
func (p *Presigner) signAndPut(ctx context.Context, gen uint64, a *authority, h int, serial ca.Serial, seq int64, rec *ca.Record) (Item, error) {
	now := p.thisUpdate()
	s := p.singleFor(a, h, serialContent(serial), rec, now)
	buf := signPool.Get().(*[]byte)
	defer signPool.Put(buf)
	start := time.Now()
	body, _, err := a.sign(ctx, p.rand, (*buf)[:0], now, []single{s}, nil)
	p.m.signSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		p.m.signErrors.Inc()
		return Item{}, err
	}
	*buf = body[:0]
	p.m.signed.Inc()
	it := Item{
		Seq: seq, ProducedAt: uint32(now.Unix()), NextUpdate: uint32(s.nextUpdate.Unix()),
		Status: s.status, Reason: uint8(s.reason), Expires: uint32(clampUnix(rec.NotAfter)), Body: body,
	}
	if s.status == StatusRevoked {
		it.RevokedAt = uint32(clampUnix(s.revokedAt))
	}
	k := makeKey(a.idx, h, serial.Bytes())
	p.genMu.RLock()
	if gen != p.gen.Load() {
		p.genMu.RUnlock()
		return Item{}, errResynced
	}
	p.cache.put(k.bytes(), it) // copies the body
	p.genMu.RUnlock()
	p.withdrawn.Delete(string(k.bytes()))
	// Return what the cache holds (this, or a newer response stored
	// meanwhile): the pooled buffer is reused.
	if cached, ok := p.cache.get(k.bytes()); ok {
		if h == 0 && cached.ProducedAt == it.ProducedAt && cached.Seq == it.Seq {
			p.persist(a, serial, &cached)
		}
		return cached, nil
	}
	it.Body = bytes.Clone(body)
	return it, nil
}

// signPool holds the buffers responses are encoded and signed into before
// the cache copies them.
var signPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func clampUnix(t time.Time) int64 {
	u := t.Unix()
	switch {
	case u < 0:
		return 0
	case u > 1<<32-1:
		return 1<<32 - 1
	}
	return u
}

// pageSize is how many rows one StatusFeed query streams before the cursor
// is closed and the rows are queued, so no query stays open for long.
const pageSize = 4096

var errPageFull = errors.New("page full")

// feedPage reads up to pageSize changes after seq.
func (p *Presigner) feedPage(ctx context.Context, after int64, buf []job) ([]job, error) {
	buf = buf[:0]
	err := p.src.StatusFeed(ctx, after, func(seq int64, r ca.Record) error {
		r.DER, r.FactsHash = nil, nil
		buf = append(buf, job{serial: r.Serial, rec: &r, seq: seq})
		if len(buf) == pageSize {
			return errPageFull
		}
		return nil
	})
	if errors.Is(err, errPageFull) {
		err = nil
	}
	return buf, err
}

// load queues every live certificate up to seq `upto` whose cached response
// is missing or older.
func (p *Presigner) load(ctx context.Context, upto int64) {
	var after int64
	var buf []job
	for after < upto {
		var err error
		buf, err = p.feedPage(ctx, after, buf)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Warn("ocsp: loading statuses, will retry", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(p.cfg.PollInterval):
			}
			continue
		}
		if len(buf) == 0 {
			return
		}
		for _, j := range buf {
			after = j.seq
			if j.seq > upto {
				return
			}
			if !p.needs(j) {
				continue
			}
			if !p.enqueue(ctx, p.bulk, j) {
				return
			}
		}
	}
}

// needs reports whether a certificate's change is not yet cached; expired
// certificates are dropped from the cache instead.
func (p *Presigner) needs(j job) bool {
	a := p.byID[j.rec.IssuerID]
	if a == nil {
		return false
	}
	if !j.rec.NotAfter.After(p.clock()) {
		for h := range hashes {
			k := makeKey(a.idx, h, j.serial.Bytes())
			p.cache.remove(k.bytes())
		}
		return false
	}
	k := makeKey(a.idx, 0, j.serial.Bytes())
	it, ok := p.cache.get(k.bytes())
	return !ok || it.Seq < j.seq
}

// follow polls the store for changes after the newest one seen, first
// checking that the store still holds it (followed).
func (p *Presigner) follow(ctx context.Context) {
	t := time.NewTicker(p.cfg.PollInterval)
	defer t.Stop()
	var buf []job
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch ok, err := p.followed(ctx); {
		case err != nil:
			if ctx.Err() == nil {
				p.log.Warn("ocsp: checking the change feed", "err", err)
			}
			continue
		case !ok:
			if err := p.resync(ctx); err != nil {
				continue
			}
		}
		p.requeueFailed(ctx)
		for {
			var err error
			buf, err = p.feedPage(ctx, p.mark.Load().seq, buf)
			if err != nil {
				if ctx.Err() == nil {
					p.log.Warn("ocsp: following changes", "err", err)
				}
				break
			}
			for _, j := range buf {
				if p.needs(j) && !p.enqueue(ctx, p.urgent, j) {
					return
				}
				p.mark.Store(&changeMark{seq: j.seq, serial: j.serial})
			}
			if len(buf) < pageSize {
				break
			}
		}
	}
}

// newest reads the store's newest change into mark, retrying until ctx
// ends, and returns its change_seq.
func (p *Presigner) newest(ctx context.Context) (int64, error) {
	for {
		seq, serial, err := p.src.NewestChange(ctx)
		if err == nil {
			p.mark.Store(&changeMark{seq: seq, serial: serial})
			return seq, nil
		}
		p.log.Warn("ocsp: reading the newest change", "err", err)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(p.cfg.PollInterval):
		}
	}
}

// followed reports whether the store still holds the newest change the
// follower saw: the certificate it changed is there, at that change_seq or
// a later one. Changes commit in change_seq order, so then every change up
// to it is there too. When it is not, the store went back: a failover to a
// standby that had not received the newest transactions, whose
// change_seq then starts again below what the follower saw (and a follower
// asking for changes after its mark would miss the new ones).
func (p *Presigner) followed(ctx context.Context) (bool, error) {
	m := p.mark.Load()
	if m.serial.IsZero() {
		return true, nil
	}
	seq, _, err := p.src.StatusOf(ctx, m.serial)
	switch {
	case errors.Is(err, ca.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return seq >= m.seq, nil
}

// resync starts over from what the store holds now, as a restart would,
// without one: every cached response goes (a status the store no longer
// holds must not be served, and change_seq values of the lost transactions
// are no longer comparable with the new ones), jobs queued before are
// dropped, the stored responses still valid are taken back, and every
// certificate's status is loaded and signed again, in the background.
func (p *Presigner) resync(ctx context.Context) error {
	p.log.Error("ocsp: the store's change feed went back (a failover lost transactions): resynchronising every status",
		"had", p.mark.Load().seq)
	p.m.resyncs.Inc()
	p.genMu.Lock()
	p.gen.Add(1)
	p.cache.clear()
	p.genMu.Unlock()
	upto, err := p.newest(ctx)
	if err != nil {
		return err
	}
	if p.responses != nil {
		if _, err := p.warmFromStore(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("ocsp: reading stored responses after the resync; signing afresh", "err", err)
		}
	}
	// The load runs beside the follower, which goes on from the new mark
	// at once: status changes go before the bulk of the load.
	p.bg.Go(func() { p.load(ctx, upto) })
	return nil
}

func (p *Presigner) requeueFailed(ctx context.Context) {
	p.retryMu.Lock()
	serials := make([]ca.Serial, 0, len(p.retry))
	for sn := range p.retry {
		serials = append(serials, sn)
	}
	clear(p.retry)
	p.retryMu.Unlock()
	for _, sn := range serials {
		if !p.enqueue(ctx, p.bulk, job{serial: sn}) {
			return
		}
	}
}

// refreshDue is when a response should be re-signed: between 1/2 and 3/4 of
// its validity, spread by key so that responses signed together are not
// re-signed together.
func refreshDue(k []byte, it *Item) uint32 {
	v := it.NextUpdate - it.ProducedAt
	var h uint32 = 2166136261
	for _, b := range k {
		h = (h ^ uint32(b)) * 16777619
	}
	return it.ProducedAt + v/2 + uint32(uint64(v/4)*uint64(h)>>32)
}

func (p *Presigner) refreshLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.refresh(ctx)
		}
	}
}

// refresh queues every response due for re-signing, one shard at a time.
func (p *Presigner) refresh(ctx context.Context) {
	now := uint32(clampUnix(p.clock()))
	var due []job
	oldest := uint32(math.MaxUint32)
	defer func() { p.oldest.Store(uint64(now)<<32 | uint64(oldest)) }()
	for sh := range numShards {
		due = due[:0]
		p.cache.scan(sh, func(k []byte, it *Item) {
			oldest = min(oldest, it.ProducedAt)
			if it.Expires <= now {
				due = append(due, job{serial: ca.SerialFromBytes(k[1:]), issuer: k[0] >> 1, hashIdx: int(k[0] & 1), seq: -1})
				return
			}
			if refreshDue(k, it) <= now {
				due = append(due, job{serial: ca.SerialFromBytes(k[1:]), issuer: k[0] >> 1, hashIdx: int(k[0] & 1),
					seq: it.Seq, at: it.ProducedAt, refresh: true})
			}
		})
		for _, j := range due {
			if j.seq == -1 { // the certificate expired
				k := makeKey(j.issuer, j.hashIdx, j.serial.Bytes())
				p.cache.remove(k.bytes())
				continue
			}
			if !p.enqueue(ctx, p.bulk, j) {
				return
			}
		}
	}
}

// Answer is a response ready to write: the DER OCSPResponse is
// Prefix(len(Body)+len(Certs)) || Body || Certs.
type Answer struct {
	Body       []byte // tbsResponseData, signatureAlgorithm, signature
	Certs      []byte // the encoded certs field, or nil
	ProducedAt time.Time
	NextUpdate time.Time
	Status     CertStatus // of the first (usually only) CertID
	// Fresh is true for a response signed for this request only (a nonce
	// or several CertIDs): not to be cached by HTTP caches.
	Fresh bool
}

// Len is the length of the DER OCSPResponse.
func (a *Answer) Len() int {
	n := len(a.Body) + len(a.Certs)
	return len(appendResponsePrefix(make([]byte, 0, 32), n)) + n
}

// AppendDER appends the DER OCSPResponse to dst.
func (a *Answer) AppendDER(dst []byte) []byte {
	dst = appendResponsePrefix(dst, len(a.Body)+len(a.Certs))
	dst = append(dst, a.Body...)
	return append(dst, a.Certs...)
}

// match finds the served issuer a CertID names: key hash and name hash must
// both match (all generations of an issuer share one name).
func (p *Presigner) match(id *CertID) *authority {
	h := hashIndex(id.Hash)
	a := p.byKey[h][string(id.KeyHash)]
	if a == nil || string(a.nameHash[h]) != string(id.NameHash) {
		return nil
	}
	return a
}

// Answer answers a decoded request: ErrUnauthorized when a CertID names an
// issuer not served here, ErrUnavailable when no valid response can be had
// now. Certificates this CA never issued are answered unknown.
func (p *Presigner) Answer(ctx context.Context, req *Request) (Answer, error) {
	if len(req.CertIDs) == 0 {
		return Answer{}, fmt.Errorf("%w: no CertID", ErrMalformed)
	}
	a := p.match(&req.CertIDs[0])
	if a == nil {
		return Answer{}, ErrUnauthorized
	}
	for i := 1; i < len(req.CertIDs); i++ {
		if p.match(&req.CertIDs[i]) != a {
			return Answer{}, fmt.Errorf("%w: CertIDs of different issuers in one request", ErrUnauthorized)
		}
	}
	useNonce := req.Nonce != nil && p.cfg.Nonce == NonceEcho
	if len(req.CertIDs) == 1 {
		id := &req.CertIDs[0]
		serial, ok := id.Serial()
		if !ok {
			return p.fresh(ctx, a, req, useNonce)
		}
		h := hashIndex(id.Hash)
		k := makeKey(a.idx, h, serial.Bytes())
		it, hit := p.cache.get(k.bytes())
		now := uint32(clampUnix(p.clock()))
		valid := hit && it.NextUpdate > now
		switch {
		case valid && !useNonce:
			p.m.hits.Inc()
			return p.answer(a, &it), nil
		case valid: // a nonce: fresh if we can, else the cached one
			if ans, err := p.fresh(ctx, a, req, true); err == nil {
				return ans, nil
			}
			return p.answer(a, &it), nil
		}
		if hit {
			p.m.stale.Inc()
		} else {
			p.m.misses.Inc()
		}
		it, err := p.onDemand(ctx, a, h, serial, k)
		if err != nil {
			if _, ok := p.withdrawn.Load(string(k.bytes())); ok {
				p.m.withdrawnAnswers.Inc()
			}
			return Answer{}, err
		}
		if useNonce {
			if ans, err := p.fresh(ctx, a, req, true); err == nil {
				return ans, nil
			}
		}
		return p.answer(a, &it), nil
	}
	return p.fresh(ctx, a, req, useNonce)
}

// answer is a cached response, with the certificate of the responder that
// signed it.
func (p *Presigner) answer(a *authority, it *Item) Answer {
	k := a.keyOf(it.Body)
	if k == nil { // a key pruned since: its responses have expired
		k = a.key()
	}
	return Answer{Body: it.Body, Certs: k.certs, ProducedAt: time.Unix(int64(it.ProducedAt), 0).UTC(),
		NextUpdate: time.Unix(int64(it.NextUpdate), 0).UTC(), Status: it.Status}
}

// acquire takes an on-demand signing slot without waiting.
func (p *Presigner) acquire() bool {
	select {
	case p.sem <- struct{}{}:
		return true
	default:
		p.m.busy.Inc()
		return false
	}
}

func (p *Presigner) release() { <-p.sem }

// onDemandTimeout bounds one on-demand signing, which outlives the request
// that started it (others may be waiting on it).
const onDemandTimeout = 5 * time.Second

// onDemand signs the response a cache miss needs, once per key at a time:
// the store says what the certificate's status is (unknown when it never
// saw the serial, or saw it under another issuer). The response is cached
// unless it says unknown.
func (p *Presigner) onDemand(ctx context.Context, a *authority, h int, serial ca.Serial, k key) (Item, error) {
	v, err, _ := p.flight.Do(string(k.bytes()), func() (any, error) {
		if !p.acquire() {
			return nil, fmt.Errorf("%w: too many signings in flight", ErrUnavailable)
		}
		defer p.release()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), onDemandTimeout)
		defer cancel()
		gen := p.gen.Load()
		seq, rec, err := p.src.StatusOf(ctx, serial)
		switch {
		case errors.Is(err, ca.ErrNotFound):
			return p.signUnknown(ctx, a, h, serial)
		case err != nil:
			return nil, fmt.Errorf("%w: reading status of %s: %w", ErrUnavailable, serial.Hex(), err)
		case rec.IssuerID != a.id:
			return p.signUnknown(ctx, a, h, serial)
		}
		it, err := p.signAndPut(ctx, gen, a, h, serial, seq, &rec)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return it, nil
	})
	if err != nil {
		return Item{}, err
	}
	return v.(Item), nil
}

func (p *Presigner) signUnknown(ctx context.Context, a *authority, h int, serial ca.Serial) (Item, error) {
	now := p.thisUpdate()
	s := p.singleFor(a, h, serialContent(serial), nil, now)
	body, _, err := a.sign(ctx, p.rand, nil, now, []single{s}, nil)
	if err != nil {
		p.m.signErrors.Inc()
		return Item{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return Item{ProducedAt: uint32(now.Unix()), NextUpdate: uint32(s.nextUpdate.Unix()), Status: StatusUnknown, Body: body}, nil
}

// fresh signs a response for this request only: several CertIDs, a nonce,
// or a serial that cannot be ours. Statuses come from the cache when it has
// a valid response, else from the store.
func (p *Presigner) fresh(ctx context.Context, a *authority, req *Request, withNonce bool) (Answer, error) {
	if !p.acquire() {
		return Answer{}, fmt.Errorf("%w: too many signings in flight", ErrUnavailable)
	}
	defer p.release()
	now := p.thisUpdate()
	singles := make([]single, 0, len(req.CertIDs))
	for i := range req.CertIDs {
		id := &req.CertIDs[i]
		h := hashIndex(id.Hash)
		serial, ok := id.Serial()
		var rec *ca.Record
		if ok {
			k := makeKey(a.idx, h, serial.Bytes())
			if it, hit := p.cache.get(k.bytes()); hit && it.NextUpdate > uint32(now.Unix()) {
				rec = itemRecord(&it, serial, a)
			} else {
				_, r, err := p.src.StatusOf(ctx, serial)
				switch {
				case err == nil && r.IssuerID == a.id:
					rec = &r
				case err != nil && !errors.Is(err, ca.ErrNotFound):
					return Answer{}, fmt.Errorf("%w: reading status of %s: %w", ErrUnavailable, serial.Hex(), err)
				}
			}
		}
		singles = append(singles, p.singleFor(a, h, id.SerialDER, rec, now))
	}
	var nonce []byte
	if withNonce {
		nonce = req.Nonce
	}
	body, k, err := a.sign(ctx, p.rand, nil, now, singles, nonce)
	if err != nil {
		p.m.signErrors.Inc()
		return Answer{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	p.m.fresh.Inc()
	return Answer{Body: body, Certs: k.certs, ProducedAt: now, NextUpdate: singles[0].nextUpdate,
		Status: singles[0].status, Fresh: true}, nil
}

// Digest is the hash a signer of the given issuer is asked to sign with; for
// benchmarks comparing pre-signing with raw signing.
func (p *Presigner) Digest(issuerID string) (crypto.Hash, bool) {
	a := p.byID[issuerID]
	if a == nil {
		return 0, false
	}
	return a.key().digest, true
}

// Lookup returns the cached response of a certificate for CertIDs hashed
// with h (crypto.SHA1 or crypto.SHA256).
func (p *Presigner) Lookup(issuerID string, serial ca.Serial, h crypto.Hash) (Item, bool) {
	a := p.byID[issuerID]
	if a == nil {
		return Item{}, false
	}
	k := makeKey(a.idx, hashIndex(h), serial.Bytes())
	return p.cache.get(k.bytes())
}
