package counter_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/counter"
	"github.com/jpkica/jpkica/internal/softhsmtest"
)

// newCard makes a My Number Card out of two SoftHSM2 tokens (signature and
// user authentication) and opens it with their transport PINs logged in.
func newCard(t *testing.T) (*counter.Card, *softhsmtest.Token, string) {
	t.Helper()
	tk := softhsmtest.New(t)
	authLabel := tk.Label + "-auth"
	authPIN := "0000"
	tk.InitToken(t, authLabel, authPIN)
	card, err := counter.OpenCard(counter.CardConfig{Module: tk.Module, SignatureToken: tk.Label, AuthenticationToken: authLabel})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { card.Close() })
	if err := card.Login(ca.Signature, tk.PIN); err != nil {
		t.Fatal(err)
	}
	if err := card.Login(ca.Authentication, authPIN); err != nil {
		t.Fatal(err)
	}
	return card, tk, authPIN
}

func taro() wire.Resident {
	return wire.Resident{ID: "RES-302015-0001", Municipality: "302015", Name: "和歌山　太郎", BirthDate: "1990-05-02",
		Sex: "male", Address: "和歌山県和歌山市七番丁２３番地"}
}

func client(t *testing.T, s *apitest.Server, role, municipality string) *counter.Client {
	t.Helper()
	cert, _ := s.Enrol(t, role, municipality, role+"-"+municipality+"-1", 10*365*24*time.Hour)
	c, err := counter.NewClient(counter.ClientConfig{BaseURL: s.URL, Certificate: cert, ServerCAs: s.ServerCA})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func status(t *testing.T, c *counter.Client, serial string) (string, string) {
	t.Helper()
	rec, err := c.Certificate(context.Background(), serial)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Status, rec.Reason
}

func wantAPIError(t *testing.T, what string, err error, status int) {
	t.Helper()
	var ae *counter.APIError
	if !errors.As(err, &ae) || ae.Status != status {
		t.Fatalf("%s: %v, want API status %d", what, err, status)
	}
}

// TestEndToEnd: a counter of 302015 issues both certificates onto a
// SoftHSM2 card over mutual TLS, the card signs a document that verifies
// against the chain, and the lifecycle runs through the register, the loss
// line and a renewal; a counter of 131016 is refused at every call.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	card, tk, authPIN := newCard(t)
	s := apitest.New(t, apitest.Options{})
	wakayama := client(t, s, "counter", "302015")
	chiyoda := client(t, s, "counter", "131016")
	register := client(t, s, "register", "")
	lossline := client(t, s, "lossline", "")

	job := counter.IssueJob{Card: wire.Card{ID: "CARD-0001", Expires: "2036-05-02"}, Resident: taro(), IdempotencyKey: "visit-1",
		At: s.Clock.Now()}

	// The other municipality's counter cannot issue for this resident.
	if _, err := counter.IssueOnto(ctx, chiyoda, card, job); err == nil {
		t.Fatal("a counter of 131016 issued for a resident of 302015")
	} else {
		wantAPIError(t, "131016 issuing", err, 403)
	}

	issued, err := counter.IssueOnto(ctx, wakayama, card, job)
	if err != nil {
		t.Fatal(err)
	}
	authSerial, sigSerial := issued[0].Serial, issued[1].Serial

	// The keys are on the card and cannot leave it.
	for _, typ := range []ca.CertType{ca.Signature, ca.Authentication} {
		k, err := card.Signer(typ)
		if err != nil {
			t.Fatal(err)
		}
		sens, extr, err := card.KeyAttributes(k)
		if err != nil || !sens || extr {
			t.Fatalf("%v key: sensitive %v extractable %v (%v)", typ, sens, extr, err)
		}
	}

	// A document signed on the card verifies against the chain.
	sigCert, err := card.Certificate(ca.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if sigCert.SerialNumber.Text(16) != trimZeros(sigSerial) {
		t.Fatalf("card holds %x, issued %s", sigCert.SerialNumber, sigSerial)
	}
	if _, err := sigCert.Verify(x509.VerifyOptions{Roots: s.Roots, CurrentTime: apitest.Start.Add(time.Hour),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("signature certificate chain: %v", err)
	}
	chainRoot, _ := pem.Decode([]byte(issued[1].Chain[0]))
	if root, err := x509.ParseCertificate(chainRoot.Bytes); err != nil || sigCert.CheckSignatureFrom(root) != nil {
		t.Fatalf("the returned chain does not certify the certificate: %v", err)
	}
	doc := []byte("確定申告書 令和8年分")
	digest := sha256.Sum256(doc)
	signer, _ := card.Signer(ca.Signature)
	sig, err := signer.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(sigCert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
		t.Fatalf("document signature: %v", err)
	}

	// The resident sets the PINs; the card takes the folded signature PIN.
	if err := card.SetPIN(ca.Signature, tk.PIN, "abc123"); err != nil {
		t.Fatal(err)
	}
	if err := card.SetPIN(ca.Authentication, authPIN, "12a4"); !errors.Is(err, counter.ErrPIN) {
		t.Fatalf("a 4-character PIN with a letter: %v", err)
	}
	if err := card.SetPIN(ca.Authentication, authPIN, "1234"); err != nil {
		t.Fatal(err)
	}

	// A retried issuance with the same key returns the same serial.
	again, err := wakayama.Issue(ctx, "visit-1-authentication", wire.IssueRequest{Type: "authentication",
		CSR: csrOf(t, issued[0]), Card: job.Card, Resident: job.Resident})
	_ = again
	wantAPIError(t, "same key, new CSR", err, 409)
	replayReq := wire.IssueRequest{Type: "authentication", CSR: csrFor(t, card, ca.Authentication), Card: job.Card, Resident: job.Resident}
	first, err := wakayama.Issue(ctx, "visit-1b", replayReq)
	if err != nil {
		t.Fatal(err)
	}
	second, err := wakayama.Issue(ctx, "visit-1b", replayReq)
	if err != nil || second.Serial != first.Serial {
		t.Fatalf("retry: %v, serial %s then %s", err, first.Serial, second.Serial)
	}
	// That issuance superseded the card's first authentication certificate.
	if st, reason := status(t, wakayama, authSerial); st != "revoked" || reason != "superseded" {
		t.Fatalf("first authentication certificate: %s %s", st, reason)
	}
	authSerial = first.Serial

	// The other municipality's counter is refused at every call, and its
	// lists are those of IDs nobody holds.
	_, err = chiyoda.Certificate(ctx, sigSerial)
	wantAPIError(t, "131016 read", err, 403)
	if got, err := chiyoda.CertificatesByCard(ctx, "CARD-0001"); err != nil || len(got) != 0 {
		t.Fatalf("131016 list by card: %d certificates, %v; want none", len(got), err)
	}
	if got, err := chiyoda.CertificatesByResident(ctx, taro().ID); err != nil || len(got) != 0 {
		t.Fatalf("131016 list by resident: %d certificates, %v; want none", len(got), err)
	}
	_, err = chiyoda.Revoke(ctx, sigSerial, "keyCompromise")
	wantAPIError(t, "131016 revoke", err, 403)
	_, err = chiyoda.OpenProxyApplication(ctx, wire.ProxyApplicationRequest{Resident: taro(), Card: job.Card, Types: []string{"signature"}})
	wantAPIError(t, "131016 proxy", err, 403)
	_, err = chiyoda.RenewalNotices(ctx, "302015", ca.Date{Year: 2031, Month: 3, Day: 1})
	wantAPIError(t, "131016 notices", err, 403)
	_, err = chiyoda.Hold(ctx, "CARD-0001")
	wantAPIError(t, "131016 hold", err, 403)
	_, err = chiyoda.ResidentEvent(ctx, taro().ID, wire.EventRequest{Kind: "deceased", Effective: "2026-11-25"})
	wantAPIError(t, "131016 event", err, 403)
	if st, _ := status(t, wakayama, sigSerial); st != "good" {
		t.Fatalf("after refused calls the signature certificate is %s", st)
	}

	// The register reports a move: the signature certificate is revoked,
	// user authentication stays good.
	changed, err := register.ResidentEvent(ctx, taro().ID, wire.EventRequest{Kind: "facts_changed", Effective: "2026-11-25"})
	if err != nil || len(changed) != 1 || changed[0].Serial != sigSerial {
		t.Fatalf("address change: %v %+v", err, changed)
	}
	if st, reason := status(t, wakayama, sigSerial); st != "revoked" || reason != "affiliationChanged" {
		t.Fatalf("signature certificate after the move: %s %s", st, reason)
	}
	if st, _ := status(t, wakayama, authSerial); st != "good" {
		t.Fatalf("authentication certificate after the move: %s", st)
	}

	// New facts, new signature certificate.
	moved := taro()
	moved.Address = "和歌山県和歌山市一番丁１番地"
	s.Clock.Set(apitest.Start.Add(2 * time.Hour))
	got, err := counter.IssueOnto(ctx, wakayama, card, counter.IssueJob{Types: []ca.CertType{ca.Signature}, Card: job.Card,
		Resident: moved, IdempotencyKey: "visit-2", At: s.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	sigSerial = got[0].Serial

	// The card is lost: both certificates go on hold.
	held, err := lossline.Hold(ctx, "CARD-0001")
	if err != nil || len(held) != 2 {
		t.Fatalf("hold: %v %+v", err, held)
	}
	for _, sn := range []string{sigSerial, authSerial} {
		if st, reason := status(t, wakayama, sn); st != "on_hold" || reason != "certificateHold" {
			t.Fatalf("%s after the hold: %s %s", sn, st, reason)
		}
	}
	// Found again: the counter re-issues onto the card, which supersedes
	// the held certificates (a hold is never released).
	s.Clock.Set(apitest.Start.Add(3 * time.Hour))
	reissued, err := counter.IssueOnto(ctx, wakayama, card, counter.IssueJob{Card: job.Card, Resident: moved, IdempotencyKey: "visit-3",
		At: s.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range []string{sigSerial, authSerial} {
		if st, reason := status(t, wakayama, sn); st != "revoked" || reason != "superseded" {
			t.Fatalf("%s after re-issue: %s %s", sn, st, reason)
		}
	}

	// Inside the renewal window (it opens 2031-02-02 for the 2031-05-02
	// expiry), the renewal runs to the 6th birthday after issuance.
	notices, err := wakayama.RenewalNotices(ctx, "302015", ca.Date{Year: 2031, Month: 3, Day: 1})
	if err != nil || len(notices.Notices) != 2 {
		t.Fatalf("renewal notices: %v %+v", err, notices)
	}
	s.Clock.Set(time.Date(2031, 3, 1, 1, 0, 0, 0, time.UTC))
	renewed, err := counter.IssueOnto(ctx, wakayama, card, counter.IssueJob{Card: job.Card, Resident: moved, IdempotencyKey: "visit-4",
		At: s.Clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range renewed {
		if r.NotAfter != "2036-05-02T14:59:59Z" {
			t.Fatalf("renewed %s runs to %s, want the 6th birthday 2036-05-02 23:59:59 JST", r.Type, r.NotAfter)
		}
		if len(r.Superseded) != 1 || r.Superseded[0] != reissued[i].Serial {
			t.Fatalf("renewal superseded %v, want %s", r.Superseded, reissued[i].Serial)
		}
	}
	if n, err := wakayama.RenewalNotices(ctx, "302015", ca.Date{Year: 2031, Month: 3, Day: 1}); err != nil || len(n.Notices) != 0 {
		t.Fatalf("renewed certificates still have notices: %v %+v", err, n)
	}
	onCard, _ := card.Certificate(ca.Signature)
	if onCard.SerialNumber.Text(16) != trimZeros(renewed[1].Serial) {
		t.Fatal("the card does not hold the renewed signature certificate")
	}
}

func trimZeros(hex string) string {
	for len(hex) > 1 && hex[0] == '0' {
		hex = hex[1:]
	}
	return hex
}

// csrOf returns a CSR that differs from the one that made issued (a fresh
// software key), to show the same key with another body is refused.
func csrOf(t *testing.T, _ wire.Issued) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := counter.CSR(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func csrFor(t *testing.T, card *counter.Card, typ ca.CertType) string {
	t.Helper()
	k, err := card.GenerateKey(typ)
	if err != nil {
		t.Fatal(err)
	}
	s, err := counter.CSR(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
