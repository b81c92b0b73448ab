package ca_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/catest"
	"github.com/jpkica/jpkica/internal/softhsmtest"
	"github.com/jpkica/jpkica/lint"
	"github.com/jpkica/jpkica/store"
)

// issueNow is the fixed issuance time of these tests: 2026-11-25 12:00 JST.
var issueNow = catest.Now

type harness struct {
	st    *store.Store
	kr    *ceremony.Keyring
	auth  *ca.Authority
	roots *x509.CertPool
}

// newHarness sets up a CA with its keys in keys.
func newHarness(t testing.TB, keys hsm.KeyStore) *harness {
	t.Helper()
	c := catest.New(t, catest.Options{Keys: keys})
	return &harness{st: c.Store, kr: c.Keyring, auth: c.Auth[1], roots: c.Roots}
}

var (
	cardKey = catest.CardKey
	request = catest.Request
)

// check verifies an issued certificate the way a relying party would: Go's
// verifier against the issuer roots, zlint, and the stored record.
func (h *harness) check(t *testing.T, got ca.Issued) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(got.Record.DER)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: h.roots, CurrentTime: issueNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("chain does not verify: %v", err)
	}
	if err := lint.Certificate(got.Record.DER); err != nil {
		t.Fatalf("zlint: %v", err)
	}
	if len(got.Chain) != 1 {
		t.Fatalf("chain of %d certificates", len(got.Chain))
	}
	stored, err := h.st.Certificate(context.Background(), got.Record.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != ca.Good || string(stored.DER) != string(got.Record.DER) {
		t.Fatalf("stored record: status %v, same DER %v", stored.Status, string(stored.DER) == string(got.Record.DER))
	}
	return cert
}

func TestIssue(t *testing.T) {
	h := newHarness(t, softwareKeys(t))
	ctx := context.Background()

	authn, err := h.auth.Issue(ctx, request(ca.Authentication, "CARD-1"))
	if err != nil {
		t.Fatal(err)
	}
	ac := h.check(t, authn)
	// Born 05-02, issued 2026-11-25: the 5th birthday after is 2031-05-02.
	if want := time.Date(2031, 5, 2, 14, 59, 59, 0, time.UTC); !ac.NotAfter.Equal(want) {
		t.Fatalf("authentication notAfter %v, want %v", ac.NotAfter, want)
	}
	if len(ac.ExtKeyUsage) != 1 || ac.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("authentication EKU %v", ac.ExtKeyUsage)
	}

	sig, err := h.auth.Issue(ctx, request(ca.Signature, "CARD-1"))
	if err != nil {
		t.Fatal(err)
	}
	sc := h.check(t, sig)
	if sc.NotAfter.After(ac.NotAfter) {
		t.Fatalf("signature notAfter %v outlives the authentication certificate's %v", sc.NotAfter, ac.NotAfter)
	}
	if sc.Issuer.String() == ac.Issuer.String() {
		t.Fatal("both types came from the same issuer")
	}
	if sum := sha256.Sum256(nil); string(sig.Record.FactsHash) == string(sum[:]) || len(sig.Record.FactsHash) == 0 {
		t.Fatal("signature record carries no facts hash")
	}

	// A second signature certificate on the card supersedes the first.
	again, err := h.auth.Issue(ctx, request(ca.Signature, "CARD-1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Superseded) != 1 || again.Superseded[0] != sig.Record.Serial {
		t.Fatalf("superseded %v, want [%s]", again.Superseded, sig.Record.Serial)
	}
	old, err := h.st.Certificate(ctx, sig.Record.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if old.Status != ca.Revoked || old.Reason != ca.Superseded {
		t.Fatalf("old signature certificate: %v %v, want revoked superseded", old.Status, old.Reason)
	}
	if a, _ := h.st.Certificate(ctx, authn.Record.Serial); a.Status != ca.Good {
		t.Fatalf("authentication certificate became %v", a.Status)
	}
}

func TestIssueOpenSSLVerifies(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("OPENSSL NOT INSTALLED: skipping the independent verification (scripts/test installs it)")
	}
	h := newHarness(t, softwareKeys(t))
	dir := t.TempDir()
	for _, typ := range []ca.CertType{ca.Authentication, ca.Signature} {
		got, err := h.auth.Issue(context.Background(), request(typ, "CARD-OSSL"))
		if err != nil {
			t.Fatal(err)
		}
		leaf := writePEM(t, filepath.Join(dir, typ.String()+".pem"), got.Record.DER)
		root := writePEM(t, filepath.Join(dir, typ.String()+"-ca.pem"), got.Chain[0])
		out, err := exec.Command("openssl", "verify", "-attime", "1795600000", "-CAfile", root, leaf).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl verify %v: %v\n%s", typ, err, out)
		}
	}
}

