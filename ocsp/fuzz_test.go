package ocsp_test

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/jpkica/jpkica/ocsp"
)

var fuzzResponder = sync.OnceValue(func() *ocsp.Responder {
	// One presigner for all fuzz runs, answering from memory.
	t := &testing.T{}
	src := newMemSource()
	for i := int64(1); i <= 3; i++ {
		r, _ := testPKI().leaf(t, i)
		src.set(r)
	}
	p, err := ocsp.NewPresigner(ocsp.Config{MaxCertsPerRequest: 4, Nonce: ocsp.NonceEcho}, ocsp.Deps{
		Issuers: testPKI().issuers(), Source: src, Clock: timeNow, Rand: randReader})
	if err != nil {
		panic(err)
	}
	return ocsp.NewResponder(p, "/ocsp/")
})

func seeds(f *testing.F) [][]byte {
	return [][]byte{
		request(f, 1, crypto.SHA1), request(f, 2, crypto.SHA256), request(f, 99, crypto.SHA1),
		manyCertIDs(f, 3), manyCertIDs(f, 5), {}, {0x30, 0x00}, {0x30, 0x80}, {0x30, 0x03, 0x30, 0x01, 0x30},
	}
}

// checkAnswer: whatever the input, the answer is an OCSP response (or a 413)
// and parses as DER.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	if rec.Code == http.StatusRequestEntityTooLarge {
		return
	}
	b := rec.Body.Bytes()
	if rec.Code != http.StatusOK || len(b) < 5 || b[0] != 0x30 {
		t.Fatalf("HTTP %d, body % x", rec.Code, b)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		req, err := ocsp.ParseRequest(der, 4)
		if err != nil {
			return
		}
		if len(req.CertIDs) == 0 || len(req.CertIDs) > 4 {
			t.Fatalf("%d CertIDs accepted", len(req.CertIDs))
		}
		for _, id := range req.CertIDs {
			if len(id.KeyHash) != id.Hash.Size() || len(id.NameHash) != id.Hash.Size() {
				t.Fatal("hash lengths not checked")
			}
		}
	})
}

func FuzzPOST(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/ocsp", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/ocsp-request")
		fuzzResponder().ServeHTTP(rec, req)
		checkAnswer(t, rec)
	})
}

func FuzzGETPath(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(base64.StdEncoding.EncodeToString(s))
		f.Add(base64.RawURLEncoding.EncodeToString(s))
	}
	f.Add("%2F%2B%3D")
	f.Add("//")
	f.Fuzz(func(t *testing.T, path string) {
		req, err := http.NewRequest(http.MethodGet, "http://x/ocsp/"+path, nil)
		if err != nil {
			return // not a URL a server would hand over
		}
		rec := httptest.NewRecorder()
		fuzzResponder().ServeHTTP(rec, req)
		checkAnswer(t, rec)
	})
}
