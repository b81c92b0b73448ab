package api_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jpkica/jpkica/api"
	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/internal/catest"
	"golang.org/x/time/rate"
)

var cardKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func csrPEM(t testing.TB, key any) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "card"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

var goodCSR = sync.OnceValue(func() string { return csrPEM(&testing.T{}, cardKey()) })

var cardCSRs sync.Map // card ID -> CSR PEM

// csrFor is a CSR of the card's own key (catest.CardKeyFor): a key is one
// card's.
func csrFor(t testing.TB, card string) string {
	if c, ok := cardCSRs.Load(card); ok {
		return c.(string)
	}
	c, _ := cardCSRs.LoadOrStore(card, csrPEM(t, catest.CardKeyFor(card)))
	return c.(string)
}

// weakCardKey is an RSA-2048 key whose primes are neighbours, as a flawed
// chip might make: Fermat's method factors it at once. crypto/rsa refuses
// to sign with such a key (FIPS 186-5 asks |p-q| > 2^924), so it signs by
// hand: EMSA-PKCS1-v1_5 over SHA-256 (RFC 8017 section 9.2), then m^d mod n.
type weakCardKey struct {
	pub rsa.PublicKey
	d   *big.Int
}

func newWeakCardKey(t testing.TB) weakCardKey {
	t.Helper()
	p, err := rand.Prime(rand.Reader, 1024) // its top two bits set: p*q has 2048 bits
	if err != nil {
		t.Fatal(err)
	}
	q := new(big.Int).Add(p, big.NewInt(2))
	for !q.ProbablyPrime(20) {
		q.Add(q, big.NewInt(2))
	}
	one := big.NewInt(1)
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	k := weakCardKey{pub: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}, d: new(big.Int).ModInverse(big.NewInt(65537), phi)}
	if k.d == nil {
		t.Skip("65537 divides (p-1)(q-1): a rare draw")
	}
	return k
}

func (k weakCardKey) Public() crypto.PublicKey { return &k.pub }

func (k weakCardKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.SHA256 {
		return nil, fmt.Errorf("weak card key: %v, want SHA-256", opts.HashFunc())
	}
	digestInfo := append([]byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}, digest...)
	em := make([]byte, (k.pub.N.BitLen()+7)/8)
	em[1] = 1
	for i := 2; i < len(em)-len(digestInfo)-1; i++ {
		em[i] = 0xff
	}
	copy(em[len(em)-len(digestInfo):], digestInfo)
	sig := new(big.Int).Exp(new(big.Int).SetBytes(em), k.d, k.pub.N)
	return sig.FillBytes(make([]byte, len(em))), nil
}

func resident(id, municipality string) wire.Resident {
	return wire.Resident{ID: id, Municipality: municipality, Name: "和歌山　太郎", BirthDate: "1990-05-02", Sex: "male",
		Address: "和歌山県和歌山市七番丁２３番地"}
}

func issueBody(typ, card, res, municipality string) wire.IssueRequest {
	return wire.IssueRequest{Type: typ, CSR: csrFor(&testing.T{}, card), Card: wire.Card{ID: card, Expires: "2036-05-02"},
		Resident: resident(res, municipality)}
}

