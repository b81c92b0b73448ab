package console

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/ocsp"
	"github.com/jpkica/jpkica/store"
)

// view is one section of the console, with a page of its own.
type view struct {
	path, title string
	load        func(c *Console, ctx context.Context, now time.Time) (any, error)
}

var (
	viewIssuers  = view{"issuers", "Issuers", (*Console).issuers}
	viewCRLs     = view{"crls", "CRLs", (*Console).crls}
	viewOCSP     = view{"ocsp", "OCSP", (*Console).ocspState}
	viewHealth   = view{"health", "Health", (*Console).health}
	viewActivity = view{"activity", "Activity", (*Console).activity}
	viewAudit    = view{"audit", "Audit", (*Console).auditTail}
	views        = []view{viewIssuers, viewCRLs, viewOCSP, viewHealth, viewActivity, viewAudit}
)

// section is a view's data on a page, or why it could not be read.
type section struct {
	Name, Title string
	Data        any
	Err         string
}

// pageData is what the layout renders.
type pageData struct {
	Title    string
	Current  string // the view path, for the navigation
	Now      time.Time
	Refresh  int // seconds; 0: the page does not reload itself
	Sections []section
	Lookup   *lookupResult
	Message  string
}

// pageTimeout bounds a page's reads, so that a stuck database answers the
// administrator instead of hanging the browser.
const pageTimeout = 5 * time.Second

