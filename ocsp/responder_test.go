package ocsp_test

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ocsp"
)

// testServer is where a test responder listens.
type testServer struct {
	URL  string
	Addr string
}

// memServer is a responder over a memSource with certificates 1..n good,
// served by net/http.
func memServer(t testing.TB, n int, cfg ocsp.Config) (*memSource, *ocsp.Presigner, *testServer) {
	return memServerOn(t, n, cfg, false)
}

// memServerOn serves by net/http, or by fasthttp when fast is set.
func memServerOn(t testing.TB, n int, cfg ocsp.Config, fast bool) (*memSource, *ocsp.Presigner, *testServer) {
	t.Helper()
	src := newMemSource()
	pki := testPKI()
	pki.signer.fail.Store(false)
	for i := 1; i <= n; i++ {
		r, _ := pki.leaf(t, int64(i))
		src.set(r)
	}
	p := startPresigner(t, src, pki.issuers(), cfg)
	if fast {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fs := ocsp.NewResponder(p, "/ocsp/").NewFastServer()
		fs.ReadTimeout, fs.WriteTimeout = 3*time.Second, 3*time.Second
		go fs.Serve(ln)
		t.Cleanup(func() { fs.Shutdown() })
		return src, p, &testServer{URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String()}
	}
	srv := httptest.NewUnstartedServer(ocsp.NewResponder(p, "/ocsp/").Guard(http.NotFoundHandler()))
	// The timeouts `jpkica serve` uses.
	srv.Config.ReadHeaderTimeout = 2 * time.Second
	srv.Config.ReadTimeout = 3 * time.Second
	srv.Config.WriteTimeout = 3 * time.Second
	srv.Start()
	t.Cleanup(srv.Close)
	return src, p, &testServer{URL: srv.URL, Addr: srv.Listener.Addr().String()}
}

func request(t testing.TB, serial int64, h crypto.Hash) []byte {
	t.Helper()
	return testPKI().request(t, serial, h)
}

// request is a DER OCSP request for a certificate of m's issuer.
func (pki memPKI) request(t testing.TB, serial int64, h crypto.Hash) []byte {
	t.Helper()
	_, cert := pki.leaf(t, serial)
	req, err := xocsp.CreateRequest(cert, pki.issuer, &xocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func post(t testing.TB, u string, body []byte) *http.Response {
	t.Helper()
	resp, err := http.Post(u, "application/ocsp-request", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// errorStatus is the OCSP status of an unsuccessful response, or -1.
func errorStatus(b []byte) int {
	if len(b) == 5 && b[0] == 0x30 && b[1] == 3 && b[2] == 0x0a && b[3] == 1 {
		return int(b[4])
	}
	return -1
}

func TestBadInput(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(map[bool]string{false: "net/http", true: "fasthttp"}[fast], func(t *testing.T) { testBadInput(t, fast) })
	}
}

func testBadInput(t *testing.T, fast bool) {
	_, _, srv := memServerOn(t, 3, ocsp.Config{MaxCertsPerRequest: 4, MaxBody: 100 << 10}, fast)
	good := request(t, 1, crypto.SHA1)
	many := manyCertIDs(t, 1000)
	sha512 := request(t, 1, crypto.SHA512)
	other := func() []byte { // a CertID whose issuer key hash is not ours
		b := bytes.Clone(good)
		i := bytes.Index(b, testPKI().leafKeyHash())
		b[i] ^= 0xff
		return b
	}()
	for _, tc := range []struct {
		name   string
		body   []byte
		status int // OCSP error status; -1 a successful response
		http   int
	}{
		{"good", good, -1, 200},
		{"empty body", nil, int(ocsp.MalformedRequest), 200},
		{"truncated DER", good[:len(good)-3], int(ocsp.MalformedRequest), 200},
		{"trailing data", append(bytes.Clone(good), 0), int(ocsp.MalformedRequest), 200},
		{"junk", []byte("GET / HTTP/1.1\r\n\r\n"), int(ocsp.MalformedRequest), 200},
		{"1000 certificates", many, int(ocsp.MalformedRequest), 200},
		{"5 certificates", manyCertIDs(t, 5), int(ocsp.MalformedRequest), 200},
		{"4 certificates", manyCertIDs(t, 4), -1, 200},
		{"SHA-512 CertID", sha512, int(ocsp.MalformedRequest), 200},
		{"issuer not served", other, int(ocsp.Unauthorized), 200},
		{"1 MB body", bytes.Repeat([]byte{0x30}, 1<<20), -2, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, srv.URL+"/ocsp", tc.body)
			b := readAll(t, resp)
			if resp.StatusCode != tc.http {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, tc.http)
			}
			if tc.http != 200 {
				return
			}
			if got := errorStatus(b); got != tc.status {
				t.Fatalf("OCSP status %d, want %d (% x)", got, tc.status, b)
			}
		})
	}
	t.Run("1 MB chunked body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ocsp", io.LimitReader(zeros{}, 1<<20))
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("HTTP %d", resp.StatusCode)
		}
	})
	t.Run("methods", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/ocsp", bytes.NewReader(good))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("PUT: HTTP %d", resp.StatusCode)
		}
	})
	t.Run("GET junk", func(t *testing.T) {
		for _, p := range []string{"/ocsp/", "/ocsp", "/ocsp/!!!", "/ocsp/%25zz", "/ocsp/" + base64.StdEncoding.EncodeToString([]byte("junk"))} {
			resp, err := http.Get(srv.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			if b := readAll(t, resp); errorStatus(b) != int(ocsp.MalformedRequest) {
				t.Fatalf("GET %s: % x", p, b)
			}
		}
	})
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// leafKeyHash is the SHA-1 issuerKeyHash of the test issuer.
func (m memPKI) leafKeyHash() []byte {
	cert := &x509.Certificate{SerialNumber: big.NewInt(1)}
	req, _ := xocsp.CreateRequest(cert, m.issuer, nil)
	r, _ := xocsp.ParseRequest(req)
	return r.IssuerKeyHash
}

// manyCertIDs is a request for n certificates.
func manyCertIDs(t testing.TB, n int) []byte {
	one := request(t, 1, crypto.SHA1)
	// OCSPRequest { TBSRequest { requestList { Request } } }, all short
	// lengths: the Request starts at octet 6.
	if one[0] != 0x30 || one[1] >= 0x80 {
		t.Fatalf("unexpected request % x", one)
	}
	reqDER := one[6:]
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for range n {
					b.AddBytes(reqDER)
				}
			})
		})
	})
	return b.BytesOrPanic()
}

