package api

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
)

// Store is what the API reads and writes through: the lifecycle store and a
// paged read of the audit log. store.Store satisfies it.
type Store interface {
	ca.LifecycleStore
	AuditPage(ctx context.Context, after int64, limit int) ([]audit.Entry, error)
}

// The defaults of Config's zero fields (RenewalWindowMonths:
// ca.DefaultRenewalWindowMonths). They are the only place these values are
// written.
const (
	DefaultMaxBodyBytes         = 64 << 10
	DefaultRateLimit            = rate.Limit(20) // calls a second
	DefaultRateBurst            = 40
	DefaultIdentityCacheTTL     = 5 * time.Second
	DefaultTerminalExpiryNotice = 30 * 24 * time.Hour
)

// Config holds the API's tunables. Zero values take the defaults above.
type Config struct {
	// MaxBodyBytes bounds a request body (DefaultMaxBodyBytes); larger
	// ones are 413.
	MaxBodyBytes int64
	// RateLimit and RateBurst bound each client's requests
	// (DefaultRateLimit, DefaultRateBurst). rate.Inf turns the limit off.
	RateLimit rate.Limit
	RateBurst int
	// IdentityCacheTTL is how long a client certificate's check (chain and
	// status in the store) is reused (DefaultIdentityCacheTTL). A terminal
	// revoked elsewhere is refused within this time; one revoked through
	// this API at once.
	IdentityCacheTTL time.Duration
	// RenewalWindowMonths is how long before expiry renewal opens
	// (ca.DefaultRenewalWindowMonths).
	RenewalWindowMonths int
	// TerminalExpiryNotice is how long before a terminal's certificate
	// expires the API starts telling it so (DefaultTerminalExpiryNotice):
	// every answer carries wire.HeaderTerminalExpires, and the call is
	// counted.
	TerminalExpiryNotice time.Duration
}

// Deps are what the API works with.
type Deps struct {
	Authority *ca.Authority
	Store     Store
	// ClientCAs verifies terminal certificates (jpkica's client CA).
	ClientCAs *x509.CertPool
	Clock     func() time.Time
	Rand      io.Reader
	Logger    *slog.Logger
	// Metrics, if set, gets the API's request counters and latencies.
	Metrics prometheus.Registerer
	// Listener, if set, learns of lifecycle status changes (default: the
	// Authority's listener).
	Listener ca.StatusListener
	// Console, if set, is the administrators' console, served under
	// GET /admin/ to the admin role only; other roles get 403 as JSON,
	// like every other call.
	Console http.Handler
}

// API is the /v1 HTTP API (an http.Handler). Serve it over TLS with
// TLSConfig: it identifies callers by their client certificates. It is safe
// for concurrent use.
type API struct {
	cfg       Config
	auth      *ca.Authority
	lifecycle *ca.Lifecycle
	store     Store
	ids       *identities
	logger    *slog.Logger
	mux       *http.ServeMux

	// limiters holds one token bucket per authenticated terminal; only
	// clients that passed identify get one, so the map is bounded by the
	// terminals the client CA enrolled.
	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	clock    func() time.Time
	requests *prometheus.CounterVec
	weakKeys prometheus.Counter
	expiring prometheus.Counter
	latency  *prometheus.HistogramVec
}

