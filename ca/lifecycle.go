package ca

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jpkica/jpkica/audit"
)

// EventKind is a resident register event (DOMAIN.md, "Lifecycle events").
type EventKind int

// The register events the lifecycle rules know.
const (
	// FactsChanged: any of the 4 facts changed (moving house, even within
	// the city; marriage; a name change).
	FactsChanged EventKind = iota + 1
	// Deceased: the resident died.
	Deceased
	// Removed: the resident was removed from the register.
	Removed
	// Registered: the resident is in the register again (a returning
	// resident, or a removal or death recorded in error). It revokes
	// nothing and lets issuance for the resident resume.
	Registered
)

var eventNames = map[EventKind]string{FactsChanged: "facts_changed", Deceased: "deceased", Removed: "removed",
	Registered: "registered"}

// ErrResidentGone: the register reported the resident deceased or removed,
// and no new certificate is issued for them until a Registered event.
var ErrResidentGone = fmt.Errorf("%w: the register reported the resident deceased or removed", ErrNotEligible)

func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// MarkAction is the audit action of an event that marks the resident in
// the register (deceased, removed) or lifts the mark (registered); empty
// for facts_changed, which only revokes.
func (k EventKind) MarkAction() audit.Action {
	switch k {
	case Deceased:
		return audit.ActionResidentDeceased
	case Removed:
		return audit.ActionResidentRemoved
	case Registered:
		return audit.ActionResidentRegistered
	}
	return ""
}

