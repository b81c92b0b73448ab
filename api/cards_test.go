package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/internal/pgtest"
)

// backends runs a test on SQLite and on PostgreSQL.
func backends(t *testing.T, run func(t *testing.T, opts apitest.Options)) {
	t.Run("sqlite", func(t *testing.T) { run(t, apitest.Options{}) })
	t.Run("postgres", func(t *testing.T) { run(t, apitest.Options{DSN: pgtest.DSN(t)}) })
}

// wantStatus fails unless the answer has the status and error code.
func wantStatus(t *testing.T, what string, a answer, status int, code string) {
	t.Helper()
	if a.status != status || a.code() != code {
		t.Fatalf("%s: %d %.300s, want %d %q", what, a.status, a.body, status, code)
	}
}

// wantSuperseded fails unless the issuance superseded exactly serials.
func wantSuperseded(t *testing.T, what string, got wire.Issued, serials ...string) {
	t.Helper()
	if !slices.Equal(got.Superseded, serials) {
		t.Fatalf("%s superseded %v, want %v", what, got.Superseded, serials)
	}
}

// record reads a certificate from the store.
func record(t *testing.T, e *env, serial string) ca.Record {
	t.Helper()
	sn, err := ca.ParseSerial(serial)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.s.Store.Certificate(context.Background(), sn)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCardInUse: a card is one resident's. Issuing onto a card that holds
// another resident's live certificate is 409 card_in_use, from the card's
// own municipality or another's, and the answer names no certificate; a
// counter cannot supersede what another municipality issued, even for the
// same resident ID; an administrator can. Nothing is signed for a refusal.
func TestCardInUse(t *testing.T) {
	backends(t, func(t *testing.T, opts apitest.Options) {
		e := newEnv(t, opts)
		a, victim := e.counter.issue(issueBody("authentication", "CARD-V", "RES-V", "302015"), "v-1")
		wantStatus(t, "the victim's issuance", a, 201, "")
		audit := auditCount(t, e.s)

		for i, tc := range []struct {
			name string
			c    caller
			body wire.IssueRequest
			why  string
		}{
			{"another municipality's counter, its own resident", e.other,
				issueBody("authentication", "CARD-V", "RES-T", "131016"), "another resident"},
			{"another municipality's counter, the victim's resident ID", e.other,
				issueBody("authentication", "CARD-V", "RES-V", "131016"), "issued by another municipality"},
			{"the same municipality, another resident", e.counter,
				issueBody("authentication", "CARD-V", "RES-W", "302015"), "another resident"},
			{"the other type, another resident", e.counter,
				issueBody("signature", "CARD-V", "RES-W", "302015"), "another resident"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// A key of its own, so that only the card is in question.
				tc.body.CSR = csrPEM(t, newCardKey(t))
				a, _ := tc.c.issue(tc.body, fmt.Sprintf("in-use-%d", i))
				wantStatus(t, tc.why, a, 409, wire.CodeCardInUse)
				if strings.Contains(string(a.body), victim.Serial) {
					t.Fatalf("the refusal names the victim's certificate: %s", a.body)
				}
				if r := record(t, e, victim.Serial); r.Status != ca.Good {
					t.Fatalf("the victim's certificate is %v after the refusal", r.Status)
				}
				if got := auditCount(t, e.s); got != audit {
					t.Fatalf("the refusal wrote %d audit entries", got-audit)
				}
				if recs, err := e.s.Store.CertificatesByCard(context.Background(), "CARD-V"); err != nil || len(recs) != 1 {
					t.Fatalf("card CARD-V holds %d certificates (%v), want only the victim's: a refusal signs nothing", len(recs), err)
				}
			})
		}

		// An administrator acts for every municipality: the resident's
		// renewal onto the card supersedes the certificate.
		a, renewed := e.admin.issue(issueBody("authentication", "CARD-V", "RES-V", "302015"), "v-admin")
		wantStatus(t, "the administrator's renewal", a, 201, "")
		wantSuperseded(t, "the administrator's renewal", renewed, victim.Serial)
		if r := record(t, e, victim.Serial); r.Status != ca.Revoked || r.Reason != ca.Superseded {
			t.Fatalf("the renewed certificate is %v/%v, want revoked, superseded", r.Status, r.Reason)
		}
	})
}

// TestHeldElsewhere: a counter's issuance supersedes the resident's held
// certificates on lost cards only where its own municipality issued them;
// another municipality's counter issues the new card but leaves the held
// certificate to its municipality, and names nothing.
func TestHeldElsewhere(t *testing.T) {
	backends(t, func(t *testing.T, opts apitest.Options) {
		e := newEnv(t, opts)
		a, lost := e.counter.issue(issueBody("authentication", "CARD-L", "RES-M", "302015"), "m-1")
		wantStatus(t, "issuance", a, 201, "")
		wantStatus(t, "hold", e.lossline.do("POST", "/v1/cards/CARD-L/hold", nil), 200, "")

		// The resident moved to 131016 and gets a new card there.
		a, moved := e.other.issue(issueBody("authentication", "CARD-N", "RES-M", "131016"), "m-2")
		wantStatus(t, "the new municipality's issuance", a, 201, "")
		wantSuperseded(t, "another municipality's counter", moved)
		if r := record(t, e, lost.Serial); r.Status != ca.OnHold {
			t.Fatalf("the held certificate is %v after another municipality's issuance, want on hold", r.Status)
		}

		// The issuing municipality's own counter supersedes it.
		a, again := e.counter.issue(issueBody("authentication", "CARD-O", "RES-M", "302015"), "m-3")
		wantStatus(t, "the issuing municipality's issuance", a, 201, "")
		wantSuperseded(t, "the issuing municipality's counter", again, lost.Serial)
	})
}