// New checks its configuration and dependencies once and builds the API.
func New(cfg Config, deps Deps) (*API, error) {
	if deps.Authority == nil || deps.Store == nil || deps.ClientCAs == nil || deps.Clock == nil || deps.Rand == nil {
		return nil, fmt.Errorf("%w: the API needs an authority, a store, the client CAs, a clock and a random source", ca.ErrInvalid)
	}
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.RateLimit = cmp.Or(cfg.RateLimit, DefaultRateLimit)
	cfg.RateBurst = cmp.Or(cfg.RateBurst, DefaultRateBurst)
	cfg.IdentityCacheTTL = cmp.Or(cfg.IdentityCacheTTL, DefaultIdentityCacheTTL)
	cfg.RenewalWindowMonths = cmp.Or(cfg.RenewalWindowMonths, ca.DefaultRenewalWindowMonths)
	cfg.TerminalExpiryNotice = cmp.Or(cfg.TerminalExpiryNotice, DefaultTerminalExpiryNotice)
	if cfg.MaxBodyBytes < 0 || cfg.RateLimit < 0 || cfg.RateBurst < 0 || cfg.IdentityCacheTTL < 0 || cfg.TerminalExpiryNotice < 0 {
		return nil, fmt.Errorf("%w: negative API limit", ca.ErrInvalid)
	}
	lc, err := ca.NewLifecycle(ca.LifecycleConfig{RenewalWindowMonths: cfg.RenewalWindowMonths}, ca.LifecycleDeps{
		Store: deps.Store, Authority: deps.Authority, Clock: deps.Clock, Rand: deps.Rand, Listener: deps.Listener})
	if err != nil {
		return nil, err
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &API{
		cfg: cfg, auth: deps.Authority, lifecycle: lc, store: deps.Store, logger: logger,
		ids: &identities{roots: deps.ClientCAs, store: deps.Store, clock: deps.Clock, ttl: cfg.IdentityCacheTTL,
			cache: map[[32]byte]cachedIdentity{}},
		limiters: map[string]*rate.Limiter{},
		clock:    deps.Clock,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jpkica_api_requests_total",
			Help: "API requests by call and HTTP status."}, []string{"call", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "jpkica_api_request_seconds",
			Help: "API request latency by call.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"call"}),
		weakKeys: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_api_weak_card_keys_total",
			Help: "Issuances refused because the card's key failed the lint's key check (Fermat's factorisation)."}),
		expiring: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_api_expiring_terminal_calls_total",
			Help: "Calls from terminals whose certificate expires within the notice period."}),
	}
	if deps.Metrics != nil {
		for _, c := range []prometheus.Collector{a.requests, a.latency, a.weakKeys, a.expiring} {
			if err := deps.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("registering API metrics: %w", err)
			}
		}
	}
	a.mux = http.NewServeMux()
	a.route("POST /v1/certificates", "issue", actIssue, a.issue)
	a.route("GET /v1/certificates", "list", actRead, a.list)
	a.route("GET /v1/certificates/{serial}", "read", actRead, a.read)
	a.route("POST /v1/certificates/{serial}/revoke", "revoke", actRevoke, a.revoke)
	a.route("POST /v1/cards/{id}/hold", "hold", actHold, a.hold)
	a.route("POST /v1/residents/{id}/events", "event", actEvent, a.event)
	a.route("POST /v1/proxy-applications", "proxy", actProxy, a.proxy)
	a.route("GET /v1/renewal-notices", "notices", actNotices, a.notices)
	a.route("GET /v1/audit", "audit", actAudit, a.auditLog)
	if deps.Console != nil {
		a.route("GET /admin/", "console", actConsole, func(w http.ResponseWriter, r *http.Request, _ Identity) error {
			deps.Console.ServeHTTP(w, r)
			return nil
		})
		a.route("GET /admin", "console", actConsole, func(w http.ResponseWriter, r *http.Request, _ Identity) error {
			http.Redirect(w, r, "/admin/", http.StatusMovedPermanently)
			return nil
		})
	}
	a.mux.HandleFunc("/", a.notFound)
	return a, nil
}

// ServeHTTP answers one API call.
// A path that is not in its clean form (dot segments, doubled slashes; a
// trailing slash is allowed, for /admin/) is no call's: 404 as JSON, where http.ServeMux would redirect.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p == "" || path.Clean(p) != strings.TrimSuffix(p, "/") && path.Clean(p) != p {
		a.writeError(w, r, fail(http.StatusNotFound, wire.CodeRouteNotFound, "no such call: "+r.Method+" "+r.URL.Path))
		return
	}
	a.mux.ServeHTTP(w, r)
}

// notFound answers paths no call has (404) and known paths with another
// method (405), as JSON.
func (a *API) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pat := a.mux.Handler(r2); pat != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		a.writeError(w, r, fail(http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path))
		return
	}
	a.writeError(w, r, fail(http.StatusNotFound, wire.CodeRouteNotFound, "no such call: "+r.Method+" "+r.URL.Path))
}

type handler func(w http.ResponseWriter, r *http.Request, id Identity) error

