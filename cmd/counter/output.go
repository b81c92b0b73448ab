package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
)

// What the commands print: one line per certificate for the person at the
// counter, or with --json the API's full answer (wire types, PEM included).
// The certificate lines start with the type, padded to the longer name,
// then the serial, then facts in words; dates are the Japanese calendar
// day (a certificate's notAfter, 14:59:59Z, is the last second of that day
// in Japan).

// printJSON prints v indented, as the API answered it.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printIssued prints the certificates of a visit:
//
//	signature       0a1b…  not after 2031-05-02  supersedes 09f3…
func printIssued(w io.Writer, got []wire.Issued, asJSON bool) error {
	if asJSON {
		return printJSON(w, got)
	}
	for _, g := range got {
		line := certLine(g.Type, g.Serial, "not after "+jstDate(g.NotAfter))
		if len(g.Superseded) > 0 {
			line += "  supersedes " + strings.Join(g.Superseded, ", ")
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

// printRecord prints a certificate's record:
//
//	signature       0a1b…  revoked (keyCompromise) 2026-11-25 12:00 JST  not after 2031-05-02
func printRecord(w io.Writer, c wire.Certificate, asJSON bool) error {
	if asJSON {
		return printJSON(w, c)
	}
	status := c.Status
	if c.Reason != "" {
		status += " (" + c.Reason + ")"
	}
	if c.RevokedAt != "" {
		status += " " + jstTime(c.RevokedAt)
	}
	_, err := fmt.Fprintln(w, certLine(c.Type, c.Serial, status+"  not after "+jstDate(c.NotAfter)))
	return err
}

// printNotices prints the certificates due for an expiry notice:
//
//	signature       0a1b…  card CARD-1  resident R-1  not after 2031-05-02  window opens 2031-02-02
func printNotices(w io.Writer, ns wire.RenewalNotices, municipality string, day ca.Date, asJSON bool) error {
	if asJSON {
		return printJSON(w, ns)
	}
	if len(ns.Notices) == 0 {
		_, err := fmt.Fprintf(w, "no certificate of %s is due for an expiry notice on %v\n", municipality, day)
		return err
	}
	for _, n := range ns.Notices {
		facts := fmt.Sprintf("card %s  resident %s  not after %s  window opens %s", n.CardID, n.ResidentID, jstDate(n.NotAfter), n.WindowOpens)
		if _, err := fmt.Fprintln(w, certLine(n.Type, n.Serial, facts)); err != nil {
			return err
		}
	}
	return nil
}

// printProxy prints an opened proxy application.
func printProxy(w io.Writer, p wire.ProxyApplicationResponse, asJSON bool) error {
	if asJSON {
		return printJSON(w, p)
	}
	_, err := fmt.Fprintf(w, "proxy application %s  inquiry code %s  the answer is accepted from %s\n"+
		"mail the inquiry to the resident's registered address; the proxy brings the answer and the card\n",
		p.ApplicationID, p.InquiryCode, jstDate(p.NotBefore))
	return err
}

// certLine is a certificate's line: type, serial, and the rest.
func certLine(typ, serial, rest string) string {
	return fmt.Sprintf("%-14s  %s  %s", typ, serial, rest)
}

// japan is the zone of the dates the counter prints.
var japan = time.FixedZone("JST", 9*60*60)

// jstDate is the day in Japan of an RFC 3339 time ("2031-05-02" for
// 2031-05-02T14:59:59Z), or the text as it came if it is no such time.
func jstDate(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return ca.DateOf(t).String()
}

// jstTime is an RFC 3339 time in Japan to the minute, or the text as it
// came if it is no such time.
func jstTime(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return t.In(japan).Format("2006-01-02 15:04 MST")
}