// page serves the views vs on one page.
func (c *Console) page(title, current string, vs ...view) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
		defer cancel()
		now := c.deps.Clock()
		d := pageData{Title: title, Current: current, Now: now, Refresh: int(c.cfg.Refresh / time.Second)}
		for _, v := range vs {
			s := section{Name: v.path, Title: v.title}
			data, err := v.load(c, ctx, now)
			if err != nil {
				c.log.WarnContext(ctx, "console: reading a view", "view", v.path, "err", err)
				s.Err = err.Error()
			}
			s.Data = data
			d.Sections = append(d.Sections, s)
		}
		c.render(w, r, http.StatusOK, d)
	}
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, d pageData) {
	if d.Now.IsZero() {
		d.Now = c.deps.Clock()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.tmpl.ExecuteTemplate(w, "layout.html", d); err != nil {
		c.log.ErrorContext(r.Context(), "console: rendering", "path", r.URL.Path, "err", err)
	}
}

// issuerRow is one issuer generation.
type issuerRow struct {
	ID, Type   string
	Generation int
	NotAfter   time.Time
	Left       time.Duration
	Current    bool
}

// responderRow is an issuer's newest delegated OCSP responder.
type responderRow struct {
	ID, Issuer string
	NotAfter   time.Time
	RenewOn    time.Time
	Left       time.Duration
}

type issuersView struct {
	Issuers    []issuerRow
	Responders []responderRow
}

func (c *Console) issuers(ctx context.Context, now time.Time) (any, error) {
	is, err := c.deps.Registry.Issuers(ctx)
	if err != nil {
		return nil, err
	}
	var v issuersView
	newest := map[ca.CertType]int{}
	for _, i := range is {
		if i.Type != ca.Terminal {
			newest[i.Type] = max(newest[i.Type], i.Generation)
		}
	}
	for _, i := range is {
		row := issuerRow{ID: i.ID, Type: i.Type.String(), Generation: i.Generation, Current: i.Type != ca.Terminal && newest[i.Type] == i.Generation}
		if i.Type == ca.Terminal {
			row.Type = "client CA"
		}
		cert, err := x509.ParseCertificate(i.CertDER)
		if err != nil {
			return nil, fmt.Errorf("issuer %s: %w", i.ID, err)
		}
		row.NotAfter, row.Left = cert.NotAfter.UTC(), cert.NotAfter.Sub(now)
		v.Issuers = append(v.Issuers, row)
	}
	rs, err := c.deps.Registry.Responders(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range store.NewestResponders(rs) {
		v.Responders = append(v.Responders, responderRow{ID: r.ID, Issuer: r.IssuerID, NotAfter: r.NotAfter.UTC(),
			RenewOn: r.NotAfter.Add(-c.cfg.ResponderRenewBefore).UTC(), Left: r.NotAfter.Sub(now)})
	}
	slices.SortFunc(v.Responders, func(a, b responderRow) int { return strings.Compare(a.Issuer, b.Issuer) })
	return v, nil
}

// crlRow is one published CRL.
type crlRow struct {
	File, Issuer, Partition string
	Delta                   bool
	Number                  string
	ThisUpdate, NextUpdate  time.Time
	Entries, Size           int64
	// Late: past its nextUpdate. Behind: a delta on an older base than
	// the complete CRL of its scope.
	Late, Behind bool
}

type crlsView struct {
	Configured bool
	CRLs       []crlRow
	Late       int
	// Failing names the issuers whose publication directory could not be
	// read.
	Failing []string
}

func (c *Console) crls(ctx context.Context, now time.Time) (any, error) {
	v := crlsView{Configured: c.deps.CRLs != nil}
	if !v.Configured {
		return v, nil
	}
	is, err := c.deps.Registry.Issuers(ctx)
	if err != nil {
		return nil, err
	}
	for _, i := range is {
		if i.Type == ca.Terminal {
			continue
		}
		ps, err := c.deps.CRLs.Published(i.ID)
		if err != nil {
			v.Failing = append(v.Failing, i.ID+": "+err.Error())
			continue
		}
		base := map[crl.Scope]string{}
		for _, p := range ps {
			if !p.Scope.Delta {
				base[p.Scope] = p.Number.String()
			}
		}
		for _, p := range ps {
			row := crlRow{File: p.Scope.File(), Issuer: p.Scope.Issuer, Partition: cmpOr(p.Scope.Partition, "full"),
				Delta: p.Scope.Delta, Number: p.Number.String(), ThisUpdate: p.ThisUpdate.UTC(), NextUpdate: p.NextUpdate.UTC(),
				Entries: p.Entries, Size: p.Size, Late: now.After(p.NextUpdate)}
			if p.Scope.Delta && p.BaseNumber != nil {
				if b, ok := base[p.Scope.Complete()]; ok && b != p.BaseNumber.String() {
					row.Behind = true
				}
			}
			if row.Late {
				v.Late++
			}
			v.CRLs = append(v.CRLs, row)
		}
	}
	return v, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type ocspView struct {
	Running bool
	State   ocsp.PresignState
	Age     time.Duration // of the oldest response
}

func (c *Console) ocspState(_ context.Context, now time.Time) (any, error) {
	if c.deps.OCSP == nil {
		return ocspView{}, nil
	}
	v := ocspView{Running: true, State: c.deps.OCSP.State()}
	if !v.State.Oldest.IsZero() {
		v.Age = now.Sub(v.State.Oldest)
	}
	return v, nil
}

// check is one /readyz dependency.
type check struct {
	Name, State string
	OK          bool
}

type healthView struct {
	Ready  bool
	Checks []check
	// Lag is the replication lag, when there is replication.
	Lag    time.Duration
	HasLag bool
	LagErr string
}

func (c *Console) health(ctx context.Context, _ time.Time) (any, error) {
	v := healthView{Ready: true}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for _, name := range sortedKeys(c.deps.Ready) {
		// The same readings as /readyz.
		ch := check{Name: name, State: "reachable", OK: true}
		switch err := c.deps.Ready[name].Ping(pctx); {
		case errors.Is(err, hsm.ErrLogin):
			ch.State, ch.OK = "the HSM refused the PIN: an operator must act", false
		case err != nil:
			ch.State, ch.OK = "unreachable", false
		}
		v.Ready = v.Ready && ch.OK
		v.Checks = append(v.Checks, ch)
	}
	if c.deps.Lag != nil {
		lag, err := c.deps.Lag.ReplicationLag(pctx)
		if err != nil {
			v.LagErr = err.Error()
		}
		v.Lag, v.HasLag = lag, true
	}
	return v, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// activityRow is one municipality's certificate changes today.
type activityRow struct {
	Code, Name                        string
	Issued, Revoked, Superseded, Held int64
}

type activityView struct {
	From, To time.Time
	Rows     []activityRow
	Total    activityRow
}

func (c *Console) activity(ctx context.Context, now time.Time) (any, error) {
	local := now.In(c.cfg.Location)
	from := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, c.cfg.Location)
	v := activityView{From: from, To: from.AddDate(0, 0, 1)}
	counts, err := c.deps.Audit.AuditActivity(ctx, v.From, v.To)
	if err != nil {
		return nil, err
	}
	byCode := map[string]*activityRow{}
	for _, n := range counts {
		row := byCode[n.Municipality]
		if row == nil {
			row = &activityRow{Code: n.Municipality, Name: c.cfg.Municipalities[n.Municipality]}
			if n.Municipality == "" {
				row.Code = "(not on record)"
			}
			byCode[n.Municipality] = row
		}
		for _, r := range []*activityRow{row, &v.Total} {
			switch n.Action {
			case audit.ActionCertificateIssue:
				r.Issued += n.Count
			case audit.ActionCertificateRevoke:
				r.Revoked += n.Count
			case audit.ActionCertificateSupersede:
				r.Superseded += n.Count
			case audit.ActionCertificateHold:
				r.Held += n.Count
			}
		}
	}
	for _, k := range sortedKeys(byCode) {
		v.Rows = append(v.Rows, *byCode[k])
	}
	return v, nil
}

type auditView struct {
	Entries  []audit.Entry
	Verified *verification
	Checked  bool // a verifier runs in this daemon
	Every    time.Duration
}

func (c *Console) auditTail(ctx context.Context, _ time.Time) (any, error) {
	es, err := c.deps.Audit.AuditTail(ctx, c.cfg.AuditTail)
	if err != nil {
		return nil, err
	}
	return auditView{Entries: es, Verified: c.lastVerification(), Checked: c.deps.Verifier != nil, Every: c.cfg.VerifyInterval}, nil
}
