package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// lookupResult is a lookup's form and what it found.
type lookupResult struct {
	By, Query string
	Searched  bool
	Err       string
	Found     []foundCert
	// Events are the entries about the resident or card looked up itself
	// (register events).
	Events []audit.Entry
}

// foundCert is a certificate with its status history: the audit entries
// whose subject is its serial.
type foundCert struct {
	Record  ca.Record
	History []audit.Entry
}

// maxQuery bounds a lookup's query string.
const maxQuery = 128

// lookup: GET /admin/lookup?by=serial|card|resident&q=... Each is an
// indexed read: the serial's unique index, certificates(card_id, ...),
// certificates(resident_id), and audit_log(subject, id).
func (c *Console) lookup(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	res := &lookupResult{By: r.URL.Query().Get("by"), Query: strings.TrimSpace(r.URL.Query().Get("q"))}
	if res.By == "" {
		res.By = "serial"
	}
	status := http.StatusOK
	if res.Query != "" {
		res.Searched = true
		if err := c.find(ctx, res); err != nil {
			res.Err = err.Error()
			switch {
			case errors.Is(err, ca.ErrInvalid):
				status = http.StatusBadRequest
			case errors.Is(err, ca.ErrNotFound):
				status, res.Err = http.StatusNotFound, "nothing found"
			default:
				status = http.StatusServiceUnavailable
				c.log.WarnContext(ctx, "console: lookup", "by", res.By, "err", err)
			}
		}
	}
	c.render(w, r, status, pageData{Title: "Lookup", Current: "lookup", Lookup: res})
}

func (c *Console) find(ctx context.Context, res *lookupResult) error {
	if len(res.Query) > maxQuery {
		return fmt.Errorf("%w: a query of at most %d characters", ca.ErrInvalid, maxQuery)
	}
	var recs []ca.Record
	switch res.By {
	case "serial":
		sn, err := ca.ParseSerial(strings.TrimPrefix(strings.ToLower(res.Query), "0x"))
		if err != nil {
			return fmt.Errorf("%w: serial %q: want hexadecimal", ca.ErrInvalid, res.Query)
		}
		rec, err := c.deps.Records.Certificate(ctx, sn)
		if err != nil {
			return err
		}
		recs = []ca.Record{rec}
	case "card", "resident":
		var err error
		if res.By == "card" {
			recs, err = c.deps.Records.CertificatesByCard(ctx, res.Query)
		} else {
			recs, err = c.deps.Records.CertificatesByResident(ctx, res.Query)
		}
		if err != nil {
			return err
		}
		if res.Events, err = c.deps.Audit.AuditBySubject(ctx, res.Query, DefaultLookupLimit); err != nil {
			return err
		}
		if len(recs) == 0 && len(res.Events) == 0 {
			return ca.ErrNotFound
		}
	default:
		return fmt.Errorf("%w: look up by serial, card or resident", ca.ErrInvalid)
	}
	if len(recs) > DefaultLookupLimit {
		recs = recs[:DefaultLookupLimit]
	}
	for _, rec := range recs {
		h, err := c.deps.Audit.AuditBySubject(ctx, rec.Serial.Hex(), DefaultLookupLimit)
		if err != nil {
			return err
		}
		res.Found = append(res.Found, foundCert{Record: rec, History: h})
	}
	return nil
}

// navItem is a view in the navigation.
type navItem struct{ Path, Title string }

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"day": func(t time.Time) string { return t.Format("2006-01-02 (MST)") },
	"left": func(d time.Duration) string {
		neg := d < 0
		if neg {
			d = -d
		}
		var s string
		switch {
		case d >= 48*time.Hour:
			s = fmt.Sprintf("%d days", int(d/(24*time.Hour)))
		case d >= time.Hour:
			s = fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
		default:
			s = d.Round(time.Second).String()
		}
		if neg {
			return s + " ago"
		}
		return s
	},
	"soon": func(d time.Duration) bool { return d < 90*24*time.Hour },
	"size": func(n int64) string {
		switch {
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"detail": func(e audit.Entry) string { return string(e.Detail) },
	"short":  func(b []byte) string { return fmt.Sprintf("%x", b[:min(len(b), 6)]) },
	"views": func() []navItem {
		out := make([]navItem, len(views))
		for i, v := range views {
			out[i] = navItem{Path: v.path, Title: v.title}
		}
		return out
	},
}