// TestCardExpiry: a card in use keeps its expiry (409
// card_expiry_mismatch); once nothing on it is live, it is a new card and
// takes any.
func TestCardExpiry(t *testing.T) {
	backends(t, func(t *testing.T, opts apitest.Options) {
		e := newEnv(t, opts)
		a, auth := e.counter.issue(issueBody("authentication", "CARD-E", "RES-E", "302015"), "e-1")
		wantStatus(t, "issuance", a, 201, "")
		other := issueBody("signature", "CARD-E", "RES-E", "302015")
		other.Card.Expires = "2035-01-01"
		a, _ = e.counter.issue(other, "e-2")
		wantStatus(t, "another expiry on a card in use", a, 409, wire.CodeCardExpiryMismatch)
		if r := record(t, e, auth.Serial); r.Status != ca.Good {
			t.Fatalf("the card's certificate is %v after the refusal", r.Status)
		}
		same := issueBody("signature", "CARD-E", "RES-E", "302015")
		a, _ = e.counter.issue(same, "e-3")
		wantStatus(t, "the same expiry", a, 201, "")

		for _, r := range []ca.CertType{ca.Authentication, ca.Signature} {
			recs, err := e.s.Store.CertificatesByCard(context.Background(), "CARD-E")
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				if rec.Type == r && rec.Status == ca.Good {
					wantStatus(t, "revocation", e.counter.do("POST", "/v1/certificates/"+rec.Serial.Hex()+"/revoke",
						map[string]string{"reason": "cessationOfOperation"}), 200, "")
				}
			}
		}
		renewed := issueBody("authentication", "CARD-E", "RES-E", "302015")
		renewed.Card.Expires = "2035-01-01"
		a, _ = e.counter.issue(renewed, "e-4")
		wantStatus(t, "another expiry on a card with nothing live", a, 201, "")
	})
}

// TestKeyReused: a public key certified for one card is refused for any
// other card or resident (422 card_key_reused), in any status; the same
// card and resident may certify it again.
func TestKeyReused(t *testing.T) {
	backends(t, func(t *testing.T, opts apitest.Options) {
		e := newEnv(t, opts)
		key := newCardKey(t)
		first := issueBody("authentication", "CARD-K", "RES-K", "302015")
		first.CSR = csrPEM(t, key)
		a, got := e.counter.issue(first, "k-1")
		wantStatus(t, "issuance", a, 201, "")

		a, got = e.counter.issue(first, "k-2")
		wantStatus(t, "the same key, card and resident", a, 201, "")

		for _, tc := range []struct{ name, card, res, municipality string }{
			{"another card", "CARD-K2", "RES-K", "302015"},
			{"another resident", "CARD-K3", "RES-K3", "302015"},
			{"another municipality", "CARD-K4", "RES-K4", "131016"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := issueBody("authentication", tc.card, tc.res, tc.municipality)
				b.CSR = first.CSR
				c := e.counter
				if tc.municipality != "302015" {
					c = e.other
				}
				a, _ := c.issue(b, "k-"+tc.card)
				wantStatus(t, tc.name, a, 422, wire.CodeCardKeyReused)
				if recs, err := e.s.Store.CertificatesByCard(context.Background(), tc.card); err != nil || len(recs) != 0 {
					t.Fatalf("card %s holds %d certificates (%v) after the refusal, want none", tc.card, len(recs), err)
				}
			})
		}

		// Revoked, the key is still spent.
		wantStatus(t, "revocation", e.admin.do("POST", "/v1/certificates/"+got.Serial+"/revoke",
			map[string]string{"reason": "keyCompromise"}), 200, "")
		b := issueBody("authentication", "CARD-K5", "RES-K", "302015")
		b.CSR = first.CSR
		a, _ = e.counter.issue(b, "k-5")
		wantStatus(t, "a revoked certificate's key on another card", a, 422, wire.CodeCardKeyReused)
	})
}

// TestOtherMunicipalityIDs: a counter cannot tell a card or resident ID
// that another municipality holds from one that nobody holds.
func TestOtherMunicipalityIDs(t *testing.T) {
	backends(t, func(t *testing.T, opts apitest.Options) {
		e := newEnv(t, opts)
		a, _ := e.counter.issue(issueBody("authentication", "CARD-H", "RES-H", "302015"), "h-1")
		wantStatus(t, "issuance", a, 201, "")
		for _, q := range []struct{ held, absent string }{
			{"card=CARD-H", "card=CARD-NOBODY"},
			{"resident=RES-H", "resident=RES-NOBODY"},
		} {
			held := e.other.do("GET", "/v1/certificates?"+q.held, nil)
			absent := e.other.do("GET", "/v1/certificates?"+q.absent, nil)
			if held.status != absent.status || string(held.body) != string(absent.body) {
				t.Errorf("%s: %d %s; %s: %d %s; want the same answer", q.held, held.status, held.body,
					q.absent, absent.status, absent.body)
			}
			if mine := e.counter.do("GET", "/v1/certificates?"+q.held, nil); mine.status != 200 ||
				!strings.Contains(string(mine.body), "RES-H") {
				t.Errorf("%s as the issuing municipality: %d %s", q.held, mine.status, mine.body)
			}
		}
	})
}

func newCardKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