func writePEM(t *testing.T, path string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestIssueRefuses(t *testing.T) {
	h := newHarness(t, softwareKeys(t))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	smallKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	tests := []struct {
		name   string
		mutate func(*ca.IssueRequest)
		want   error
	}{
		{"signature under 15", func(r *ca.IssueRequest) { r.Facts.BirthDate = ca.Date{Year: 2012, Month: time.January, Day: 1} }, ca.ErrNotEligible},
		{"signature under adult guardianship", func(r *ca.IssueRequest) { r.AdultGuardianship = true }, ca.ErrNotEligible},
		{"ECDSA card key", func(r *ca.IssueRequest) { r.PublicKey = ecKey.Public() }, ca.ErrInvalid},
		{"RSA-1024 card key", func(r *ca.IssueRequest) { r.PublicKey = smallKey.Public() }, ca.ErrInvalid},
		{"name without full-width space", func(r *ca.IssueRequest) { r.Facts.Name = "和歌山太郎" }, ca.ErrInvalid},
		{"card expired before issuance", func(r *ca.IssueRequest) { r.CardExpires = ca.Date{Year: 2026, Month: time.November, Day: 1} }, ca.ErrNotEligible},
		{"unknown municipality", func(r *ca.IssueRequest) { r.Municipality = "271004" }, ca.ErrNotFound},
		{"no card", func(r *ca.IssueRequest) { r.CardID = "" }, ca.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(ca.Signature, "CARD-REFUSED")
			tt.mutate(&req)
			got, err := h.auth.Issue(context.Background(), req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Issue = %v, want %v", err, tt.want)
			}
			if got.Record.DER != nil {
				t.Fatal("a refused issuance returned a certificate")
			}
			if recs, err := h.st.CertificatesByCard(context.Background(), req.CardID); err != nil || len(recs) != 0 {
				t.Fatalf("a refused issuance stored %d records (%v)", len(recs), err)
			}
		})
	}
}

