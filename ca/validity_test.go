package ca

import (
	"errors"
	"testing"
	"time"
)

func mustDate(t *testing.T, s string) Date {
	t.Helper()
	d, err := ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseDate(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Date
		wantErr bool
	}{
		{in: "1990-05-02", want: Date{1990, time.May, 2}},
		{in: "2024-02-29", want: Date{2024, time.February, 29}},
		{in: "2023-02-29", wantErr: true},
		{in: "1990-5-2", wantErr: true},
		{in: "", wantErr: true},
		{in: "1990-05-02T00:00:00Z", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDate(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("ParseDate(%q) = %v, %v; want ErrInvalid", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseDate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func TestBirthdayIn(t *testing.T) {
	for _, tc := range []struct {
		birth string
		year  int
		want  string
	}{
		{"2000-02-29", 2023, "2023-02-28"}, // common year: 28 February
		{"2000-02-29", 2024, "2024-02-29"}, // leap year: the day itself
		{"2000-02-28", 2023, "2023-02-28"},
		{"2000-03-01", 2023, "2023-03-01"},
		{"1990-05-02", 2024, "2024-05-02"},
	} {
		t.Run(tc.birth+"/"+tc.want, func(t *testing.T) {
			if got := BirthdayIn(mustDate(t, tc.birth), tc.year); got != mustDate(t, tc.want) {
				t.Fatalf("BirthdayIn(%s, %d) = %v, want %s", tc.birth, tc.year, got, tc.want)
			}
		})
	}
}

func TestNotAfter(t *testing.T) {
	const farCard = "2099-12-31"
	for _, tc := range []struct {
		name    string
		typ     CertType
		issued  string // RFC 3339
		birth   string
		card    string
		auth    string // RFC 3339, empty for none
		current string // RFC 3339: the current certificate's notAfter; empty for none
		window  int
		want    string // RFC 3339
		wantErr error
	}{
		// DOMAIN.md's two real examples.
		{name: "real 2019 (reference cert)", typ: Authentication, issued: "2019-07-25T15:28:06Z", birth: "1980-05-02", want: "2024-05-02T14:59:59Z"},
		{name: "real 2025", typ: Signature, issued: "2025-10-27T01:00:00Z", birth: "1985-02-17", want: "2030-02-17T14:59:59Z"},

		// The birthday itself does not count; the day after is a year on.
		{name: "issued on the birthday", typ: Signature, issued: "2025-05-02T01:00:00Z", birth: "1990-05-02", want: "2030-05-02T14:59:59Z"},
		{name: "issued the day after the birthday", typ: Signature, issued: "2025-05-03T01:00:00Z", birth: "1990-05-02", want: "2030-05-02T14:59:59Z"},
		// A first issuance runs to the 5th birthday, however close the
		// next one is: the birthday tomorrow is the 1st.
		{name: "first issuance, the birthday tomorrow", typ: Signature, issued: "2025-05-01T01:00:00Z", birth: "1990-05-02", want: "2029-05-02T14:59:59Z"},
		{name: "first issuance, 2026-12-08, born 12-09", typ: Signature, issued: "2026-12-08T01:00:00Z", birth: "1990-12-09", want: "2030-12-09T14:59:59Z"},
		// No cliff at the old window's edge: 03-08 and 03-09 a day apart.
		{name: "first issuance, 2026-12-08, born 03-08", typ: Signature, issued: "2026-12-08T01:00:00Z", birth: "1990-03-08", want: "2031-03-08T14:59:59Z"},
		{name: "first issuance, 2026-12-08, born 03-09", typ: Signature, issued: "2026-12-08T01:00:00Z", birth: "1990-03-09", want: "2031-03-09T14:59:59Z"},

		// The date is taken in Japan: 2025-05-01T15:30Z is 2025-05-02 00:30 JST.
		{name: "UTC day before, JST birthday", typ: Signature, issued: "2025-05-01T15:30:00Z", birth: "1990-05-02", want: "2030-05-02T14:59:59Z"},
		{name: "23:30 JST the day before", typ: Signature, issued: "2025-05-01T14:30:00Z", birth: "1990-05-02", want: "2029-05-02T14:59:59Z"},
		{name: "2025-10-26T15:30Z is 10-27 JST", typ: Signature, issued: "2025-10-26T15:30:00Z", birth: "1985-02-17", want: "2030-02-17T14:59:59Z"},

		// Renewal: the current certificate expires 2026-02-17 23:59:59 JST,
		// so its window opens on 2025-11-17 (JST), that day included, and a
		// renewal in it runs to the 6th birthday.
		{name: "renewal: 23:30 JST before the window opens", typ: Signature, issued: "2025-11-16T14:30:00Z", birth: "1985-02-17", current: "2026-02-17T14:59:59Z", want: "2030-02-17T14:59:59Z"},
		{name: "renewal: 00:30 JST (15:30Z the day before), window open", typ: Signature, issued: "2025-11-16T15:30:00Z", birth: "1985-02-17", current: "2026-02-17T14:59:59Z", want: "2031-02-17T14:59:59Z"},
		{name: "renewal: window's first day, 00:00 JST", typ: Signature, issued: "2025-11-16T15:00:00Z", birth: "1985-02-17", current: "2026-02-17T14:59:59Z", want: "2031-02-17T14:59:59Z"},
		{name: "renewal: window's last day", typ: Signature, issued: "2026-02-16T14:00:00Z", birth: "1985-02-17", current: "2026-02-17T14:59:59Z", want: "2031-02-17T14:59:59Z"},
		{name: "renewal: 1-month window, outside", typ: Signature, issued: "2025-12-17T01:00:00Z", birth: "1985-02-17", current: "2026-02-17T14:59:59Z", window: 1, want: "2030-02-17T14:59:59Z"},
		{name: "renewal: 1-month window, inside", typ: Signature, issued: "2026-01-17T01:00:00Z", birth: "1985-02-17", current: "2026-02-17T14:59:59Z", window: 1, want: "2031-02-17T14:59:59Z"},
		// Exactly 3 months before the expiry day is the window's first day;
		// 3 months and 1 day before is outside it.
		{name: "renewal at exactly 3 months", typ: Authentication, issued: "2026-12-08T01:00:00Z", birth: "1980-03-08", current: "2027-03-08T14:59:59Z", want: "2032-03-08T14:59:59Z"},
		{name: "renewal at 3 months and 1 day", typ: Authentication, issued: "2026-12-07T01:00:00Z", birth: "1980-03-08", current: "2027-03-08T14:59:59Z", want: "2031-03-08T14:59:59Z"},
		// The window is the current certificate's, whatever capped it: a
		// card-capped one expiring 2027-01-07, birthday 06-15.
		{name: "renewal of a card-capped certificate", typ: Signature, issued: "2026-12-08T01:00:00Z", birth: "1985-06-15", current: "2027-01-07T14:59:59Z", want: "2032-06-15T14:59:59Z"},
		// Without a current certificate (revoked, or first), the 5th.
		{name: "after revocation: no current certificate", typ: Signature, issued: "2026-12-08T01:00:00Z", birth: "1985-06-15", want: "2031-06-15T14:59:59Z"},
		{name: "current certificate already expired", typ: Signature, issued: "2026-12-08T01:00:00Z", birth: "1985-06-15", current: "2026-12-07T14:59:59Z", want: "2031-06-15T14:59:59Z"},
		// Window clamped to the month's end: expiry 05-31 opens 02-28.
		{name: "renewal window clamped: 02-27 out", typ: Signature, issued: "2027-02-27T01:00:00Z", birth: "1990-05-31", current: "2027-05-31T14:59:59Z", want: "2031-05-31T14:59:59Z"},
		{name: "renewal window clamped: 02-28 in", typ: Signature, issued: "2027-02-28T01:00:00Z", birth: "1990-05-31", current: "2027-05-31T14:59:59Z", want: "2032-05-31T14:59:59Z"},

		// 29 February: 28 February in common years.
		{name: "29 Feb, common target year", typ: Signature, issued: "2025-06-01T01:00:00Z", birth: "2000-02-29", want: "2030-02-28T14:59:59Z"},
		{name: "29 Feb, leap target year", typ: Signature, issued: "2023-06-01T01:00:00Z", birth: "2000-02-29", want: "2028-02-29T14:59:59Z"},
		{name: "29 Feb, issued on 28 Feb of a common year", typ: Signature, issued: "2025-02-28T01:00:00Z", birth: "2000-02-29", want: "2030-02-28T14:59:59Z"},
		{name: "29 Feb, issued on 28 Feb of a leap year", typ: Signature, issued: "2028-02-28T01:00:00Z", birth: "2000-02-29", want: "2032-02-29T14:59:59Z"},
		{name: "29 Feb, first issuance 2026-12-08", typ: Signature, issued: "2026-12-08T01:00:00Z", birth: "2000-02-29", want: "2031-02-28T14:59:59Z"},
		{name: "born on the issuance date", typ: Authentication, issued: "2025-05-02T01:00:00Z", birth: "2025-05-02", want: "2030-05-02T14:59:59Z"},

		// Caps.
		{name: "card expiry caps", typ: Authentication, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", card: "2028-03-10", want: "2028-03-10T14:59:59Z"},
		{name: "card expiry later than birthday", typ: Authentication, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", card: "2030-05-03", want: "2030-05-02T14:59:59Z"},
		{name: "card expires today: until 23:59:59", typ: Authentication, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", card: "2025-06-01", want: "2025-06-01T14:59:59Z"},
		{name: "card expired yesterday", typ: Authentication, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", card: "2025-05-31", wantErr: ErrNotEligible},
		{name: "auth cert caps signature", typ: Signature, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", auth: "2027-01-01T00:00:00Z", want: "2027-01-01T00:00:00Z"},
		{name: "auth cert does not cap authentication", typ: Authentication, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", auth: "2027-01-01T00:00:00Z", want: "2030-05-02T14:59:59Z"},
		{name: "auth cert later than birthday", typ: Signature, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", auth: "2031-01-01T00:00:00Z", want: "2030-05-02T14:59:59Z"},
		{name: "auth cert already expired", typ: Signature, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", auth: "2025-06-01T00:59:59Z", wantErr: ErrNotEligible},
		{name: "card and auth: earliest wins", typ: Signature, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", card: "2027-06-01", auth: "2028-01-01T00:00:00Z", want: "2027-06-01T14:59:59Z"},

		// Bad input.
		{name: "born after issuance", typ: Signature, issued: "2025-06-01T01:00:00Z", birth: "2025-06-02", wantErr: ErrInvalid},
		{name: "terminal type", typ: Terminal, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", wantErr: ErrInvalid},
		{name: "no card expiry", typ: Signature, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", card: "-", wantErr: ErrInvalid},
		{name: "window too long", typ: Signature, issued: "2025-06-01T01:00:00Z", birth: "1990-05-02", window: 13, wantErr: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ValidityRequest{
				Type:                tc.typ,
				IssuedAt:            mustTime(t, tc.issued),
				BirthDate:           mustDate(t, tc.birth),
				RenewalWindowMonths: tc.window,
			}
			switch tc.card {
			case "":
				req.CardExpires = mustDate(t, farCard)
			case "-":
			default:
				req.CardExpires = mustDate(t, tc.card)
			}
			if tc.auth != "" {
				req.AuthExpires = mustTime(t, tc.auth)
			}
			if tc.current != "" {
				req.CurrentExpires = mustTime(t, tc.current)
			}
			got, err := NotAfter(req)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("NotAfter = %v, %v; want %v", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NotAfter: %v", err)
			}
			if want := mustTime(t, tc.want); !got.Equal(want) {
				t.Fatalf("NotAfter = %v, want %v", got.Format(time.RFC3339), want.Format(time.RFC3339))
			}
			if got.Location() != time.UTC {
				t.Errorf("NotAfter location %v, want UTC", got.Location())
			}
		})
	}
}

func TestRenewalOpens(t *testing.T) {
	for _, tc := range []struct{ notAfter, want string }{
		{"2030-02-17T14:59:59Z", "2029-11-16T15:00:00Z"}, // 2029-11-17 00:00 JST
		{"2024-05-02T14:59:59Z", "2024-02-01T15:00:00Z"},
		{"2030-05-31T14:59:59Z", "2030-02-27T15:00:00Z"}, // clamped to 02-28 JST
		{"2028-05-31T14:59:59Z", "2028-02-28T15:00:00Z"}, // leap year: 02-29 JST
		{"2027-01-01T00:00:00Z", "2026-09-30T15:00:00Z"}, // 09:00 JST on 2027-01-01
	} {
		t.Run(tc.notAfter, func(t *testing.T) {
			got := RenewalOpens(mustTime(t, tc.notAfter))
			if want := mustTime(t, tc.want); !got.Equal(want) {
				t.Fatalf("RenewalOpens(%s) = %v, want %v", tc.notAfter, got.Format(time.RFC3339), tc.want)
			}
		})
	}
}
