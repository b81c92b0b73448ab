package ocsp_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ocsp"
)

// TestBenchServe is the server side of the wrk load test (scripts/bench-ocsp.sh) in
// docs/benchmarks.md, not a test: it is skipped unless
// JPKICA_OCSP_BENCH_DIR is set. It pre-signs JPKICA_OCSP_BENCH_N (100000)
// certificates with a JPKICA_OCSP_BENCH_KEY ("ecdsa" or "rsa") responder
// key, writes into the directory
//
//	paths-ocsp.txt  one GET path per certificate: /ocsp/ + escaped base64 request
//	paths-root.txt  the same requests under / (for cfssl ocspserve)
//	responses.b64   every response, base64, one a line (cfssl -responses)
//	one.der         one response (the static file nginx serves)
//
// and then serves the responder, mounted on a ServeMux as `jpkica serve`
// mounts it, on JPKICA_OCSP_BENCH_ADDR (127.0.0.1:8081) for
// JPKICA_OCSP_BENCH_SECONDS (60).
func TestBenchServe(t *testing.T) {
	dir := os.Getenv("JPKICA_OCSP_BENCH_DIR")
	if dir == "" {
		t.Skip("JPKICA_OCSP_BENCH_DIR not set: no load-test server")
	}
	n := envInt("JPKICA_OCSP_BENCH_N", 100000)
	secs := envInt("JPKICA_OCSP_BENCH_SECONDS", 60)
	addr := os.Getenv("JPKICA_OCSP_BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8081"
	}
	var key crypto.Signer
	if os.Getenv("JPKICA_OCSP_BENCH_KEY") == "rsa" {
		key, _ = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	pki := newPKI(key)
	src := newMemSource()
	for i := 1; i <= n; i++ {
		r, _ := pki.leaf(t, int64(1_000_000+i))
		src.set(r)
	}
	start := time.Now()
	p := startPresigner(t, src, pki.issuers(), ocsp.Config{})
	for p.Cache().Len() < n {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("pre-signed %d responses in %v", n, time.Since(start))
	mux := http.NewServeMux()
	h := ocsp.NewResponder(p, "/ocsp/")
	mux.Handle("/ocsp", h)
	mux.Handle("/ocsp/", h)
	local := httptest.NewServer(mux)
	var pathsOCSP, pathsRoot, responses bytes.Buffer
	var one []byte
	for i := 1; i <= n; i++ {
		esc := url.QueryEscape(base64.StdEncoding.EncodeToString(pki.request(t, int64(1_000_000+i), crypto.SHA1)))
		pathsOCSP.WriteString("/ocsp/" + esc + "\n")
		pathsRoot.WriteString("/" + esc + "\n")
		resp, err := http.Get(local.URL + "/ocsp/" + esc)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if errorStatus(body) != -1 {
			t.Fatalf("serial %d: % x", i, body)
		}
		responses.WriteString(base64.StdEncoding.EncodeToString(body) + "\n")
		one = body
	}
	local.Close()
	for name, b := range map[string][]byte{"paths-ocsp.txt": pathsOCSP.Bytes(), "paths-root.txt": pathsRoot.Bytes(),
		"responses.b64": responses.Bytes(), "one.der": one} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	arena, index := p.Cache().Footprint()
	t.Logf("response %d octets; heap %d MiB; cache arena %d + index %d bytes for %d entries (%.0f bytes/entry)",
		len(one), ms.HeapAlloc>>20, arena, index, n, float64(arena+index)/float64(n))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("JPKICA_OCSP_BENCH_HTTP") == "fasthttp" {
		fs := h.NewFastServer()
		go fs.Serve(ln)
		defer fs.Shutdown()
	} else {
		go srv.Serve(ln)
		defer srv.Shutdown(context.Background())
	}
	fmt.Fprintf(os.Stderr, "READY %s %s\n", addr, os.Getenv("JPKICA_OCSP_BENCH_HTTP"))
	time.Sleep(time.Duration(secs) * time.Second)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
