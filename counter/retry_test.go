package counter_test

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/counter"
)

// loseFirstAnswers lets the API do the first call of each idempotency key,
// then breaks the connection instead of answering: the answer is lost after
// the certificate was issued.
type loseFirstAnswers struct {
	mu   sync.Mutex
	seen map[string]bool
	lost int
}

func (l *loseFirstAnswers) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		l.mu.Lock()
		first := key != "" && !l.seen[key]
		if first {
			l.seen[key] = true
			l.lost++
		}
		l.mu.Unlock()
		if !first {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(httptest.NewRecorder(), r) // done, answer dropped
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		conn.Close()
	})
}

// TestIssueOntoLostAnswer: each issuance's first answer is lost after the
// API issued. IssueOnto sends the same key and CSR again and gets the
// certificate that was issued: one certificate of each type, in the store
// and on the card. A key left beside the certified one (as a failed visit
// leaves it) does not stop the card from signing with the certified key. A
// call the caller cancelled, and a server the client does not trust, are
// not lost answers and are not sent again.
func TestIssueOntoLostAnswer(t *testing.T) {
	lose := &loseFirstAnswers{seen: map[string]bool{}}
	s := apitest.New(t, apitest.Options{Wrap: lose.wrap})
	card, _, _ := newCard(t)
	c := client(t, s, "counter", "302015")
	job := counter.IssueJob{Card: wire.Card{ID: "CARD-LOST", Expires: "2036-05-02"}, Resident: taro(),
		IdempotencyKey: "visit-lost", At: s.Clock.Now()}
	issued, err := counter.IssueOnto(context.Background(), c, card, job)
	if err != nil {
		t.Fatal(err)
	}
	if lose.lost != 2 {
		t.Fatalf("%d answers lost, want 2 (one per certificate)", lose.lost)
	}
	recs, err := s.Store.CertificatesByCard(context.Background(), "CARD-LOST")
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d certificates stored (%v), want 2", len(recs), err)
	}
	stored := map[string]bool{}
	for _, r := range recs {
		stored[r.Serial.Hex()] = true
	}
	for _, got := range issued {
		typ, err := ca.ParseCertType(got.Type)
		if err != nil {
			t.Fatal(err)
		}
		onCard, err := card.Certificate(typ)
		if err != nil {
			t.Fatal(err)
		}
		if !stored[got.Serial] || onCard.SerialNumber.Text(16) != trimZeros(got.Serial) {
			t.Fatalf("%s: answered %s, on the card %x, stored %v", got.Type, got.Serial, onCard.SerialNumber, stored)
		}
	}

	// A spare key beside the certified one.
	if _, err := card.GenerateKey(ca.Signature); err != nil {
		t.Fatal(err)
	}
	signer, err := card.Signer(ca.Signature)
	if err != nil {
		t.Fatalf("with a spare key on the card: %v", err)
	}
	cert, err := card.Certificate(ca.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if !signer.Public().(*rsa.PublicKey).Equal(cert.PublicKey) {
		t.Fatal("the card signs with a key other than the certified one")
	}

	// The caller's own cancellation is not a lost answer.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Issue(ctx, "visit-cancelled", wire.IssueRequest{Type: "authentication"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, counter.ErrNoAnswer) {
		t.Fatalf("cancelled call: %v, want context.Canceled and not ErrNoAnswer", err)
	}

	// Nor is a server the client does not trust.
	cert2, _ := s.Enrol(t, "counter", "302015", "untrusting", 24*time.Hour)
	untrusting, err := counter.NewClient(counter.ClientConfig{BaseURL: s.URL, Certificate: cert2, ServerCAs: x509.NewCertPool()})
	if err != nil {
		t.Fatal(err)
	}
	before := lose.lost
	_, err = untrusting.Issue(context.Background(), "visit-untrusted", wire.IssueRequest{Type: "authentication"})
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) || errors.Is(err, counter.ErrNoAnswer) {
		t.Fatalf("untrusted server: %v, want a certificate verification error, not ErrNoAnswer", err)
	}
	if lose.lost != before {
		t.Fatal("a call that TLS refused reached the API")
	}
}

// TestAPIErrorTemporary: a 429 or a 503 is worth sending again, except the
// 503 of a key store whose token refused the PIN.
func TestAPIErrorTemporary(t *testing.T) {
	for _, tt := range []struct {
		status int
		code   string
		want   bool
	}{
		{http.StatusTooManyRequests, wire.CodeRateLimited, true},
		{http.StatusServiceUnavailable, wire.CodeUnavailable, true},
		{http.StatusServiceUnavailable, wire.CodeHSMLoginRefused, false},
		{http.StatusConflict, wire.CodeCardInUse, false},
		{http.StatusInternalServerError, wire.CodeInternal, false},
	} {
		e := &counter.APIError{Status: tt.status, Code: tt.code}
		if got := e.Temporary(); got != tt.want {
			t.Errorf("%d %s: Temporary() = %t, want %t", tt.status, tt.code, got, tt.want)
		}
	}
}