func TestIssueIdempotent(t *testing.T) {
	h := newHarness(t, softwareKeys(t))
	ctx := context.Background()
	req := request(ca.Authentication, "CARD-IDEM")
	req.ClientID, req.IdempotencyKey, req.RequestHash = "counter-1", "key-1", []byte("hash-a")
	first, err := h.auth.Issue(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := h.auth.Issue(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Replayed || second.Record.Serial != first.Record.Serial || string(second.Record.DER) != string(first.Record.DER) {
		t.Fatalf("retry gave serial %s (replayed %v), want %s", second.Record.Serial, second.Replayed, first.Record.Serial)
	}
	other := req
	other.RequestHash = []byte("hash-b")
	if _, err := h.auth.Issue(ctx, other); !errors.Is(err, ca.ErrConflict) {
		t.Fatalf("same key, other body: %v, want ErrConflict", err)
	}
	if recs, _ := h.st.CertificatesByCard(ctx, "CARD-IDEM"); len(recs) != 1 {
		t.Fatalf("%d certificates on the card, want 1", len(recs))
	}
}

// TestIssueStoreDown: a certificate signed but not stored is never handed out.
func TestIssueStoreDown(t *testing.T) {
	h := newHarness(t, softwareKeys(t))
	h.st.Close()
	got, err := h.auth.Issue(context.Background(), request(ca.Authentication, "CARD-DOWN"))
	if err == nil || got.Record.DER != nil {
		t.Fatalf("Issue with the database closed = %v, certificate %v", err, got.Record.DER != nil)
	}
	if !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("Issue with the database closed = %v, want ErrUnavailable", err)
	}
}

func openSoftHSM(t testing.TB) hsm.KeyStore {
	tok := softhsmtest.New(t)
	keys, err := hsm.OpenPKCS11(context.Background(), hsm.PKCS11Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN, MaxSessions: 2}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	return keys
}

func TestIssueSoftHSM(t *testing.T) {
	h := newHarness(t, openSoftHSM(t))
	for _, typ := range []ca.CertType{ca.Authentication, ca.Signature} {
		got, err := h.auth.Issue(context.Background(), request(typ, "CARD-HSM"))
		if err != nil {
			t.Fatal(err)
		}
		h.check(t, got)
	}
}

// BenchmarkIssue measures certificates built, linted, signed and stored per
// second, with a software issuer key and with SoftHSM2.
func BenchmarkIssue(b *testing.B) {
	for _, bc := range []struct {
		name string
		keys func(testing.TB) hsm.KeyStore
	}{
		{"software", softwareKeys},
		{"softhsm", openSoftHSM},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHarness(b, bc.keys(b))
			ctx := context.Background()
			// The baseline: one bare signature by the same issuer key.
			b.Run("raw-sign", func(b *testing.B) {
				signer := h.kr.Current[0].Signer
				digest := sha256.Sum256([]byte("jpkica"))
				for b.Loop() {
					if _, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("issue", func(b *testing.B) {
				i := 0
				for b.Loop() {
					i++
					req := request(ca.Authentication, "BENCH-"+itoa(i))
					if _, err := h.auth.Issue(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// softwareKeys is a fresh software key store in the test's directory.
func softwareKeys(t testing.TB) hsm.KeyStore {
	t.Helper()
	k, err := hsm.OpenSoftware(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newCountingKeys is countingKeys over a fresh software key store, the
// gate open and nothing set to fail.
func newCountingKeys(t testing.TB) countingKeys {
	return countingKeys{KeyStore: softwareKeys(t), n: &atomic.Int64{}, gate: &atomic.Pointer[chan struct{}]{},
		entered: make(chan struct{}, 2), fail: &atomic.Bool{}}
}

// countingKeys counts the signatures made by the keys it hands out; while
// gate holds a channel, each signature first says so on entered and waits
// for the gate to close.
type countingKeys struct {
	hsm.KeyStore
	n       *atomic.Int64
	gate    *atomic.Pointer[chan struct{}]
	entered chan struct{}
	fail    *atomic.Bool // true: the next signature fails (after the gate)
}

func (k countingKeys) Signer(ctx context.Context, label string) (crypto.Signer, error) {
	s, err := k.KeyStore.Signer(ctx, label)
	if err != nil {
		return nil, err
	}
	return countingSigner{s, k}, nil
}

type countingSigner struct {
	crypto.Signer
	k countingKeys
}

func (s countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if g := s.k.gate.Load(); g != nil {
		select {
		case s.k.entered <- struct{}{}:
		default:
		}
		<-*g
	}
	if s.k.fail.CompareAndSwap(true, false) {
		return nil, errors.New("the token refused to sign")
	}
	s.k.n.Add(1)
	return s.Signer.Sign(r, digest, opts)
}

// TestIssueIdempotentConcurrent: retries that arrive while the first
// issuance with their idempotency key is still under way wait for it and
// replay its certificate; the issuer key signs once. A retry that gives up
// while it waits says so and changes nothing.
func TestIssueIdempotentConcurrent(t *testing.T) {
	ck := newCountingKeys(t)
	h := newHarness(t, ck)
	ctx := context.Background()
	req := request(ca.Authentication, "CARD-RACE")
	req.ClientID, req.IdempotencyKey, req.RequestHash = "counter-1", "key-race", []byte("hash-a")

	// The first issuance is held inside its signature.
	gate := make(chan struct{})
	ck.gate.Store(&gate)
	before := ck.n.Load()
	const n = 8
	serials := make([]ca.Serial, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got, err := h.auth.Issue(ctx, req)
			if err != nil {
				t.Error(err)
				return
			}
			serials[i] = got.Record.Serial
		})
	}
	// One more gives up while the first is held.
	<-ck.entered
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	gaveUp := make(chan error, 1)
	go func() { _, err := h.auth.Issue(short, req); gaveUp <- err }()
	select {
	case err := <-gaveUp:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a retry that gave up waiting: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(30 * time.Second): // only a failure waits this long
		t.Error("a retry that gave up waiting did not return while the first issuance was held")
	}
	ck.gate.Store(nil)
	close(gate)
	wg.Wait()
	for _, sn := range serials[1:] {
		if sn != serials[0] {
			t.Fatalf("serials %v, want one", serials)
		}
	}
	if got := ck.n.Load() - before; got != 1 {
		t.Errorf("%d signatures by the issuer key for %d requests with one idempotency key, want 1", got, n)
	}
	if recs, _ := h.st.CertificatesByCard(ctx, "CARD-RACE"); len(recs) != 1 {
		t.Fatalf("%d certificates on the card, want 1", len(recs))
	}
}

// twoNodes are two CA nodes on one store and one set of issuer keys,
// counted: catest's Authority and a second one.
type twoNodes struct {
	ck    countingKeys
	nodes [2]*ca.Authority
}

func newTwoNodes(t *testing.T) (*catest.CA, *twoNodes) {
	t.Helper()
	ck := newCountingKeys(t)
	c := catest.New(t, catest.Options{Keys: ck})
	var iks []ca.IssuerKey
	for _, ik := range c.Keyring.Issuers {
		if ik.Issuer.Generation == 1 {
			iks = append(iks, ik)
		}
	}
	other, err := ca.NewAuthority(ca.AuthorityConfig{RenewalWindowMonths: 3}, ca.AuthorityDeps{
		Store: c.Store, Profiles: c.Profiles, Issuers: iks, Clock: func() time.Time { return issueNow }, Rand: rand.Reader,
		Linter: lint.Linter{}})
	if err != nil {
		t.Fatal(err)
	}
	return c, &twoNodes{ck: ck, nodes: [2]*ca.Authority{c.Auth[1], other}}
}

// signTogether runs issue on each node at once, holding the issuer key's
// signatures until both nodes are signing, and waits for both.
func (n *twoNodes) signTogether(issue func(i int, node *ca.Authority)) {
	gate := make(chan struct{})
	n.ck.gate.Store(&gate)
	var wg sync.WaitGroup
	for i, node := range n.nodes {
		wg.Go(func() { issue(i, node) })
	}
	<-n.ck.entered
	<-n.ck.entered // both nodes are signing
	n.ck.gate.Store(nil)
	close(gate)
	wg.Wait()
}

// TestIssueIdempotentTwoNodes: two CA nodes on one store get the same
// request with the same idempotency key at once, and both sign. The store
// keeps the first; the second answers with it too and records its own
// certificate as discarded before delivery (revoked, unspecified), so that
// everything the issuer key signed is on record.
func TestIssueIdempotentTwoNodes(t *testing.T) {
	c, nodes := newTwoNodes(t)
	ctx := context.Background()
	req := request(ca.Authentication, "CARD-NODES")
	req.ClientID, req.IdempotencyKey, req.RequestHash = "counter-1", "key-nodes", []byte("hash-a")
	var got [2]ca.Issued
	nodes.signTogether(func(i int, node *ca.Authority) {
		var err error
		if got[i], err = node.Issue(ctx, req); err != nil {
			t.Error(err)
		}
	})
	if got[0].Record.Serial != got[1].Record.Serial || got[0].Replayed == got[1].Replayed {
		t.Fatalf("nodes answered %s (replayed %v) and %s (replayed %v), want one serial, one replayed",
			got[0].Record.Serial, got[0].Replayed, got[1].Record.Serial, got[1].Replayed)
	}
	recs, err := c.Store.CertificatesByCard(ctx, "CARD-NODES")
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d certificates on record for the card (%v), want the issued one and the discarded one", len(recs), err)
	}
	for _, r := range recs {
		switch {
		case r.Serial == got[0].Record.Serial:
			if r.Status != ca.Good {
				t.Errorf("the issued certificate is %v", r.Status)
			}
		case r.Status != ca.Revoked || r.Reason != ca.Unspecified || len(r.DER) == 0:
			t.Errorf("the discarded certificate %s is %v %v", r.Serial.Hex(), r.Status, r.Reason)
		}
	}
	discards := 0
	if err := c.Store.AuditEntries(ctx, func(e audit.Entry) error {
		if e.Action == audit.ActionCertificateDiscard {
			discards++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if discards != 1 {
		t.Errorf("%d certificate.discard audit entries, want 1", discards)
	}
}

// TestCardRaceTwoNodes: two nodes issue onto one new card for two
// residents at the same moment. Both pass the check before signing; the
// store's transaction lets one in and refuses the other (ErrCardInUse), whose
// signed certificate goes on record as discarded, never handed out.
func TestCardRaceTwoNodes(t *testing.T) {
	c, nodes := newTwoNodes(t)
	ctx := context.Background()
	var (
		got  [2]ca.Issued
		errs [2]error
	)
	nodes.signTogether(func(i int, node *ca.Authority) {
		req := request(ca.Authentication, "CARD-RACE")
		req.ResidentID = fmt.Sprintf("R-RACE-%d", i)
		req.PublicKey = catest.CardKeyFor(req.ResidentID).Public()
		got[i], errs[i] = node.Issue(ctx, req)
	})
	won := 0
	if errs[1] == nil {
		won = 1
	}
	if errs[won] != nil || !errors.Is(errs[1-won], ca.ErrCardInUse) {
		t.Fatalf("the nodes answered %v and %v, want one certificate and one ErrCardInUse", errs[0], errs[1])
	}
	recs, err := c.Store.CertificatesByCard(ctx, "CARD-RACE")
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d certificates on record for the card (%v), want the issued one and the discarded one", len(recs), err)
	}
	for _, r := range recs {
		switch {
		case r.Serial == got[won].Record.Serial:
			if r.Status != ca.Good {
				t.Errorf("the issued certificate is %v", r.Status)
			}
		case r.Status != ca.Revoked || r.Reason != ca.Unspecified || r.ResidentID != fmt.Sprintf("R-RACE-%d", 1-won):
			t.Errorf("the discarded certificate %s is %v %v for %s", r.Serial.Hex(), r.Status, r.Reason, r.ResidentID)
		}
	}
	var why []string
	if err := c.Store.AuditEntries(ctx, func(e audit.Entry) error {
		if e.Action == audit.ActionCertificateDiscard {
			var d struct{ Why string }
			if err := json.Unmarshal(e.Detail, &d); err != nil {
				return err
			}
			why = append(why, d.Why)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"another issuance onto the card was stored first"}; !slices.Equal(why, want) {
		t.Errorf("discard audit entries say %q, want %q", why, want)
	}
}

// TestProxyRetryAfterFailedAttempt: a proxy issuance fails at the
// signature, and its retry (same idempotency key) arrives while it is
// failing. The retry waits for the failed attempt to release the proxy
// answer, issues, and keeps the answer used: another request with the same
// answer is refused.
func TestProxyRetryAfterFailedAttempt(t *testing.T) {
	ck := newCountingKeys(t)
	var now atomic.Int64
	now.Store(issueNow.Unix())
	clock := func() time.Time { return time.Unix(now.Load(), 0).UTC() }
	c := catest.New(t, catest.Options{Keys: ck, Clock: clock})
	auth := c.Auth[1]
	l, err := ca.NewLifecycle(ca.LifecycleConfig{RenewalWindowMonths: 3}, ca.LifecycleDeps{Store: c.Store, Authority: auth,
		Clock: clock, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := request(ca.Signature, "CARD-PROXY")
	req.ClientID, req.IdempotencyKey, req.RequestHash = "counter-1", "key-proxy", []byte("hash-a")
	app, code, err := l.OpenProxyApplication(ctx, ca.ProxyRequest{ResidentID: req.ResidentID, Municipality: req.Municipality,
		CardID: req.CardID, Types: []ca.CertType{ca.Signature}, Actor: req.Actor})
	if err != nil {
		t.Fatal(err)
	}
	now.Add(24 * 60 * 60) // the answer is accepted from the next day
	answer := &ca.ProxyAnswer{ApplicationID: app.ID, AnswerCode: code}

	gate := make(chan struct{})
	ck.gate.Store(&gate)
	ck.fail.Store(true)
	first := make(chan error, 1)
	go func() { _, err := l.Issue(ctx, req, answer); first <- err }()
	<-ck.entered // the first attempt is signing, and will fail
	type result struct {
		got ca.Issued
		err error
	}
	retry := make(chan result, 1)
	go func() { got, err := l.Issue(ctx, req, answer); retry <- result{got, err} }()
	// The retry waits for the first attempt; only a failure waits 30 s.
	giveUp := time.After(30 * time.Second)
	for auth.ClaimWaiters() == 0 {
		select {
		case r := <-retry:
			t.Fatalf("the retry did not wait for the first attempt: %+v", r)
		case <-giveUp:
			close(gate)
			t.Fatal("the retry never waited for the first attempt")
		case <-time.After(time.Millisecond):
		}
	}
	ck.gate.Store(nil)
	close(gate)
	if err := <-first; err == nil {
		t.Fatal("the first attempt issued; its signature was to fail")
	}
	r := <-retry
	if r.err != nil {
		t.Fatalf("retry: %v", r.err)
	}
	other := req
	other.IdempotencyKey = "key-proxy-2"
	if _, err := l.Issue(ctx, other, answer); !errors.Is(err, ca.ErrProxyAnswerUsed) {
		t.Fatalf("the answer again, under another key: %v, want ErrProxyAnswerUsed", err)
	}
}

// TestIssueIssuerExpiring: no certificate outlives its issuer. With an
// issuer generation that has two years left, a five-year certificate is
// refused (ErrIssuerExpiring) before the issuer key signs anything, and
// nothing is stored; one that the card's expiry ends within the two years
// is issued.
func TestIssueIssuerExpiring(t *testing.T) {
	keys := newCountingKeys(t)
	c := catest.New(t, catest.Options{Keys: keys, IssuerValidity: 2 * 365 * 24 * time.Hour})
	h := &harness{st: c.Store, kr: c.Keyring, auth: c.Auth[1], roots: c.Roots}
	before := keys.n.Load()
	req := request(ca.Authentication, "CARD-LATE")
	_, err := h.auth.Issue(context.Background(), req)
	if !errors.Is(err, ca.ErrIssuerExpiring) {
		t.Fatalf("a certificate past its issuer: %v, want ErrIssuerExpiring", err)
	}
	if n := keys.n.Load() - before; n != 0 {
		t.Fatalf("the issuer key made %d signatures for a refused certificate", n)
	}
	if recs, err := h.st.CertificatesByCard(context.Background(), req.CardID); err != nil || len(recs) != 0 {
		t.Fatalf("a refused issuance stored %d records (%v)", len(recs), err)
	}
	req.CardExpires = ca.Date{Year: 2027, Month: time.November, Day: 24}
	got, err := h.auth.Issue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if cert := h.check(t, got); !cert.NotAfter.Before(h.kr.Current[0].Cert.NotAfter) {
		t.Fatalf("issued until %v, past the issuer's %v", cert.NotAfter, h.kr.Current[0].Cert.NotAfter)
	}
}
