package counter_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/counter"
	"github.com/jpkica/jpkica/internal/softhsmtest"
)

// meddler stands between the API and the counter when told to: it refuses
// the certificates of one type with a 422, or lets the API issue and then
// loses every answer.
type meddler struct {
	mu     sync.Mutex
	refuse string // a type, or ""
	lose   bool
}

func (m *meddler) set(refuse string, lose bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refuse, m.lose = refuse, lose
}

func (m *meddler) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		refuse, lose := m.refuse, m.lose
		m.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		switch {
		case refuse != "" && bytes.Contains(body, []byte(`"type":"`+refuse+`"`)):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			io.WriteString(w, `{"error":{"code":"not_eligible","message":"refused for the test"}}`)
		case lose && r.Method == http.MethodPost:
			next.ServeHTTP(httptest.NewRecorder(), r)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			conn.Close()
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// cardObjects counts the objects of both tokens of the card by class.
type cardObjects map[ca.CertType]map[uint]int

func countObjects(t *testing.T, tk *softhsmtest.Token, authPIN string) cardObjects {
	t.Helper()
	return cardObjects{ca.Signature: tk.Objects(t, tk.Label, tk.PIN), ca.Authentication: tk.Objects(t, tk.Label+"-auth", authPIN)}
}

func (o cardObjects) equal(p cardObjects) bool {
	return maps.Equal(o[ca.Signature], p[ca.Signature]) && maps.Equal(o[ca.Authentication], p[ca.Authentication])
}

// TestIssueOntoRefusalLeavesNoKey: a visit that the API refuses deletes
// the key pair it made on the card, and only that one: after refusals at
// the first certificate (another card expiry, another municipality's
// counter) the card holds the objects it held before, a spare key
// included; a visit refused at its second certificate keeps the first
// with its new key. A visit whose answers are lost after the API issued
// keeps its keys, since their certificates exist; and a certified key is
// never deleted.
func TestIssueOntoRefusalLeavesNoKey(t *testing.T) {
	ctx := context.Background()
	m := &meddler{}
	s := apitest.New(t, apitest.Options{Wrap: m.wrap})
	card, tk, authPIN := newCard(t)
	wakayama := client(t, s, "counter", "302015")
	chiyoda := client(t, s, "counter", "131016")
	job := counter.IssueJob{Card: wire.Card{ID: "CARD-REFUSED", Expires: "2036-05-02"}, Resident: taro(),
		IdempotencyKey: "visit-first", At: s.Clock.Now()}
	if _, err := counter.IssueOnto(ctx, wakayama, card, job); err != nil {
		t.Fatal(err)
	}
	if _, err := card.GenerateKey(ca.Signature); err != nil { // a spare key beside the certified one
		t.Fatal(err)
	}
	before := countObjects(t, tk, authPIN)
	if before[ca.Signature][pkcs11.CKO_PRIVATE_KEY] != 2 || before[ca.Authentication][pkcs11.CKO_PRIVATE_KEY] != 1 {
		t.Fatalf("before the refusals the card holds %v, want 2 signature keys and 1 user-authentication key", before)
	}

	for _, c := range []struct {
		name   string
		client *counter.Client
		job    counter.IssueJob
		status int
	}{
		{"another card expiry", wakayama, withCardExpiry(job, "2035-05-02", "visit-expiry"), http.StatusConflict},
		{"another municipality's counter", chiyoda, withCardExpiry(job, "2036-05-02", "visit-chiyoda"), http.StatusForbidden},
	} {
		issued, err := counter.IssueOnto(ctx, c.client, card, c.job)
		var ae *counter.APIError
		if !errors.As(err, &ae) || ae.Status != c.status || len(issued) != 0 {
			t.Fatalf("%s: %d issued, %v; want API status %d", c.name, len(issued), err, c.status)
		}
		if after := countObjects(t, tk, authPIN); !after.equal(before) {
			t.Fatalf("%s: the card holds %v, before it held %v", c.name, after, before)
		}
	}

	// Refused at the signature certificate: the user-authentication
	// certificate and its new key stay (its old key and certificate go,
	// as with every issuance), the signature token is as it was.
	m.set("signature", false)
	issued, err := counter.IssueOnto(ctx, wakayama, card, withCardExpiry(job, "2036-05-02", "visit-half"))
	wantAPIError(t, "signature refused", err, http.StatusUnprocessableEntity)
	if len(issued) != 1 || issued[0].Type != "authentication" {
		t.Fatalf("signature refused: issued %+v, want the user-authentication certificate", issued)
	}
	if half := countObjects(t, tk, authPIN); !half.equal(before) {
		t.Fatalf("signature refused: the card holds %v, want %v", half, before)
	}
	onCard, err := card.Certificate(ca.Authentication)
	if err != nil || onCard.SerialNumber.Text(16) != trimZeros(issued[0].Serial) {
		t.Fatalf("signature refused: the user-authentication certificate on the card is not the new one (%v)", err)
	}

	// Every answer lost after the API issued: the key stays, since its
	// certificate was issued (the same key and CSR could fetch it).
	m.set("", true)
	lostJob := withCardExpiry(job, "2036-05-02", "visit-lost-all")
	lostJob.Types = []ca.CertType{ca.Authentication}
	if _, err := counter.IssueOnto(ctx, wakayama, card, lostJob); !errors.Is(err, counter.ErrNoAnswer) {
		t.Fatalf("answers lost: %v, want ErrNoAnswer", err)
	}
	m.set("", false)
	lost := countObjects(t, tk, authPIN)
	if lost[ca.Authentication][pkcs11.CKO_PRIVATE_KEY] != 2 || lost[ca.Authentication][pkcs11.CKO_PUBLIC_KEY] != 2 {
		t.Fatalf("answers lost: the user-authentication token holds %v, want the new key pair beside the certified one", lost[ca.Authentication])
	}
	recs, err := s.Store.CertificatesByCard(ctx, "CARD-REFUSED")
	if err != nil || len(recs) != 4 {
		t.Fatalf("answers lost: %d certificates stored (%v), want 4: the lost answer's certificate was issued", len(recs), err)
	}

	// A certified key is never deleted.
	certified, err := card.Signer(ca.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if err := card.DeleteKey(certified); !errors.Is(err, counter.ErrCard) {
		t.Fatalf("deleting the certified key: %v, want ErrCard", err)
	}
	if after := countObjects(t, tk, authPIN); !maps.Equal(after[ca.Signature], before[ca.Signature]) {
		t.Fatalf("after refusing to delete the certified key the signature token holds %v, want %v", after[ca.Signature], before[ca.Signature])
	}
}

// withCardExpiry is job with another card expiry and idempotency key.
func withCardExpiry(job counter.IssueJob, expires, key string) counter.IssueJob {
	job.Card.Expires = expires
	job.IdempotencyKey = key
	return job
}
