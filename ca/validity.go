package ca

import (
	"fmt"
	"time"
)

// jst is Japan Standard Time. Japan has had no daylight saving time since
// 1951, so a fixed zone is exact and does not depend on the host's tzdata.
var jst = time.FixedZone("JST", 9*60*60)

// JST returns Japan Standard Time (UTC+9), the zone in which every calendar
// rule of this package (birthdays, issuance dates, expiry days) is taken.
func JST() *time.Location { return jst }

// Date is a civil date (no time of day, no zone), such as a birth date or a
// card's expiry day. The zero value is not a valid date.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDate reads a date in the form 2006-01-02.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("%w: date %q: want YYYY-MM-DD", ErrInvalid, s)
	}
	return Date{t.Year(), t.Month(), t.Day()}, nil
}

// DateOf returns the calendar date of t in Japan.
func DateOf(t time.Time) Date {
	y, m, d := t.In(jst).Date()
	return Date{y, m, d}
}

// String formats the date as 2006-01-02.
func (d Date) String() string {
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day)
}

// IsZero reports whether d is the zero value.
func (d Date) IsZero() bool { return d == Date{} }

// Valid reports whether d names a real day of the Gregorian calendar
// (years 1 to 9999).
func (d Date) Valid() bool {
	if d.Year < 1 || d.Year > 9999 || d.Month < time.January || d.Month > time.December || d.Day < 1 {
		return false
	}
	return d.Day <= daysIn(d.Year, d.Month)
}

// Before reports whether d is an earlier day than e.
func (d Date) Before(e Date) bool { return d.compare(e) < 0 }

// After reports whether d is a later day than e.
func (d Date) After(e Date) bool { return d.compare(e) > 0 }

func (d Date) compare(e Date) int {
	switch {
	case d.Year != e.Year:
		return cmpInt(d.Year, e.Year)
	case d.Month != e.Month:
		return cmpInt(int(d.Month), int(e.Month))
	default:
		return cmpInt(d.Day, e.Day)
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// StartJST is 00:00:00 Japan time on d.
func (d Date) StartJST() time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, jst)
}

// EndJST is 23:59:59 Japan time on d (14:59:59Z), the last second of the day
// as a certificate's notAfter names it (RFC 5280 notAfter is inclusive).
func (d Date) EndJST() time.Time {
	return time.Date(d.Year, d.Month, d.Day, 23, 59, 59, 0, jst)
}

// daysIn is the number of days in month m of year y.
func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// addMonthsClamped moves d by n calendar months, clamping the day to the end
// of the target month (2030-05-31 minus 3 months is 2030-02-28).
func addMonthsClamped(d Date, n int) Date {
	total := d.Year*12 + int(d.Month-1) + n
	y, m := total/12, time.Month(total%12+1)
	day := min(d.Day, daysIn(y, m))
	return Date{y, m, day}
}

// BirthdayIn is the holder's birthday in year y.
//
// Chosen rule (DOMAIN.md marks it unconfirmed for JPKI): a holder born on
// 29 February has their birthday on 28 February in common years, as other
// Japanese statutes do (the driving licence's renewal period, for one). This
// is the only place that decides it; every validity computation goes through
// here.
func BirthdayIn(birth Date, y int) Date {
	if birth.Month == time.February && birth.Day == 29 && daysIn(y, time.February) == 28 {
		return Date{y, time.February, 28}
	}
	return Date{y, birth.Month, birth.Day}
}

// nthBirthdayAfter is the n-th birthday strictly after day (n >= 1): a
// birthday falling on day itself does not count.
func nthBirthdayAfter(birth Date, day Date, n int) Date {
	first := BirthdayIn(birth, day.Year)
	y := day.Year
	if !first.After(day) {
		y++
	}
	return BirthdayIn(birth, y+n-1)
}

// DefaultRenewalWindowMonths is how long before expiry renewal opens.
const DefaultRenewalWindowMonths = 3

// ValidityRequest is what decides a card certificate's notAfter.
type ValidityRequest struct {
	Type CertType // Signature or Authentication
	// IssuedAt is the notBefore. Its calendar date in Japan is the issuance
	// date of the rules.
	IssuedAt  time.Time
	BirthDate Date
	// CardExpires is the card's own expiry day (inclusive): no certificate
	// outlives 23:59:59 JST of that day. Required.
	CardExpires Date
	// AuthExpires is the notAfter of the card's user-authentication
	// certificate; it caps a signature certificate. Zero means no cap.
	// It is ignored for an authentication certificate.
	AuthExpires time.Time
	// CurrentExpires is the notAfter of the resident's current live
	// certificate of the same type, on any card, whatever capped it. Zero
	// for a first issuance, and for one after the old certificate was
	// revoked or expired.
	CurrentExpires time.Time
	// RenewalWindowMonths is how long before expiry the renewal window
	// opens; zero means DefaultRenewalWindowMonths.
	RenewalWindowMonths int
}