// statusWriter remembers the status for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// route mounts a call behind identification, the role table and the rate
// limit. Wrong methods on a known path, and unknown paths, fall through to
// notFound, which answers 405 or 404 as JSON.
func (a *API) route(pattern, call string, act action, h handler) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			a.requests.WithLabelValues(call, strconv.Itoa(sw.status)).Inc()
			a.latency.WithLabelValues(call).Observe(time.Since(start).Seconds())
		}()
		r.Body = http.MaxBytesReader(sw, r.Body, a.cfg.MaxBodyBytes)
		id, aerr := a.ids.identify(r)
		if aerr != nil {
			a.writeError(sw, r, aerr)
			return
		}
		if id.NotAfter.Sub(a.clock()) < a.cfg.TerminalExpiryNotice {
			sw.Header().Set(wire.HeaderTerminalExpires, id.NotAfter.UTC().Format(time.RFC3339))
			a.expiring.Inc()
		}
		if !permissions[act][id.Role] {
			a.writeError(sw, r, fail(http.StatusForbidden, wire.CodeRoleForbidden,
				fmt.Sprintf("role %s may not make this call (%s %s)", id.Role, r.Method, r.URL.Path)))
			return
		}
		if wait, ok := a.allow(id.ClientID()); !ok {
			sw.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			a.writeError(sw, r, fail(http.StatusTooManyRequests, wire.CodeRateLimited, "too many requests from this client"))
			return
		}
		if err := h(sw, r, id); err != nil {
			a.writeError(sw, r, err)
		}
	})
}

// allow takes a token from the client's bucket, or says how long to wait.
func (a *API) allow(client string) (time.Duration, bool) {
	if a.cfg.RateLimit == rate.Inf {
		return 0, true
	}
	a.limMu.Lock()
	lim, ok := a.limiters[client]
	if !ok {
		lim = rate.NewLimiter(a.cfg.RateLimit, a.cfg.RateBurst)
		a.limiters[client] = lim
	}
	a.limMu.Unlock()
	res := lim.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return max(d, time.Second), false
	}
	return 0, true
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := classify(err, wire.CodeConflict)
	switch {
	case ae.status >= 500:
		// The cause, not the client's message: the driver's or the
		// token's words are what an operator needs.
		cause := err
		if ae.cause != nil {
			cause = ae.cause
		}
		a.logger.ErrorContext(r.Context(), "api call failed", "method", r.Method, "path", r.URL.Path, "status", ae.status, "err", cause)
	case errors.Is(err, ca.ErrWeakKey):
		// A card whose chip makes factorable keys: worth an operator's eye.
		a.weakKeys.Inc()
		a.logger.WarnContext(r.Context(), "weak card key refused", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if ae.status == http.StatusServiceUnavailable && ae.code == wire.CodeUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(err)))
	}
	writeJSON(w, ae.status, wire.ErrorBody{Error: wire.Error{Code: ae.code, Message: ae.msg}})
}