type caller struct {
	t      testing.TB
	s      *apitest.Server
	client *http.Client
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// apiError is the answer's JSON error, empty if it has none.
func (a answer) apiError() wire.Error {
	var e wire.ErrorBody
	json.Unmarshal(a.body, &e)
	return e.Error
}

func (a answer) code() string    { return a.apiError().Code }
func (a answer) message() string { return a.apiError().Message }

func (c caller) do(method, path string, body any, header ...string) answer {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.s.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func (c caller) issue(body wire.IssueRequest, key string) (answer, wire.Issued) {
	c.t.Helper()
	a := c.do("POST", "/v1/certificates", body, "Idempotency-Key", key)
	var out wire.Issued
	if a.status == http.StatusCreated {
		if err := json.Unmarshal(a.body, &out); err != nil {
			c.t.Fatal(err)
		}
	}
	return a, out
}

type env struct {
	s        *apitest.Server
	counter  caller // 302015
	other    caller // counter of 131016
	register caller
	lossline caller
	admin    caller
	anon     caller
}

func newEnv(t testing.TB, opts apitest.Options) *env {
	s := apitest.New(t, opts)
	mk := func(role, m string) caller {
		cert, _ := s.Enrol(t, role, m, "t-"+role+m, 365*24*time.Hour)
		return caller{t: t, s: s, client: s.Client(&cert)}
	}
	return &env{s: s, counter: mk("counter", "302015"), other: mk("counter", "131016"), register: mk("register", ""),
		lossline: mk("lossline", ""), admin: mk("admin", ""), anon: caller{t: t, s: s, client: s.Client(nil)}}
}

func auditCount(t testing.TB, s *apitest.Server) int64 {
	var v audit.Verifier
	if err := s.Store.AuditEntries(context.Background(), v.Next); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	return v.Count()
}

// TestRoles runs every call as every role: allowed ones succeed, the others
// are refused with the documented status and code and change nothing.
func TestRoles(t *testing.T) {
	e := newEnv(t, apitest.Options{})
	n := 0
	// fresh issues both certificates for a new resident of 302015 directly
	// through the Authority and returns the resident, card and serials.
	fresh := func() (res, card string, sig, auth string) {
		n++
		res, card = fmt.Sprintf("R%d", n), fmt.Sprintf("C%d", n)
		for _, typ := range []ca.CertType{ca.Authentication, ca.Signature} {
			got, err := e.s.Auth.Issue(context.Background(), ca.IssueRequest{Type: typ, PublicKey: catest.CardKeyFor(card).Public(),
				CardID: card, CardExpires: ca.Date{Year: 2036, Month: 5, Day: 2}, ResidentID: res, Municipality: "302015",
				Facts: ca.Facts{Name: "和歌山　太郎", BirthDate: ca.Date{Year: 1990, Month: 5, Day: 2}, Sex: ca.Male,
					Address: "和歌山県和歌山市七番丁２３番地"}, Actor: "admin:test"})
			if err != nil {
				t.Fatal(err)
			}
			if typ == ca.Signature {
				sig = got.Record.Serial.Hex()
			} else {
				auth = got.Record.Serial.Hex()
			}
		}
		return
	}
	type call struct {
		name string
		run  func(c caller) answer
		ok   int
		who  []string // roles allowed
	}
	// hidden: another municipality's counter gets the answer of an ID that
	// nobody holds (200, an empty list), not a refusal that would tell it
	// the ID exists.
	hidden := map[string]bool{"list by card": true, "list by resident": true}
	calls := []call{
		{"issue", func(c caller) answer {
			res, card, _, _ := fresh()
			a, _ := c.issue(issueBody("signature", card, res, "302015"), "k-"+res)
			return a
		}, 201, []string{"counter", "admin"}},
		{"read", func(c caller) answer { _, _, sig, _ := fresh(); return c.do("GET", "/v1/certificates/"+sig, nil) }, 200,
			[]string{"counter", "admin"}},
		{"list by card", func(c caller) answer {
			_, card, _, _ := fresh()
			return c.do("GET", "/v1/certificates?card="+card, nil)
		},
			200, []string{"counter", "admin"}},
		{"list by resident", func(c caller) answer {
			res, _, _, _ := fresh()
			return c.do("GET", "/v1/certificates?resident="+res, nil)
		}, 200, []string{"counter", "admin"}},
		{"revoke", func(c caller) answer {
			_, _, sig, _ := fresh()
			return c.do("POST", "/v1/certificates/"+sig+"/revoke", map[string]string{"reason": "keyCompromise"})
		}, 200, []string{"counter", "admin"}},
		{"hold", func(c caller) answer { _, card, _, _ := fresh(); return c.do("POST", "/v1/cards/"+card+"/hold", nil) }, 200,
			[]string{"lossline", "admin"}},
		{"event", func(c caller) answer {
			res, _, _, _ := fresh()
			return c.do("POST", "/v1/residents/"+res+"/events", map[string]string{"kind": "facts_changed", "effective": "2026-11-25"})
		}, 200, []string{"register", "admin"}},
		{"proxy application", func(c caller) answer {
			res, card, _, _ := fresh()
			return c.do("POST", "/v1/proxy-applications", map[string]any{"resident": resident(res, "302015"),
				"card": wire.Card{ID: card, Expires: "2036-05-02"}, "types": []string{"signature"}})
		}, 201, []string{"counter", "admin"}},
		{"renewal notices", func(c caller) answer {
			return c.do("GET", "/v1/renewal-notices?municipality=302015&on=2031-02-02", nil)
		}, 200, []string{"counter", "admin"}},
		{"audit", func(c caller) answer { return c.do("GET", "/v1/audit?limit=5", nil) }, 200, []string{"admin"}},
	}
	roles := []struct {
		name   string
		c      caller
		status int
		code   string
	}{
		{"counter", e.counter, 0, ""},
		{"counter-131016", e.other, 403, wire.CodeWrongMunicipality},
		{"register", e.register, 0, ""},
		{"lossline", e.lossline, 0, ""},
		{"admin", e.admin, 0, ""},
		{"no certificate", e.anon, 401, wire.CodeClientCertRequired},
	}
	for _, cl := range calls {
		for _, r := range roles {
			t.Run(cl.name+"/"+r.name, func(t *testing.T) {
				allowed := false
				for _, w := range cl.who {
					allowed = allowed || w == r.name || (w == "counter" && r.name == "counter-131016")
				}
				wantStatus, wantCode := cl.ok, ""
				switch {
				case r.name == "no certificate":
					wantStatus, wantCode = 401, wire.CodeClientCertRequired
				case !allowed:
					wantStatus, wantCode = 403, wire.CodeRoleForbidden
				case hidden[cl.name] && r.name == "counter-131016":
				case r.status != 0:
					wantStatus, wantCode = r.status, r.code
				}
				before := int64(-1)
				if wantStatus >= 400 {
					before = auditCount(t, e.s)
				}
				r.c.t = t
				got := cl.run(r.c)
				if got.status != wantStatus || got.code() != wantCode {
					t.Fatalf("%s as %s: %d %.300s, want %d %q", cl.name, r.name, got.status, got.body, wantStatus, wantCode)
				}
				if hidden[cl.name] && r.name == "counter-131016" && string(got.body) != "{\"certificates\":[]}\n" {
					t.Fatalf("%s as %s: %s, want the answer of an unknown ID", cl.name, r.name, got.body)
				}
				if before >= 0 {
					// fresh() wrote two issuances (and their audit entries) before the call.
					if after := auditCount(t, e.s); after != before+2 && after != before {
						t.Fatalf("a refused call wrote to the audit log: %d entries, then %d", before, after)
					}
				}
			})
		}
	}
}

func TestIdempotency(t *testing.T) {
	e := newEnv(t, apitest.Options{})
	body := issueBody("authentication", "CARD-I", "RES-I", "302015")
	a1, got1 := e.counter.issue(body, "key-1")
	if a1.status != 201 {
		t.Fatalf("first: %d %s", a1.status, a1.body)
	}
	a2, got2 := e.counter.issue(body, "key-1")
	if a2.status != 201 || got2.Serial != got1.Serial || a2.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d serial %s (first %s)", a2.status, got2.Serial, got1.Serial)
	}
	// The same body with whitespace is the same request.
	raw, _ := json.MarshalIndent(body, "", "   ")
	a3 := e.counter.do("POST", "/v1/certificates", raw, "Idempotency-Key", "key-1")
	if a3.status != 201 || !bytes.Contains(a3.body, []byte(got1.Serial)) {
		t.Fatalf("reformatted retry: %d %s", a3.status, a3.body)
	}
	other := body
	other.Card.Expires = "2035-05-02"
	if a, _ := e.counter.issue(other, "key-1"); a.status != 409 || a.code() != wire.CodeIdempotencyKeyReused {
		t.Fatalf("other body, same key: %d %s", a.status, a.body)
	}
	recs, _ := e.s.Store.CertificatesByCard(context.Background(), "CARD-I")
	if len(recs) != 1 {
		t.Fatalf("%d certificates on the card, want 1", len(recs))
	}
	if a := e.counter.do("POST", "/v1/certificates", body); a.status != 400 || a.code() != wire.CodeIdempotencyKeyRequired {
		t.Fatalf("no key: %d %s", a.status, a.body)
	}
}

// TestStrictInput: each malformed request gets its status and code and
// writes nothing.
func TestStrictInput(t *testing.T) {
	backends(t, testStrictInput)
}

func testStrictInput(t *testing.T, opts apitest.Options) {
	opts.Config = api.Config{MaxBodyBytes: 8 << 10}
	e := newEnv(t, opts)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	badSig := func() string {
		block, _ := pem.Decode([]byte(goodCSR()))
		der := bytes.Clone(block.Bytes)
		der[len(der)-5] ^= 0xff
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}()
	sha1CSR := func() string {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "card"}, SignatureAlgorithm: x509.SHA1WithRSA}, catest.CardKeyFor("CARD-S"))
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	}()
	good := issueBody("signature", "CARD-S", "RES-S", "302015")
	mod := func(f func(b *wire.IssueRequest)) wire.IssueRequest { b := good; f(&b); return b }
	// edit replaces the first old in good's JSON, for bodies that a Go value
	// cannot carry.
	edit := func(old, new string) string {
		if !strings.Contains(mustJSON(good), old) {
			t.Fatalf("%q is not in the body", old)
		}
		return strings.Replace(mustJSON(good), old, new, 1)
	}
	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"unknown field", strings.Replace(mustJSON(good), `"type"`, `"colour":"red","type"`, 1), 400, wire.CodeUnknownField},
		{"not an object", `["signature"]`, 400, wire.CodeMalformedJSON},
		{"trailing data", mustJSON(good) + `{}`, 400, wire.CodeMalformedJSON},
		{"wrong field type", strings.Replace(mustJSON(good), `"adult_guardianship":false`, `"adult_guardianship":"no"`, 1), 400, wire.CodeMalformedJSON},
		{"bad type", mod(func(b *wire.IssueRequest) { b.Type = "terminal" }), 400, wire.CodeInvalidType},
		{"bad birth date", mod(func(b *wire.IssueRequest) { b.Resident.BirthDate = "1990-02-30" }), 400, wire.CodeInvalidDate},
		{"bad card expiry", mod(func(b *wire.IssueRequest) { b.Card.Expires = "2036/05/02" }), 400, wire.CodeInvalidDate},
		{"half-width name", mod(func(b *wire.IssueRequest) { b.Resident.Name = "Taro Wakayama" }), 400, wire.CodeInvalidFacts},
		{"address too long", mod(func(b *wire.IssueRequest) { b.Resident.Address = strings.Repeat("和", 201) }), 400, wire.CodeInvalidFacts},
		{"name too long", mod(func(b *wire.IssueRequest) {
			b.Resident.Name = "和歌山　" + strings.Repeat("太", ca.MaxNameChars-3)
		}), 400, wire.CodeInvalidFacts},
		{"name far too long", mod(func(b *wire.IssueRequest) { b.Resident.Name = "和歌山　" + strings.Repeat("太", 2000) }), 400, wire.CodeInvalidFacts},
		{"invalid UTF-8 in the name", edit("太郎", "\xff\xfe"), 400, wire.CodeMalformedJSON},
		{"invalid UTF-8 in a key", edit(`"sex"`, "\"se\xc3x\""), 400, wire.CodeMalformedJSON},
		{"lone high surrogate", edit("太郎", `\ud800`), 400, wire.CodeMalformedJSON},
		{"lone low surrogate", edit("太郎", `\udc00太`), 400, wire.CodeMalformedJSON},
		{"high surrogate before a non-surrogate", edit("太郎", `\ud842\u0041`), 400, wire.CodeMalformedJSON},
		{"surrogate in the address", edit("七番丁", `七\udfb7丁`), 400, wire.CodeMalformedJSON},
		{"duplicate key", edit(`"type":"signature"`, `"type":"signature","type":"authentication"`), 400, wire.CodeMalformedJSON},
		{"duplicate nested key", edit(`"sex":"male"`, `"sex":"male","sex":"female"`), 400, wire.CodeMalformedJSON},
		{"SHA-1 CSR", mod(func(b *wire.IssueRequest) { b.CSR = sha1CSR }), 400, wire.CodeInvalidCSR},
		{"bad sex", mod(func(b *wire.IssueRequest) { b.Resident.Sex = "m" }), 400, wire.CodeInvalidFacts},
		{"bad municipality", mod(func(b *wire.IssueRequest) { b.Resident.Municipality = "302016" }), 400, wire.CodeInvalidMunicipality},
		{"not a CSR", mod(func(b *wire.IssueRequest) { b.CSR = "hello" }), 400, wire.CodeInvalidCSR},
		{"CSR signature", mod(func(b *wire.IssueRequest) { b.CSR = badSig }), 400, wire.CodeCSRSignature},
		{"ECDSA key", mod(func(b *wire.IssueRequest) { b.CSR = csrPEM(t, ec) }), 400, wire.CodeInvalidCardKey},
		{"RSA-1024 key", mod(func(b *wire.IssueRequest) { b.CSR = csrPEM(t, small) }), 400, wire.CodeInvalidCardKey},
		{"weak RSA-2048 key", mod(func(b *wire.IssueRequest) { b.CSR = csrPEM(t, newWeakCardKey(t)) }), 400, wire.CodeInvalidCardKey},
		{"too large", mod(func(b *wire.IssueRequest) { b.Resident.Address = strings.Repeat("和", 4000) }), 413, wire.CodeBodyTooLarge},
		{"under 15 signature", mod(func(b *wire.IssueRequest) { b.Resident.BirthDate = "2015-01-01" }), 422, wire.CodeNotEligible},
		{"card expired", mod(func(b *wire.IssueRequest) { b.Card.Expires = "2025-01-01" }), 422, wire.CodeNotEligible},
		{"other municipality", mod(func(b *wire.IssueRequest) { b.Resident.Municipality = "131016" }), 403, wire.CodeWrongMunicipality},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := auditCount(t, e.s)
			body := c.body
			if s, ok := body.(string); ok {
				body = []byte(s)
			}
			e.counter.t = t
			a := e.counter.do("POST", "/v1/certificates", body, "Idempotency-Key", fmt.Sprintf("strict-%d", i))
			if a.status != c.status || a.code() != c.code {
				t.Fatalf("%d %s, want %d %s", a.status, a.body, c.status, c.code)
			}
			var eb wire.ErrorBody
			if err := json.Unmarshal(a.body, &eb); err != nil || eb.Error.Message == "" {
				t.Fatalf("error body %s", a.body)
			}
			// Messages speak of the request, never of the server's Go types.
			for _, goTerm := range []string{"Go struct", "Go value", "*ecdsa.", "*rsa.", "json: ", "wire."} {
				if strings.Contains(eb.Error.Message, goTerm) {
					t.Errorf("message %q names %q", eb.Error.Message, goTerm)
				}
			}
			if after := auditCount(t, e.s); after != before {
				t.Fatalf("audit log grew from %d to %d", before, after)
			}
		})
	}
	if got := counterValue(t, e.s, "jpkica_api_weak_card_keys_total"); got != 1 {
		t.Errorf("jpkica_api_weak_card_keys_total = %v after one weak key, want 1", got)
	}
	if a := e.counter.do("POST", "/v1/certificates", []byte(mustJSON(good)), "Idempotency-Key", "x", "Content-Type", "text/plain"); a.status != 415 {
		t.Fatalf("text/plain body: %d %s", a.status, a.body)
	}
	if a := e.counter.do("DELETE", "/v1/certificates", nil); a.status != 405 || a.code() != wire.CodeMethodNotAllowed {
		t.Fatalf("DELETE: %d %s", a.status, a.body)
	}
	if a := e.counter.do("GET", "/v2/x", nil); a.status != 404 || a.code() != wire.CodeRouteNotFound {
		t.Fatalf("unknown path: %d %s", a.status, a.body)
	}
	for _, p := range []string{"/v1/../v1/certificates?card=C1", "/v1/certificates/../audit", "/v1//certificates?card=C1", "/v1/certificates/./x"} {
		if a := e.counter.do("GET", p, nil); a.status != 404 || a.code() != wire.CodeRouteNotFound {
			t.Fatalf("GET %s: %d %s, want 404 route_not_found", p, a.status, a.body)
		}
	}
	if a := e.counter.do("GET", "/v1/certificates/zz", nil); a.status != 400 || a.code() != wire.CodeInvalidSerial {
		t.Fatalf("bad serial: %d %s", a.status, a.body)
	}
	if a := e.counter.do("GET", "/v1/certificates/0abc", nil); a.status != 404 || a.code() != wire.CodeNotFound {
		t.Fatalf("unknown serial: %d %s", a.status, a.body)
	}
	if a := e.register.do("POST", "/v1/residents/R1/events", map[string]string{"kind": "moved", "effective": "2026-11-25"}); a.status != 400 || a.code() != wire.CodeInvalidEventKind {
		t.Fatalf("bad event kind: %d %s", a.status, a.body)
	}
	if a := e.register.do("POST", "/v1/residents/R1/events", map[string]string{"kind": "deceased", "effective": "2026-12-25"}); a.status != 422 {
		t.Fatalf("future event: %d %s", a.status, a.body)
	}
}