// ParseEventKind reads "facts_changed", "deceased", "removed" or
// "registered".
func ParseEventKind(s string) (EventKind, error) {
	for k, n := range eventNames {
		if n == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: event kind %q: want facts_changed, deceased, removed or registered", ErrInvalid, s)
}

// EventRule is DOMAIN.md's table for a register event: which certificate
// types are revoked and with which CRLReason. Held certificates of those
// types are revoked too.
func EventRule(k EventKind) (types []CertType, reason Reason, err error) {
	switch k {
	case FactsChanged:
		// The signature certificate carries the 4 facts; the
		// user-authentication certificate survives moves and name changes.
		return []CertType{Signature}, AffiliationChanged, nil
	case Deceased, Removed:
		return []CertType{Signature, Authentication}, CessationOfOperation, nil
	case Registered:
		return nil, Unspecified, nil
	}
	return nil, 0, fmt.Errorf("%w: event kind %v", ErrInvalid, k)
}

// ProxyApplication is an application made at the counter for a resident who
// will send a proxy (代理人申請). The inquiry (照会書) is mailed to the
// resident's registered address; the proxy returns with the answer (回答書)
// on a later day. The answer code is the inquiry code the resident copies
// onto the answer sheet; only its SHA-256 is stored.
type ProxyApplication struct {
	ID             string
	ResidentID     string
	Municipality   string
	CardID         string
	Types          []CertType
	AnswerCodeHash []byte
	// NotBefore is 00:00 JST of the day after the application: never the
	// same day.
	NotBefore time.Time
	CreatedAt time.Time
	CreatedBy string
}

// ErrProxyAnswerUsed is the ErrConflict of a proxy answer that was already
// used for that certificate type.
var ErrProxyAnswerUsed = fmt.Errorf("%w: proxy answer already used", ErrConflict)

// ProxyUse records that one certificate type of a proxy application was
// (or is being) issued. A retry by the same client with the same
// idempotency key finds its own reservation.
type ProxyUse struct {
	ApplicationID  string
	Type           CertType
	At             time.Time
	ClientID       string
	IdempotencyKey string
	Audit          audit.Entry
}

// LifecycleStore is what the lifecycle rules need of the system of record,
// besides Store. store.Store satisfies it.
type LifecycleStore interface {
	Store
	// InsertProxyApplication stores a new application with its audit entry.
	InsertProxyApplication(ctx context.Context, app ProxyApplication, e audit.Entry) error
	// ProxyApplication finds one: ErrNotFound if none.
	ProxyApplication(ctx context.Context, id string) (ProxyApplication, error)
	// ReserveProxyUse marks a type of an application as used. It reports
	// created=false, nil error when the same client and idempotency key
	// already hold the reservation (a retry), and ErrConflict when anybody
	// else does.
	ReserveProxyUse(ctx context.Context, u ProxyUse) (created bool, err error)
	// ReleaseProxyUse undoes a reservation whose issuance failed.
	ReleaseProxyUse(ctx context.Context, u ProxyUse) error
	// ApplyResidentEvent applies a register event in one transaction: the
	// revocations it calls for, and the resident's mark. It returns the
	// serials it changed.
	ApplyResidentEvent(ctx context.Context, ch ResidentChange) ([]Serial, error)
	// GoodCertificatesExpiring lists a municipality's good card
	// certificates with from < notAfter <= to, by notAfter.
	GoodCertificatesExpiring(ctx context.Context, municipality string, from, to time.Time) ([]Record, error)
}

// LifecycleConfig holds the tunables of the lifecycle rules.
type LifecycleConfig struct {
	// RenewalWindowMonths is how long before expiry renewal opens, 1 to 12
	// months; required (DefaultRenewalWindowMonths is JPKI's).
	RenewalWindowMonths int
}

// LifecycleDeps are what the lifecycle rules work with.
type LifecycleDeps struct {
	Store LifecycleStore
	// Authority issues certificates; without it Issue is refused (the
	// administrative commands only change status).
	Authority *Authority
	Clock     func() time.Time
	Rand      io.Reader
	// Listener learns of committed status changes; when nil, the
	// Authority's listener is used.
	Listener StatusListener
}

// Lifecycle applies DOMAIN.md's lifecycle rules: register events, loss
// holds, revocations, proxy applications, counter issuance and renewal
// notices. Every status change is committed with its audit entries in one
// transaction (by the store) and then told to the StatusListener. It is safe
// for concurrent use.
type Lifecycle struct {
	store    LifecycleStore
	auth     *Authority
	clock    func() time.Time
	rand     io.Reader
	listener StatusListener
	window   int
}

// NewLifecycle checks its configuration and dependencies once.
func NewLifecycle(cfg LifecycleConfig, deps LifecycleDeps) (*Lifecycle, error) {
	if deps.Store == nil || deps.Clock == nil || deps.Rand == nil {
		return nil, fmt.Errorf("%w: lifecycle needs a store, a clock and a random source", ErrInvalid)
	}
	if cfg.RenewalWindowMonths < 1 || cfg.RenewalWindowMonths > 12 {
		return nil, fmt.Errorf("%w: renewal window of %d months", ErrInvalid, cfg.RenewalWindowMonths)
	}
	l := &Lifecycle{store: deps.Store, auth: deps.Authority, clock: deps.Clock, rand: deps.Rand,
		listener: deps.Listener, window: cfg.RenewalWindowMonths}
	if l.listener == nil && deps.Authority != nil {
		l.listener = deps.Authority.listener
	}
	return l, nil
}

func (l *Lifecycle) now() time.Time { return l.clock().UTC().Truncate(time.Second) }

func (l *Lifecycle) notify(ctx context.Context, serials []Serial) {
	if l.listener != nil && len(serials) > 0 {
		l.listener.StatusChanged(ctx, serials...)
	}
}

// change applies a status change, tells the listener, and reads back the
// changed records.
func (l *Lifecycle) change(ctx context.Context, ch StatusChange) ([]Record, error) {
	if len(ch.Serials) == 0 {
		return []Record{}, nil
	}
	changed, err := l.store.ChangeStatus(ctx, ch)
	if err != nil {
		return nil, err
	}
	return l.changed(ctx, changed)
}

// changed tells the listener of committed changes and reads the records
// back.
func (l *Lifecycle) changed(ctx context.Context, changed []Serial) ([]Record, error) {
	l.notify(ctx, changed)
	out := make([]Record, 0, len(changed))
	for _, sn := range changed {
		r, err := l.store.Certificate(ctx, sn)
		if err != nil {
			return nil, fmt.Errorf("reading back %s: %w", sn, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// ResidentEventRequest is a register event for one resident.
type ResidentEventRequest struct {
	ResidentID string
	Kind       EventKind
	// Effective is the day the change took effect in the register; it may
	// not be after today (JST). The certificates are revoked now.
	Effective Date
	Actor     string
}

// ResidentChange is a register event as the store applies it, in one
// transaction: the resident's good or held certificates of Types are
// revoked with Reason at At (one audit entry each, from the Audit
// template); and the resident is marked gone from Effective (Deceased,
// Removed), or the mark is lifted (Registered), with an audit entry of its
// own. A FactsChanged event leaves the mark as it is.
type ResidentChange struct {
	ResidentID string
	Event      EventKind
	Effective  Date
	Types      []CertType
	Reason     Reason
	At         time.Time
	Audit      audit.Entry
}

// ResidentEvent applies a register event: EventRule says which of the
// resident's good or held certificates are revoked and why. A deceased or
// removed resident gets no new certificate (ErrResidentGone) until a
// registered event; the event is recorded even when there is nothing to
// revoke. It returns the records it changed.
func (l *Lifecycle) ResidentEvent(ctx context.Context, req ResidentEventRequest) ([]Record, error) {
	types, reason, err := EventRule(req.Kind)
	if err != nil {
		return nil, err
	}
	if req.ResidentID == "" || req.Actor == "" {
		return nil, fmt.Errorf("%w: resident event needs a resident and an actor", ErrInvalid)
	}
	if !req.Effective.Valid() {
		return nil, fmt.Errorf("%w: effective date %v", ErrInvalid, req.Effective)
	}
	now := l.now()
	if req.Effective.After(DateOf(now)) {
		return nil, fmt.Errorf("%w: effective date %v is after today (%v)", ErrNotEligible, req.Effective, DateOf(now))
	}
	detail, _ := json.Marshal(map[string]string{"status": Revoked.String(), "reason": reason.String(),
		"event": req.Kind.String(), "effective": req.Effective.String(), "resident": req.ResidentID})
	changed, err := l.store.ApplyResidentEvent(ctx, ResidentChange{ResidentID: req.ResidentID, Event: req.Kind,
		Effective: req.Effective, Types: types, Reason: reason, At: now,
		Audit: audit.Entry{Time: now, Actor: req.Actor, Action: audit.ActionCertificateRevoke, Detail: detail}})
	if err != nil {
		return nil, err
	}
	return l.changed(ctx, changed)
}

// HoldRequest puts a lost card's certificates on hold.
type HoldRequest struct {
	CardID string
	Actor  string
}

// HoldCard puts both certificates of a card on hold (certificateHold). A
// card hold is never released: the counter revokes the held certificates
// (issuing onto the card supersedes them) and issues new ones. Holding a
// card again changes nothing and returns no records; an unknown card is
// ErrNotFound.
func (l *Lifecycle) HoldCard(ctx context.Context, req HoldRequest) ([]Record, error) {
	if req.CardID == "" || req.Actor == "" {
		return nil, fmt.Errorf("%w: hold needs a card and an actor", ErrInvalid)
	}
	recs, err := l.store.CertificatesByCard(ctx, req.CardID)
	if err != nil {
		return nil, fmt.Errorf("reading card %s: %w", req.CardID, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("card %s: %w", req.CardID, ErrNotFound)
	}
	var serials []Serial
	for _, r := range recs {
		if (r.Type == Signature || r.Type == Authentication) && r.Status == Good {
			serials = append(serials, r.Serial)
		}
	}
	now := l.now()
	detail, _ := json.Marshal(map[string]string{"status": OnHold.String(), "reason": CertificateHold.String(), "card": req.CardID})
	return l.change(ctx, StatusChange{Serials: serials, Status: OnHold, Reason: CertificateHold, At: now,
		Audit: audit.Entry{Time: now, Actor: req.Actor, Action: audit.ActionCertificateHold, Detail: detail}})
}

// RevokeRequest revokes one certificate.
type RevokeRequest struct {
	Serial Serial
	Reason Reason
	Actor  string
}

// Revoke revokes a good or held certificate (a card certificate or a
// terminal's) with reason. certificateHold is HoldCard's; removeFromCRL is
// not a revocation (ErrInvalid). An unknown serial is ErrNotFound, one that
// is already revoked ErrConflict.
func (l *Lifecycle) Revoke(ctx context.Context, req RevokeRequest) (Record, error) {
	if _, ok := reasonNames[req.Reason]; !ok || req.Reason == CertificateHold || req.Reason == RemoveFromCRL {
		return Record{}, fmt.Errorf("%w: revocation reason %v", ErrInvalid, req.Reason)
	}
	if req.Serial.IsZero() || req.Actor == "" {
		return Record{}, fmt.Errorf("%w: revocation needs a serial and an actor", ErrInvalid)
	}
	now := l.now()
	detail, _ := json.Marshal(map[string]string{"status": Revoked.String(), "reason": req.Reason.String()})
	got, err := l.change(ctx, StatusChange{Serials: []Serial{req.Serial}, Status: Revoked, Reason: req.Reason, At: now,
		Audit: audit.Entry{Time: now, Actor: req.Actor, Action: audit.ActionCertificateRevoke, Detail: detail}})
	if err != nil {
		return Record{}, fmt.Errorf("revoking %s: %w", req.Serial, err)
	}
	if len(got) == 0 {
		return Record{}, fmt.Errorf("revoking %s: %w: already revoked", req.Serial, ErrConflict)
	}
	return got[0], nil
}

// ProxyRequest opens a proxy application.
type ProxyRequest struct {
	ResidentID   string
	Municipality string
	CardID       string
	Types        []CertType
	Actor        string
}

// OpenProxyApplication records a proxy application. It returns the
// application and the inquiry code to print on the mailed inquiry; the code
// is not kept, only its hash. The answer is accepted from 00:00 JST of the
// next day.
func (l *Lifecycle) OpenProxyApplication(ctx context.Context, req ProxyRequest) (ProxyApplication, string, error) {
	if req.ResidentID == "" || req.CardID == "" || req.Actor == "" {
		return ProxyApplication{}, "", fmt.Errorf("%w: proxy application needs a resident, a card and an actor", ErrInvalid)
	}
	if !ValidMunicipalityCode(req.Municipality) {
		return ProxyApplication{}, "", fmt.Errorf("%w: municipality %q", ErrInvalid, req.Municipality)
	}
	if len(req.Types) == 0 || len(req.Types) > 2 {
		return ProxyApplication{}, "", fmt.Errorf("%w: proxy application for %d certificate types", ErrInvalid, len(req.Types))
	}
	types := slices.Clone(req.Types)
	slices.Sort(types)
	types = slices.Compact(types)
	for _, t := range types {
		if t != Signature && t != Authentication {
			return ProxyApplication{}, "", fmt.Errorf("%w: proxy application for %v", ErrInvalid, t)
		}
	}
	idBytes := make([]byte, 16)
	if _, err := io.ReadFull(l.rand, idBytes); err != nil {
		return ProxyApplication{}, "", fmt.Errorf("drawing application ID: %w", err)
	}
	code, err := NewSubjectID(l.rand)
	if err != nil {
		return ProxyApplication{}, "", err
	}
	now := l.now()
	app := ProxyApplication{
		ID: hex.EncodeToString(idBytes), ResidentID: req.ResidentID, Municipality: req.Municipality,
		CardID: req.CardID, Types: types, AnswerCodeHash: hashCode(code),
		NotBefore: ProxyNotBefore(now), CreatedAt: now, CreatedBy: req.Actor,
	}
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = t.String()
	}
	detail, _ := json.Marshal(map[string]any{"resident": req.ResidentID, "card": req.CardID,
		"municipality": req.Municipality, "types": names, "not_before": app.NotBefore.Format(time.RFC3339)})
	if err := l.store.InsertProxyApplication(ctx, app, audit.Entry{Time: now, Actor: req.Actor,
		Action: audit.ActionProxyOpen, Subject: app.ID, Detail: detail}); err != nil {
		return ProxyApplication{}, "", fmt.Errorf("storing proxy application: %w", err)
	}
	return app, code, nil
}

// ProxyNotBefore is when the answer to a proxy application made at t may be
// used: 00:00 JST of the next day (never the same day).
func ProxyNotBefore(t time.Time) time.Time {
	d := DateOf(t)
	return time.Date(d.Year, d.Month, d.Day+1, 0, 0, 0, 0, jst).UTC()
}

func hashCode(code string) []byte {
	h := sha256.Sum256([]byte(code))
	return h[:]
}

// ProxyAnswer is what a proxy brings back: the application and the answer
// code from the answer sheet.
type ProxyAnswer struct {
	ApplicationID string
	AnswerCode    string
}

// Issue is issuance at the counter: Authority.Issue, checked against a proxy
// application when proxy is not nil. The issuance supersedes the card's
// earlier certificate of the type, held ones included, and the resident's
// certificates of the type still on hold on other (lost) cards, in its own
// transaction (Issuance.Supersede): a card hold is never released.
func (l *Lifecycle) Issue(ctx context.Context, req IssueRequest, proxy *ProxyAnswer) (Issued, error) {
	if l.auth == nil {
		return Issued{}, fmt.Errorf("%w: this lifecycle has no authority to issue with", ErrUnavailable)
	}
	// The claim covers the proxy answer's reservation too: a retry waits
	// until the first attempt has issued, or failed and released the answer,
	// and does not find the answer reserved by an attempt about to fail.
	done, err := l.auth.claim(ctx, req)
	if err != nil {
		return Issued{}, err
	}
	defer done()
	var use *ProxyUse
	if proxy != nil {
		u, err := l.checkProxy(ctx, req, *proxy)
		if err != nil {
			return Issued{}, err
		}
		created, err := l.store.ReserveProxyUse(ctx, u)
		if errors.Is(err, ErrConflict) {
			return Issued{}, fmt.Errorf("%w: %v", ErrProxyAnswerUsed, err)
		}
		if err != nil {
			return Issued{}, fmt.Errorf("proxy application %s: %w", proxy.ApplicationID, err)
		}
		if created {
			use = &u
		}
	}
	got, err := l.auth.issue(ctx, req)
	if err != nil {
		if use != nil {
			rel := *use
			rel.Audit = audit.Entry{Time: l.now(), Actor: req.Actor, Action: audit.ActionProxyRelease, Subject: use.ApplicationID,
				Detail: json.RawMessage(fmt.Sprintf(`{"type":%q}`, req.Type))}
			if rerr := l.store.ReleaseProxyUse(context.WithoutCancel(ctx), rel); rerr != nil {
				return Issued{}, fmt.Errorf("%w (and releasing the proxy answer: %v)", err, rerr)
			}
		}
		return Issued{}, err
	}
	return got, nil
}

func (l *Lifecycle) checkProxy(ctx context.Context, req IssueRequest, p ProxyAnswer) (ProxyUse, error) {
	app, err := l.store.ProxyApplication(ctx, p.ApplicationID)
	if err != nil {
		return ProxyUse{}, fmt.Errorf("proxy application %s: %w", p.ApplicationID, err)
	}
	if subtle.ConstantTimeCompare(hashCode(p.AnswerCode), app.AnswerCodeHash) != 1 {
		return ProxyUse{}, fmt.Errorf("%w: proxy application %s: the answer code does not match", ErrNotEligible, app.ID)
	}
	if app.ResidentID != req.ResidentID || app.CardID != req.CardID || app.Municipality != req.Municipality {
		return ProxyUse{}, fmt.Errorf("%w: proxy application %s is for another resident, card or municipality", ErrNotEligible, app.ID)
	}
	if !slices.Contains(app.Types, req.Type) {
		return ProxyUse{}, fmt.Errorf("%w: proxy application %s does not cover a %v certificate", ErrNotEligible, app.ID, req.Type)
	}
	now := l.now()
	if now.Before(app.NotBefore) {
		return ProxyUse{}, fmt.Errorf("%w: proxy application %s: the answer is accepted from %s, not on the day of application",
			ErrNotEligible, app.ID, app.NotBefore.In(jst).Format(time.DateOnly))
	}
	detail, _ := json.Marshal(map[string]string{"type": req.Type.String(), "card": req.CardID})
	return ProxyUse{ApplicationID: app.ID, Type: req.Type, At: now, ClientID: req.ClientID, IdempotencyKey: req.IdempotencyKey,
		Audit: audit.Entry{Time: now, Actor: req.Actor, Action: audit.ActionProxyUse, Subject: app.ID, Detail: detail}}, nil
}

// RenewalNotice is a certificate whose renewal window has opened and that
// has not been renewed: its holder gets an expiry notice (有効期限通知書).
type RenewalNotice struct {
	Record       Record
	WindowOpens  Date
	ExpiresOnJST Date
}

// RenewalNotices lists the good card certificates of a municipality whose
// renewal window opens on day or opened before it, and that have not
// expired by the start of day. A renewal supersedes the old certificate, so
// renewed ones are not good and not listed.
func (l *Lifecycle) RenewalNotices(ctx context.Context, municipality string, day Date) ([]RenewalNotice, error) {
	if !ValidMunicipalityCode(municipality) {
		return nil, fmt.Errorf("%w: municipality %q", ErrInvalid, municipality)
	}
	if !day.Valid() {
		return nil, fmt.Errorf("%w: date %v", ErrInvalid, day)
	}
	// Expiry days up to day + window (+1 day for month-end clamping) can
	// have an open window; the exact test is RenewalOpensWithin.
	until := addMonthsClamped(day, l.window)
	to := time.Date(until.Year, until.Month, until.Day+2, 0, 0, 0, 0, jst)
	recs, err := l.store.GoodCertificatesExpiring(ctx, municipality, day.StartJST(), to)
	if err != nil {
		return nil, fmt.Errorf("listing certificates of %s: %w", municipality, err)
	}
	out := []RenewalNotice{}
	for _, r := range recs {
		opens := RenewalOpensWithin(r.NotAfter, l.window)
		if opens.After(day.StartJST()) {
			continue
		}
		out = append(out, RenewalNotice{Record: r, WindowOpens: DateOf(opens), ExpiresOnJST: DateOf(r.NotAfter)})
	}
	return out, nil
}