// retryAfterSeconds is a 503's Retry-After: the time until the key store
// next tries to come back when it says (hsm.RetryAfter), in whole seconds
// from 1 to 60; else 1.
func retryAfterSeconds(err error) int {
	d, ok := hsm.RetryAfter(err)
	if !ok {
		return 1
	}
	return min(max(int((d+time.Second-1)/time.Second), 1), 60)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// ownMunicipality refuses a counter acting outside its municipality.
func ownMunicipality(id Identity, municipality string) error {
	if id.Role == RoleCounter && id.Municipality != municipality {
		return fail(http.StatusForbidden, wire.CodeWrongMunicipality,
			fmt.Sprintf("counter of %s may not act for municipality %s", id.Municipality, municipality))
	}
	return nil
}

// issue: POST /v1/certificates.
func (a *API) issue(w http.ResponseWriter, r *http.Request, id Identity) error {
	key := r.Header.Get(wire.HeaderIdempotencyKey)
	if !idemKeyPattern.MatchString(key) {
		return fail(http.StatusBadRequest, wire.CodeIdempotencyKeyRequired, "an Idempotency-Key header of 1 to 128 visible ASCII characters is required")
	}
	var body wire.IssueRequest
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	typ, err := parseType(body.Type)
	if err != nil {
		return err
	}
	res, cardID, cardExpires, err := applicant(id, body.Resident, body.Card)
	if err != nil {
		return err
	}
	csr, err := parseCSR(body.CSR)
	if err != nil {
		return err
	}
	var proxy *ca.ProxyAnswer
	if body.Proxy != nil {
		if !appIDPattern.MatchString(body.Proxy.ApplicationID) || !answerPattern.MatchString(body.Proxy.AnswerCode) {
			return fail(http.StatusBadRequest, wire.CodeInvalidRequest, "proxy: malformed application ID or answer code")
		}
		proxy = &ca.ProxyAnswer{ApplicationID: body.Proxy.ApplicationID, AnswerCode: body.Proxy.AnswerCode}
	}
	// The canonical body: the decoded request encoded again, so whitespace
	// and key order do not make a retry a different request.
	canon, _ := json.Marshal(body)
	hash := sha256.Sum256(canon)
	caller := ""
	if id.Role == RoleCounter {
		caller = id.Municipality
	}
	got, err := a.lifecycle.Issue(r.Context(), ca.IssueRequest{
		Type: typ, PublicKey: csr.PublicKey, CardID: cardID, CardExpires: cardExpires,
		ResidentID: res.id, Municipality: res.municipality, CallerMunicipality: caller,
		Facts: res.facts, AdultGuardianship: res.guardianship,
		Actor: id.Actor(), ClientID: id.ClientID(), IdempotencyKey: key, RequestHash: hash[:],
	}, proxy)
	if err != nil {
		if errors.Is(err, ca.ErrProxyAnswerUsed) {
			return classify(err, wire.CodeProxyAnswerUsed)
		}
		return classify(err, wire.CodeIdempotencyKeyReused)
	}
	out := wire.Issued{
		Serial: got.Record.Serial.Hex(), Type: got.Record.Type.String(),
		NotBefore: timeString(got.Record.NotBefore), NotAfter: timeString(got.Record.NotAfter),
		Certificate: pemCert(got.Record.DER), Chain: make([]string, 0, len(got.Chain)),
	}
	for _, c := range got.Chain {
		out.Chain = append(out.Chain, pemCert(c))
	}
	for _, s := range got.Superseded {
		out.Superseded = append(out.Superseded, s.Hex())
	}
	if got.Replayed {
		w.Header().Set(wire.HeaderIdempotentReplayed, "true")
	}
	return writeJSON(w, http.StatusCreated, out)
}

func parseSerial(s string) (ca.Serial, error) {
	sn, err := ca.ParseSerial(s)
	if err != nil {
		return ca.Serial{}, fail(http.StatusBadRequest, wire.CodeInvalidSerial, fmt.Sprintf("serial %q: want hexadecimal", s))
	}
	return sn, nil
}

// readable fetches a record the caller may see: a counter sees the card
// certificates of its own municipality only.
func (a *API) readable(ctx context.Context, id Identity, sn ca.Serial) (ca.Record, error) {
	rec, err := a.store.Certificate(ctx, sn)
	if err != nil {
		return ca.Record{}, err
	}
	if id.Role == RoleCounter && rec.Type == ca.Terminal {
		return ca.Record{}, fail(http.StatusForbidden, wire.CodeRoleForbidden, "a counter may not read or revoke terminal certificates")
	}
	if err := ownMunicipality(id, rec.Municipality); err != nil {
		return ca.Record{}, err
	}
	return rec, nil
}

// read: GET /v1/certificates/{serial}.
func (a *API) read(w http.ResponseWriter, r *http.Request, id Identity) error {
	sn, err := parseSerial(r.PathValue("serial"))
	if err != nil {
		return err
	}
	rec, err := a.readable(r.Context(), id, sn)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, CertificateOf(rec))
}

