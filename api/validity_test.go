package api_test

import (
	"testing"
	"time"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
)

// jstNoon is 12:00 JST on a day.
func jstNoon(y int, m time.Month, d int) time.Time {
	return time.Date(y, m, d, 3, 0, 0, 0, time.UTC)
}

// TestValidityThroughAPI: DOMAIN.md's validity rule as counters see it. A
// first issuance runs to the 5th birthday after the issuance date, however
// close the next birthday is; a renewal while the resident's current
// certificate of the type is in its renewal window (from the day three
// months before its expiry day) runs to the 6th, whatever capped the
// current one; after a revocation there is no current certificate.
func TestValidityThroughAPI(t *testing.T) {
	backends(t, func(t *testing.T, opts apitest.Options) {
		e := newEnv(t, opts)
		issue := func(res, born, cardExpires string, at time.Time) wire.Issued {
			t.Helper()
			e.s.Clock.Set(at)
			b := issueBody("authentication", res+"-"+at.Format("0102"), res, "302015")
			b.Resident.BirthDate, b.Card.Expires = born, cardExpires
			a, got := e.counter.issue(b, res+"-"+at.Format("0102"))
			wantStatus(t, "issuance for "+res, a, 201, "")
			return got
		}
		// The current certificates, issued on 2026-11-25 onto cards that
		// cap them.
		start := apitest.Start
		issue("RES-EXACT", "1985-06-15", "2027-03-08", start)
		issue("RES-EARLY", "1985-06-15", "2027-03-08", start)
		issue("RES-CAPPED", "1985-06-15", "2027-01-07", start)
		revoked := issue("RES-REVOKED", "1985-06-15", "2027-01-07", start)
		wantStatus(t, "revocation", e.counter.do("POST", "/v1/certificates/"+revoked.Serial+"/revoke",
			map[string]string{"reason": "cessationOfOperation"}), 200, "")

		dec8, dec7 := jstNoon(2026, time.December, 8), jstNoon(2026, time.December, 7)
		for _, tc := range []struct {
			name, res, born string
			at              time.Time
			want            string
		}{
			{"first issuance, the birthday tomorrow", "RES-FIRST", "1990-12-09", dec8, "2030-12-09T14:59:59Z"},
			{"first issuance, born on 29 February", "RES-LEAP", "2000-02-29", dec8, "2031-02-28T14:59:59Z"},
			{"renewal exactly 3 months before expiry", "RES-EXACT", "1985-06-15", dec8, "2032-06-15T14:59:59Z"},
			{"renewal 3 months and 1 day before expiry", "RES-EARLY", "1985-06-15", dec7, "2031-06-15T14:59:59Z"},
			{"renewal of a card-capped certificate", "RES-CAPPED", "1985-06-15", dec8, "2032-06-15T14:59:59Z"},
			{"after revocation: no current certificate", "RES-REVOKED", "1985-06-15", dec8, "2031-06-15T14:59:59Z"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := issue(tc.res, tc.born, "2036-05-02", tc.at); got.NotAfter != tc.want {
					t.Fatalf("not_after %s, want %s", got.NotAfter, tc.want)
				}
			})
		}
	})
}
