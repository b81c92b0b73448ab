package ca

import (
	"errors"
	"testing"
)

func TestCheckEligibility(t *testing.T) {
	for _, tc := range []struct {
		name     string
		typ      CertType
		birth    string
		issued   string // RFC 3339
		guardian bool
		want     []error // all must match; nil means eligible
		notWant  []error // none may match
	}{
		{name: "adult", typ: Signature, birth: "1990-05-02", issued: "2025-06-01T01:00:00Z"},
		{name: "15th birthday", typ: Signature, birth: "2010-05-02", issued: "2025-05-02T01:00:00Z"},
		{name: "15th birthday 00:00 JST", typ: Signature, birth: "2010-05-02", issued: "2025-05-01T15:00:00Z"},
		{name: "day before 15th birthday 23:59 JST", typ: Signature, birth: "2010-05-02", issued: "2025-05-01T14:59:59Z",
			want: []error{ErrUnderAge, ErrNotEligible}, notWant: []error{ErrAdultGuardianship}},
		{name: "child", typ: Signature, birth: "2020-01-01", issued: "2025-06-01T01:00:00Z", want: []error{ErrUnderAge}},
		{name: "child, authentication", typ: Authentication, birth: "2020-01-01", issued: "2025-06-01T01:00:00Z"},
		{name: "newborn, authentication", typ: Authentication, birth: "2025-06-01", issued: "2025-06-01T01:00:00Z"},
		{name: "guardianship", typ: Signature, birth: "1950-01-01", issued: "2025-06-01T01:00:00Z", guardian: true,
			want: []error{ErrAdultGuardianship, ErrNotEligible}, notWant: []error{ErrUnderAge}},
		{name: "guardianship, authentication", typ: Authentication, birth: "1950-01-01", issued: "2025-06-01T01:00:00Z", guardian: true},
		{name: "child under guardianship: both", typ: Signature, birth: "2015-01-01", issued: "2025-06-01T01:00:00Z", guardian: true,
			want: []error{ErrAdultGuardianship, ErrUnderAge}},
		// Born 29 February 2008: 15 from 1 March 2023 (a common year).
		{name: "29 Feb, 28 Feb of common year", typ: Signature, birth: "2008-02-29", issued: "2023-02-28T01:00:00Z", want: []error{ErrUnderAge}},
		{name: "29 Feb, 1 Mar of common year", typ: Signature, birth: "2008-02-29", issued: "2023-03-01T01:00:00Z"},
		// Born 29 February 2012: 2027 is common, so 15 from 1 March.
		{name: "29 Feb, leap anniversary", typ: Signature, birth: "2012-02-29", issued: "2027-02-28T01:00:00Z", want: []error{ErrUnderAge}},
		{name: "born after issuance", typ: Authentication, birth: "2025-06-02", issued: "2025-06-01T01:00:00Z", want: []error{ErrInvalid}, notWant: []error{ErrNotEligible}},
		{name: "bad birth date", typ: Signature, birth: "-", issued: "2025-06-01T01:00:00Z", want: []error{ErrInvalid}},
		{name: "terminal", typ: Terminal, birth: "1990-01-01", issued: "2025-06-01T01:00:00Z", want: []error{ErrInvalid}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := EligibilityRequest{Type: tc.typ, IssuedAt: mustTime(t, tc.issued), AdultGuardianship: tc.guardian}
			if tc.birth != "-" {
				req.BirthDate = mustDate(t, tc.birth)
			}
			err := CheckEligibility(req)
			if tc.want == nil && err != nil {
				t.Fatalf("CheckEligibility: %v, want eligible", err)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("CheckEligibility = %v, want %v", err, w)
				}
			}
			for _, w := range tc.notWant {
				if errors.Is(err, w) {
					t.Errorf("CheckEligibility = %v, must not be %v", err, w)
				}
			}
		})
	}
}

func TestAgeOn(t *testing.T) {
	for _, tc := range []struct {
		birth, day string
		want       int
	}{
		{"2010-05-02", "2025-05-01", 14},
		{"2010-05-02", "2025-05-02", 15},
		{"2008-02-29", "2023-02-28", 14},
		{"2008-02-29", "2023-03-01", 15},
		{"2008-02-29", "2024-02-29", 16},
		{"2008-02-29", "2024-02-28", 15},
		{"2025-01-01", "2025-01-01", 0},
	} {
		t.Run(tc.birth+"/"+tc.day, func(t *testing.T) {
			if got := AgeOn(mustDate(t, tc.birth), mustDate(t, tc.day)); got != tc.want {
				t.Fatalf("AgeOn = %d, want %d", got, tc.want)
			}
		})
	}
}