// list: GET /v1/certificates?card=ID or ?resident=ID.
func (a *API) list(w http.ResponseWriter, r *http.Request, id Identity) error {
	q := r.URL.Query()
	card, res := q.Get("card"), q.Get("resident")
	if (card == "") == (res == "") || len(q) != 1 {
		return fail(http.StatusBadRequest, wire.CodeInvalidQuery, "give exactly one of card= and resident=")
	}
	var (
		recs []ca.Record
		err  error
	)
	if card != "" {
		if err := checkID("card", card); err != nil {
			return err
		}
		recs, err = a.store.CertificatesByCard(r.Context(), card)
	} else {
		if err := checkID("resident", res); err != nil {
			return err
		}
		recs, err = a.store.CertificatesByResident(r.Context(), res)
	}
	if err != nil {
		return err
	}
	// A counter sees its own municipality's card certificates, and cannot
	// tell an ID that another municipality holds from one nobody holds.
	if id.Role == RoleCounter {
		recs = slices.DeleteFunc(recs, func(rec ca.Record) bool {
			return rec.Municipality != id.Municipality || rec.Type == ca.Terminal
		})
	}
	return writeJSON(w, http.StatusOK, certificatesOf(recs))
}

// revoke: POST /v1/certificates/{serial}/revoke.
func (a *API) revoke(w http.ResponseWriter, r *http.Request, id Identity) error {
	sn, err := parseSerial(r.PathValue("serial"))
	if err != nil {
		return err
	}
	var body wire.RevokeRequest
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	reason, err := ca.ParseReason(body.Reason)
	if err != nil || reason == ca.CertificateHold || reason == ca.RemoveFromCRL {
		return fail(http.StatusBadRequest, wire.CodeInvalidReason,
			fmt.Sprintf("reason %q: want an RFC 5280 revocation reason (a hold is POST /v1/cards/{id}/hold)", body.Reason))
	}
	if id.Role == RoleCounter && !counterReasons[reason] {
		return fail(http.StatusForbidden, wire.CodeReasonForbidden, "only admin may revoke with reason "+reason.String())
	}
	if _, err := a.readable(r.Context(), id, sn); err != nil {
		return err
	}
	rec, err := a.lifecycle.Revoke(r.Context(), ca.RevokeRequest{Serial: sn, Reason: reason, Actor: id.Actor()})
	if err != nil {
		return classify(err, wire.CodeAlreadyRevoked)
	}
	a.ids.forget(sn)
	return writeJSON(w, http.StatusOK, CertificateOf(rec))
}

// hold: POST /v1/cards/{id}/hold.
func (a *API) hold(w http.ResponseWriter, r *http.Request, id Identity) error {
	card := r.PathValue("id")
	if err := checkID("card", card); err != nil {
		return err
	}
	if r.ContentLength != 0 {
		var empty struct{}
		if err := decodeJSON(r, &empty); err != nil {
			return err
		}
	}
	recs, err := a.lifecycle.HoldCard(r.Context(), ca.HoldRequest{CardID: card, Actor: id.Actor()})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, certificatesOf(recs))
}

// event: POST /v1/residents/{id}/events.
func (a *API) event(w http.ResponseWriter, r *http.Request, id Identity) error {
	res := r.PathValue("id")
	if err := checkID("resident", res); err != nil {
		return err
	}
	var body wire.EventRequest
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	kind, err := ca.ParseEventKind(body.Kind)
	if err != nil {
		return fail(http.StatusBadRequest, wire.CodeInvalidEventKind, err.Error())
	}
	eff, err := parseDate("effective", body.Effective)
	if err != nil {
		return err
	}
	recs, err := a.lifecycle.ResidentEvent(r.Context(), ca.ResidentEventRequest{ResidentID: res, Kind: kind,
		Effective: eff, Actor: id.Actor()})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, certificatesOf(recs))
}

// applicant validates the resident and card of an application, and that the
// caller may act for that resident.
func applicant(id Identity, rs wire.Resident, c wire.Card) (resident, string, ca.Date, error) {
	res, err := validateResident(rs)
	if err != nil {
		return resident{}, "", ca.Date{}, err
	}
	if err := ownMunicipality(id, res.municipality); err != nil {
		return resident{}, "", ca.Date{}, err
	}
	cardID, expires, err := validateCard(c)
	if err != nil {
		return resident{}, "", ca.Date{}, err
	}
	return res, cardID, expires, nil
}