func TestGETForms(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(map[bool]string{false: "net/http", true: "fasthttp"}[fast], func(t *testing.T) { testGETForms(t, fast) })
	}
}

func testGETForms(t *testing.T, fast bool) {
	src, _, srv := memServerOn(t, 100, ocsp.Config{}, fast)
	// A serial whose request's base64 holds "//", which a ServeMux would
	// clean and redirect.
	slashes := int64(0)
	for s := int64(1000); s < 1<<24 && slashes == 0; s++ {
		if strings.Contains(base64.StdEncoding.EncodeToString(request(t, s, crypto.SHA256)), "//") {
			slashes = s
		}
	}
	if slashes == 0 {
		t.Fatal("no serial gives a request with // in its base64")
	}
	r, _ := testPKI().leaf(t, slashes)
	src.set(r)
	seen := map[string]bool{}
	for _, serial := range append(seq(1, 100), slashes) {
		der := request(t, serial, crypto.SHA256)
		enc := base64.StdEncoding.EncodeToString(der)
		want := readAll(t, post(t, srv.URL+"/ocsp", der))
		if errorStatus(want) != -1 {
			t.Fatalf("POST: % x", want)
		}
		forms := map[string]string{
			"raw":      enc,
			"escaped":  url.PathEscape(enc),
			"query":    url.QueryEscape(enc), // %2F, %2B, %3D
			"unpadded": strings.TrimRight(enc, "="),
		}
		for name, form := range forms {
			if strings.Contains(form, "//") {
				seen["//"] = true
			}
			if strings.Contains(form, "+") {
				seen["+"] = true
			}
			resp, err := http.Get(srv.URL + "/ocsp/" + form)
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, resp)
			r, err := xocsp.ParseResponse(got, testPKI().issuer)
			if err != nil || r.SerialNumber.Int64() != serial || r.Status != xocsp.Good {
				t.Fatalf("GET %s form %q: %v % x", name, form, err, got)
			}
		}
	}
	if !seen["//"] || !seen["+"] {
		t.Fatalf("forms seen: %v", seen)
	}
}

func TestCacheHeaders(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(map[bool]string{false: "net/http", true: "fasthttp"}[fast], func(t *testing.T) { testCacheHeaders(t, fast) })
	}
}

func testCacheHeaders(t *testing.T, fast bool) {
	_, _, srv := memServerOn(t, 1, ocsp.Config{MaxAge: time.Minute}, fast)
	u := srv.URL + "/ocsp/" + url.PathEscape(base64.StdEncoding.EncodeToString(request(t, 1, crypto.SHA1)))
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	r, err := xocsp.ParseResponse(body, testPKI().issuer)
	if err != nil {
		t.Fatal(err)
	}
	h := resp.Header
	if h.Get("Cache-Control") != "max-age=60, public, no-transform, must-revalidate" {
		t.Fatalf("Cache-Control %q", h.Get("Cache-Control"))
	}
	if lm, _ := http.ParseTime(h.Get("Last-Modified")); !lm.Equal(r.ProducedAt) {
		t.Fatalf("Last-Modified %q, producedAt %v", h.Get("Last-Modified"), r.ProducedAt)
	}
	if ex, _ := http.ParseTime(h.Get("Expires")); !ex.Equal(r.NextUpdate) {
		t.Fatalf("Expires %q, nextUpdate %v", h.Get("Expires"), r.NextUpdate)
	}
	etag := h.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if readAll(t, resp); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: HTTP %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodHead, u, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(body)) || len(readAll(t, resp)) != 0 {
		t.Fatalf("HEAD: HTTP %d, length %d", resp.StatusCode, resp.ContentLength)
	}
}