// counterValue reads a counter without labels from the server's metrics.
func counterValue(t testing.TB, s *apitest.Server, name string) float64 {
	t.Helper()
	mfs, err := s.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestTerminalCertificates: unknown issuer, revoked, held and expired
// terminal certificates are refused with 401.
func TestTerminalCertificates(t *testing.T) {
	e := newEnv(t, apitest.Options{})
	path := "/v1/renewal-notices?municipality=302015&on=2026-11-25"

	// A certificate from a CA of its own, with the right names.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{Organization: []string{"counter"},
		OrganizationalUnit: []string{"302015"}, CommonName: "rogue"}, NotBefore: apitest.Start.Add(-time.Hour),
		NotAfter: apitest.Start.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	rogue := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	if a := (caller{t: t, s: e.s, client: e.s.Client(&rogue)}).do("GET", path, nil); a.status != 401 || a.code() != wire.CodeUnknownClient {
		t.Fatalf("rogue: %d %s", a.status, a.body)
	}

	cert, serial := e.s.Enrol(t, "counter", "302015", "soon-revoked", 24*time.Hour)
	c := caller{t: t, s: e.s, client: e.s.Client(&cert)}
	if a := c.do("GET", path, nil); a.status != 200 {
		t.Fatalf("before revocation: %d %s", a.status, a.body)
	}
	if a := e.admin.do("POST", "/v1/certificates/"+serial.Hex()+"/revoke", map[string]string{"reason": "keyCompromise"}); a.status != 200 {
		t.Fatalf("admin revoking a terminal: %d %s", a.status, a.body)
	}
	if a := c.do("GET", path, nil); a.status != 401 || a.code() != wire.CodeClientRevoked {
		t.Fatalf("revoked terminal: %d %s", a.status, a.body)
	}

	cert2, _ := e.s.Enrol(t, "counter", "302015", "short-lived", 2*time.Hour)
	c2 := caller{t: t, s: e.s, client: e.s.Client(&cert2)}
	e.s.Clock.Set(apitest.Start.Add(3 * time.Hour))
	if a := c2.do("GET", path, nil); a.status != 401 || a.code() != wire.CodeClientExpired {
		t.Fatalf("expired terminal: %d %s", a.status, a.body)
	}
	// A counter may not revoke terminal certificates.
	_, s3 := e.s.Enrol(t, "counter", "302015", "third", 24*time.Hour)
	if a := e.counter.do("POST", "/v1/certificates/"+s3.Hex()+"/revoke", map[string]string{"reason": "keyCompromise"}); a.status != 403 {
		t.Fatalf("counter revoking a terminal: %d %s", a.status, a.body)
	}
	// A counter may not use the reasons reserved to admin.
	e.s.Clock.Set(apitest.Start)
	_, got := e.counter.issue(issueBody("authentication", "CARD-T", "RES-T", "302015"), "t-1")
	if a := e.counter.do("POST", "/v1/certificates/"+got.Serial+"/revoke", map[string]string{"reason": "cACompromise"}); a.status != 403 || a.code() != wire.CodeReasonForbidden {
		t.Fatalf("counter with cACompromise: %d %s", a.status, a.body)
	}
	if a := e.counter.do("POST", "/v1/certificates/"+got.Serial+"/revoke", map[string]string{"reason": "certificateHold"}); a.status != 400 || a.code() != wire.CodeInvalidReason {
		t.Fatalf("revoke with certificateHold: %d %s", a.status, a.body)
	}
	if a := e.counter.do("POST", "/v1/certificates/"+got.Serial+"/revoke", map[string]string{"reason": "unspecified"}); a.status != 200 {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	if a := e.counter.do("POST", "/v1/certificates/"+got.Serial+"/revoke", map[string]string{"reason": "unspecified"}); a.status != 409 || a.code() != wire.CodeAlreadyRevoked {
		t.Fatalf("revoke twice: %d %s", a.status, a.body)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, apitest.Options{Config: api.Config{RateLimit: rate.Every(time.Hour), RateBurst: 2}})
	path := "/v1/renewal-notices?municipality=302015&on=2026-11-25"
	for i := range 2 {
		if a := e.counter.do("GET", path, nil); a.status != 200 {
			t.Fatalf("request %d: %d", i, a.status)
		}
	}
	a := e.counter.do("GET", path, nil)
	if a.status != 429 || a.code() != wire.CodeRateLimited || a.header.Get("Retry-After") == "" {
		t.Fatalf("third request: %d %s Retry-After %q", a.status, a.body, a.header.Get("Retry-After"))
	}
	// Another client has its own bucket.
	if a := e.admin.do("GET", path, nil); a.status != 200 {
		t.Fatalf("admin: %d", a.status)
	}
}

func TestProxyApplication(t *testing.T) {
	e := newEnv(t, apitest.Options{})
	res := resident("RES-P", "302015")
	a := e.counter.do("POST", "/v1/proxy-applications", map[string]any{"resident": res,
		"card": wire.Card{ID: "CARD-P", Expires: "2036-05-02"}, "types": []string{"signature", "authentication"}})
	if a.status != 201 {
		t.Fatalf("open: %d %s", a.status, a.body)
	}
	var app wire.ProxyApplicationResponse
	json.Unmarshal(a.body, &app)
	if app.NotBefore != "2026-11-25T15:00:00Z" { // 2026-11-26 00:00 JST
		t.Fatalf("not_before %s", app.NotBefore)
	}
	body := issueBody("signature", "CARD-P", "RES-P", "302015")
	body.Proxy = &wire.ProxyAnswer{ApplicationID: app.ApplicationID, AnswerCode: app.InquiryCode}
	if a, _ := e.counter.issue(body, "p-1"); a.status != 422 || a.code() != wire.CodeNotEligible {
		t.Fatalf("same day: %d %s", a.status, a.body)
	}
	e.s.Clock.Set(apitest.Start.Add(24 * time.Hour))
	wrong := body
	wrong.Proxy = &wire.ProxyAnswer{ApplicationID: app.ApplicationID, AnswerCode: "WRONG"}
	if a, _ := e.counter.issue(wrong, "p-2"); a.status != 422 {
		t.Fatalf("wrong answer: %d %s", a.status, a.body)
	}
	otherCard := body
	otherCard.Card.ID = "CARD-X"
	if a, _ := e.counter.issue(otherCard, "p-3"); a.status != 422 {
		t.Fatalf("another card: %d %s", a.status, a.body)
	}
	a1, got := e.counter.issue(body, "p-4")
	if a1.status != 201 {
		t.Fatalf("next day: %d %s", a1.status, a1.body)
	}
	if a, again := e.counter.issue(body, "p-4"); a.status != 201 || again.Serial != got.Serial {
		t.Fatalf("retry: %d %s", a.status, a.body)
	}
	if a, _ := e.counter.issue(body, "p-5"); a.status != 409 || a.code() != wire.CodeProxyAnswerUsed {
		t.Fatalf("second use: %d %s", a.status, a.body)
	}
	// The other type of the same application is still open.
	auth := body
	auth.Type = "authentication"
	if a, _ := e.counter.issue(auth, "p-6"); a.status != 201 {
		t.Fatalf("authentication by proxy: %d %s", a.status, a.body)
	}
}

// TestGoneResident: after the register reports a resident deceased, their
// certificates are revoked, and a counter's new issuance for them is a 422
// (the certificate signed for it is on record as discarded, never handed
// out), as is a proxy application; after a "registered" event, issuance
// resumes.
func TestGoneResident(t *testing.T) {
	e := newEnv(t, apitest.Options{})
	if a, _ := e.counter.issue(issueBody("authentication", "CARD-D", "RES-D", "302015"), "d-1"); a.status != 201 {
		t.Fatalf("issue: %d %s", a.status, a.body)
	}
	a := e.register.do("POST", "/v1/residents/RES-D/events", map[string]string{"kind": "deceased", "effective": "2026-11-25"})
	var changed struct{ Certificates []wire.Certificate }
	if json.Unmarshal(a.body, &changed); a.status != 200 || len(changed.Certificates) != 1 || changed.Certificates[0].Reason != "cessationOfOperation" {
		t.Fatalf("death: %d %s", a.status, a.body)
	}
	if a, _ := e.counter.issue(issueBody("authentication", "CARD-D2", "RES-D", "302015"), "d-2"); a.status != 422 || a.code() != wire.CodeNotEligible {
		t.Fatalf("issuance for a dead resident: %d %s, want 422 not_eligible", a.status, a.body)
	}
	if a := e.counter.do("POST", "/v1/proxy-applications", map[string]any{"resident": resident("RES-D", "302015"),
		"card": wire.Card{ID: "CARD-D2", Expires: "2036-05-02"}, "types": []string{"authentication"}}); a.status != 422 || a.code() != wire.CodeNotEligible {
		t.Fatalf("proxy application for a dead resident: %d %s, want 422 not_eligible", a.status, a.body)
	}
	recs, err := e.s.Store.CertificatesByCard(context.Background(), "CARD-D2")
	if err != nil || len(recs) != 1 || recs[0].Status != ca.Revoked || recs[0].Reason != ca.Unspecified {
		t.Fatalf("the refused issuance's certificate on record: %v %+v, want one revoked, unspecified", err, recs)
	}
	if a := e.register.do("POST", "/v1/residents/RES-D/events", map[string]string{"kind": "registered", "effective": "2026-11-25"}); a.status != 200 {
		t.Fatalf("registered: %d %s", a.status, a.body)
	}
	if a, _ := e.counter.issue(issueBody("authentication", "CARD-D3", "RES-D", "302015"), "d-3"); a.status != 201 {
		t.Fatalf("issuance after registration: %d %s", a.status, a.body)
	}
}

func TestRenewalNotices(t *testing.T) {
	e := newEnv(t, apitest.Options{})
	_, got := e.counter.issue(issueBody("authentication", "CARD-N", "RES-N", "302015"), "n-1")
	// Expires 2031-05-02 23:59:59 JST: the window opens on 2031-02-02.
	for _, c := range []struct {
		on   string
		want int
	}{{"2031-02-01", 0}, {"2031-02-02", 1}, {"2031-05-02", 1}, {"2031-05-03", 0}} {
		a := e.counter.do("GET", "/v1/renewal-notices?municipality=302015&on="+c.on, nil)
		var ns wire.RenewalNotices
		json.Unmarshal(a.body, &ns)
		if a.status != 200 || len(ns.Notices) != c.want {
			t.Fatalf("on %s: %d %s, want %d notices", c.on, a.status, a.body, c.want)
		}
		if c.want == 1 && (ns.Notices[0].Serial != got.Serial || ns.Notices[0].WindowOpens != "2031-02-02") {
			t.Fatalf("notice %+v", ns.Notices[0])
		}
	}
	a := e.counter.do("GET", "/v1/renewal-notices?municipality=302015&on=2031-03-01", nil, "Accept", "text/csv")
	if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %s", a.status, a.header.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSpace(string(a.body)), "\n")
	if len(lines) != 2 || lines[0] != strings.Join(wire.RenewalCSVHeader, ",") || !strings.HasPrefix(lines[1], got.Serial+",authentication,RES-N,CARD-N,302015,") {
		t.Fatalf("csv body:\n%s", a.body)
	}
	if a := e.other.do("GET", "/v1/renewal-notices?municipality=302015&on=2031-03-01", nil); a.status != 403 {
		t.Fatalf("other counter: %d", a.status)
	}
}

func TestAuditRead(t *testing.T) {
	e := newEnv(t, apitest.Options{})
	e.counter.issue(issueBody("authentication", "CARD-A", "RES-A", "302015"), "a-1")
	a := e.admin.do("GET", "/v1/audit?after=0&limit=1000", nil)
	var page wire.AuditPage
	if err := json.Unmarshal(a.body, &page); err != nil || a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	last := page.Entries[len(page.Entries)-1]
	if last.Action != string(audit.ActionCertificateIssue) || last.Actor != "counter:302015:t-counter302015" || page.Next != last.Seq {
		t.Fatalf("last entry %+v", last)
	}
	if bytes.Contains(a.body, []byte("和歌山")) {
		t.Fatal("the audit log carries personal data")
	}
}