// proxy: POST /v1/proxy-applications.
func (a *API) proxy(w http.ResponseWriter, r *http.Request, id Identity) error {
	var body wire.ProxyApplicationRequest
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	res, cardID, _, err := applicant(id, body.Resident, body.Card)
	if err != nil {
		return err
	}
	if len(body.Types) == 0 || len(body.Types) > 2 {
		return fail(http.StatusBadRequest, wire.CodeInvalidType, "types: want signature, authentication or both")
	}
	types := make([]ca.CertType, 0, len(body.Types))
	now := a.ids.clock()
	for _, s := range body.Types {
		t, err := parseType(s)
		if err != nil {
			return err
		}
		if err := ca.CheckEligibility(ca.EligibilityRequest{Type: t, BirthDate: res.facts.BirthDate, IssuedAt: now,
			AdultGuardianship: res.guardianship}); err != nil {
			return err
		}
		types = append(types, t)
	}
	app, code, err := a.lifecycle.OpenProxyApplication(r.Context(), ca.ProxyRequest{ResidentID: res.id,
		Municipality: res.municipality, CardID: cardID, Types: types, Actor: id.Actor()})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, wire.ProxyApplicationResponse{ApplicationID: app.ID, InquiryCode: code,
		NotBefore: timeString(app.NotBefore)})
}

// notices: GET /v1/renewal-notices?municipality=CODE&on=DATE.
func (a *API) notices(w http.ResponseWriter, r *http.Request, id Identity) error {
	q := r.URL.Query()
	m := q.Get("municipality")
	if !ca.ValidMunicipalityCode(m) {
		return fail(http.StatusBadRequest, wire.CodeInvalidMunicipality, fmt.Sprintf("municipality %q is not a local government code", m))
	}
	if err := ownMunicipality(id, m); err != nil {
		return err
	}
	on, err := parseDate("on", q.Get("on"))
	if err != nil {
		return err
	}
	ns, err := a.lifecycle.RenewalNotices(r.Context(), m, on)
	if err != nil {
		return err
	}
	out := RenewalNoticesOf(ns)
	if wantsCSV(r.Header.Get("Accept")) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return wire.WriteRenewalCSV(w, out)
	}
	return writeJSON(w, http.StatusOK, out)
}

// RenewalNoticesOf converts the lifecycle's notices for the wire (the
// API and `jpkica renewals` write the same).
func RenewalNoticesOf(ns []ca.RenewalNotice) wire.RenewalNotices {
	out := wire.RenewalNotices{Notices: make([]wire.RenewalNotice, 0, len(ns))}
	for _, n := range ns {
		out.Notices = append(out.Notices, wire.RenewalNotice{
			Serial: n.Record.Serial.Hex(), Type: n.Record.Type.String(), ResidentID: n.Record.ResidentID,
			CardID: n.Record.CardID, Municipality: n.Record.Municipality, NotAfter: timeString(n.Record.NotAfter),
			WindowOpens: n.WindowOpens.String(),
		})
	}
	return out
}

func wantsCSV(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/csv") {
			return true
		}
	}
	return false
}

// auditLog: GET /v1/audit?after=SEQ&limit=N (admin).
func (a *API) auditLog(w http.ResponseWriter, r *http.Request, _ Identity) error {
	q := r.URL.Query()
	after, limit := int64(0), 100
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return fail(http.StatusBadRequest, wire.CodeInvalidQuery, "after: want an entry ID")
		}
		after = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return fail(http.StatusBadRequest, wire.CodeInvalidQuery, "limit: want 1 to 1000")
		}
		limit = n
	}
	es, err := a.store.AuditPage(r.Context(), after, limit)
	if err != nil {
		return err
	}
	out := wire.AuditPage{Entries: make([]wire.AuditEntry, 0, len(es)), Next: after}
	for _, e := range es {
		out.Entries = append(out.Entries, wire.AuditEntry{Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339Nano), Actor: e.Actor,
			Action: string(e.Action), Subject: e.Subject, Detail: e.Detail, ID: e.ID, Chain: e.Chain, Prev: hex.EncodeToString(e.Prev), Hash: hex.EncodeToString(e.Hash)})
		out.Next = e.ID
	}
	return writeJSON(w, http.StatusOK, out)
}