// TestSlowClients: connections that stall in the headers or the body do not
// block others, and the server timeouts close them.
func TestSlowClients(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(map[bool]string{false: "net/http", true: "fasthttp"}[fast], func(t *testing.T) { testSlowClients(t, fast) })
	}
}

func testSlowClients(t *testing.T, fast bool) {
	_, _, srv := memServerOn(t, 1, ocsp.Config{}, fast)
	addr := srv.Addr
	var conns []net.Conn
	for i := range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			io.WriteString(c, "POST /ocsp HTTP/1.1\r\nHost: x\r\n") // headers never end
		} else {
			io.WriteString(c, "POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0") // body never ends
		}
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 20 {
		b := readAll(t, post(t, srv.URL+"/ocsp", request(t, 1, crypto.SHA1)))
		if errorStatus(b) != -1 {
			t.Fatalf("answer while slow clients wait: % x", b)
		}
	}
	// The server's timeouts close the stalled connections.
	for _, c := range conns[:4] {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("stalled connection not closed by the server: %v", err)
		}
	}
}

func TestPipelined(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(map[bool]string{false: "net/http", true: "fasthttp"}[fast], func(t *testing.T) { testPipelined(t, fast) })
	}
}

func testPipelined(t *testing.T, fast bool) {
	_, _, srv := memServerOn(t, 3, ocsp.Config{}, fast)
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var all bytes.Buffer
	for serial := int64(1); serial <= 3; serial++ {
		body := request(t, serial, crypto.SHA1)
		all.WriteString("POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: ")
		all.WriteString(strconv.Itoa(len(body)) + "\r\n\r\n")
		all.Write(body)
		all.WriteString("GET /ocsp/" + url.PathEscape(base64.StdEncoding.EncodeToString(body)) + " HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	if _, err := c.Write(all.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i := range 6 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := xocsp.ParseResponse(readAll(t, resp), testPKI().issuer)
		if err != nil || r.SerialNumber.Int64() != int64(i/2+1) {
			t.Fatalf("pipelined answer %d: %v", i, err)
		}
	}
}

// TestFailures: when signing or the store fail, a still-valid response of
// an unchanged status is served; a changed status that cannot be signed,
// or a miss, gets tryLater.
func TestFailures(t *testing.T) {
	src, p, srv := memServer(t, 2, ocsp.Config{})
	pki := testPKI()
	rec1, _ := pki.leaf(t, 1)
	waitFor(t, func() bool { _, ok := p.Lookup("test-g1", rec1.Serial, crypto.SHA1); return ok })
	pki.signer.fail.Store(true)
	defer pki.signer.fail.Store(false)
	// A revocation cannot be signed: the good response, still within its
	// nextUpdate, is withdrawn, and the answer is tryLater, never good.
	rec1.Status, rec1.Reason, rec1.RevokedAt = ca.Revoked, ca.KeyCompromise, time.Now()
	src.set(rec1)
	p.StatusChanged(t.Context(), rec1.Serial)
	waitFor(t, func() bool { _, ok := p.Lookup("test-g1", rec1.Serial, crypto.SHA1); return !ok })
	if b := readAll(t, post(t, srv.URL+"/ocsp", request(t, 1, crypto.SHA1))); errorStatus(b) != int(ocsp.TryLater) {
		t.Fatalf("a revocation that cannot be signed: % x, want tryLater", b)
	}
	// A new certificate (a miss) cannot be signed: tryLater.
	rec3, _ := pki.leaf(t, 3)
	src.set(rec3)
	if b := readAll(t, post(t, srv.URL+"/ocsp", request(t, 3, crypto.SHA1))); errorStatus(b) != int(ocsp.TryLater) {
		t.Fatalf("miss while signing fails: % x", b)
	}
	// The store is down too: hits are still answered, misses tryLater.
	src.down.Store(true)
	if b := readAll(t, post(t, srv.URL+"/ocsp", request(t, 2, crypto.SHA1))); errorStatus(b) != -1 {
		t.Fatalf("hit while store and signer are down: % x", b)
	}
	if b := readAll(t, post(t, srv.URL+"/ocsp", request(t, 4, crypto.SHA1))); errorStatus(b) != int(ocsp.TryLater) {
		t.Fatalf("miss while the store is down: % x", b)
	}
	// Both back: the failed revocation is retried and answered.
	src.down.Store(false)
	pki.signer.fail.Store(false)
	waitFor(t, func() bool {
		it, _ := p.Lookup("test-g1", rec1.Serial, crypto.SHA1)
		return it.Status == ocsp.StatusRevoked
	})
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