// NotAfter computes a card certificate's notAfter by the rule of DOMAIN.md,
// "Validity": 23:59:59 JST on the holder's 5th birthday after the issuance
// date (the date of IssuedAt in Japan; a birthday on that day does not
// count), or the 6th when the issuance renews a current certificate whose
// renewal window is open (Renewing). The result is then capped by the
// card's expiry and, for a signature certificate, by the
// user-authentication certificate's notAfter. A cap that ends the
// certificate at or before IssuedAt is ErrNotEligible.
func NotAfter(req ValidityRequest) (time.Time, error) {
	if req.Type != Signature && req.Type != Authentication {
		return time.Time{}, fmt.Errorf("%w: validity: certificate type %v", ErrInvalid, req.Type)
	}
	if req.IssuedAt.IsZero() {
		return time.Time{}, fmt.Errorf("%w: validity: no issuance time", ErrInvalid)
	}
	if !req.BirthDate.Valid() {
		return time.Time{}, fmt.Errorf("%w: validity: birth date %v", ErrInvalid, req.BirthDate)
	}
	if !req.CardExpires.Valid() {
		return time.Time{}, fmt.Errorf("%w: validity: card expiry %v", ErrInvalid, req.CardExpires)
	}
	window := req.RenewalWindowMonths
	if window == 0 {
		window = DefaultRenewalWindowMonths
	}
	if window < 0 || window > 12 {
		return time.Time{}, fmt.Errorf("%w: validity: renewal window of %d months", ErrInvalid, window)
	}
	issued := DateOf(req.IssuedAt)
	if req.BirthDate.After(issued) {
		return time.Time{}, fmt.Errorf("%w: validity: birth date %v after issuance date %v", ErrInvalid, req.BirthDate, issued)
	}

	n := 5
	if Renewing(req.CurrentExpires, req.IssuedAt, window) {
		n = 6
	}
	notAfter := nthBirthdayAfter(req.BirthDate, issued, n).EndJST()

	if card := req.CardExpires.EndJST(); card.Before(notAfter) {
		notAfter = card
		if !notAfter.After(req.IssuedAt) {
			return time.Time{}, fmt.Errorf("%w: the card expired on %v, before issuance", ErrNotEligible, req.CardExpires)
		}
	}
	if req.Type == Signature && !req.AuthExpires.IsZero() && req.AuthExpires.Before(notAfter) {
		notAfter = req.AuthExpires
		if !notAfter.After(req.IssuedAt) {
			return time.Time{}, fmt.Errorf("%w: the user-authentication certificate expired at %v, before issuance",
				ErrNotEligible, req.AuthExpires.UTC().Format(time.RFC3339))
		}
	}
	return notAfter.UTC(), nil
}

// Renewing reports whether an issuance at issuedAt renews a current
// certificate expiring at current: whether that certificate is still live
// (current after issuedAt) and its renewal window of months is open on the
// issuance date. The window's first day is the day RenewalOpensWithin
// names (the expiry day's date, months earlier), the day from which
// expiry notices are due: a renewal on it is in, one the day before is
// out. Zero current is a first issuance.
func Renewing(current, issuedAt time.Time, months int) bool {
	if current.IsZero() || !current.After(issuedAt) {
		return false
	}
	return !DateOf(issuedAt).Before(renewalOpensDate(DateOf(current), months))
}

// renewalOpensDate is the first day of the renewal window of an expiry day:
// the same day of the month, months earlier, clamped to the month's end.
func renewalOpensDate(expiry Date, months int) Date {
	return addMonthsClamped(expiry, -months)
}

// RenewalOpens is when the default renewal window of a certificate expiring
// at notAfter opens: 00:00 JST on the day three calendar months before the
// expiry day in Japan (clamped to the end of a shorter month, so an expiry
// on 31 May opens on 28 or 29 February). Expiry notices are due from then.
func RenewalOpens(notAfter time.Time) time.Time {
	return RenewalOpensWithin(notAfter, DefaultRenewalWindowMonths)
}

// RenewalOpensWithin is RenewalOpens for a window of the given months.
func RenewalOpensWithin(notAfter time.Time, months int) time.Time {
	return renewalOpensDate(DateOf(notAfter), months).StartJST().UTC()
}
