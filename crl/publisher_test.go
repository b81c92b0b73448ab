package crl_test

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jpkica/jpkica/crl"
)

func TestHandler(t *testing.T) {
	f := newFixture(t, sqliteDSN(t))
	clock := newClock(crlNow)
	u := f.updater(t, clock, crl.Config{}, nil)
	ik := f.kr.Issuers[0]
	p, err := u.Generate(context.Background(), crl.Scope{Issuer: ik.Issuer.ID, Partition: "302015"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(crl.NewHandler(u.Dir(), "/crl"))
	defer srv.Close()
	// The URL in the certificates, on the test server.
	url := srv.URL + "/crl/" + p.Scope.File()
	if want := f.profiles.CRLURL(ik.Issuer.ID, "302015"); "http://127.0.0.1:8080/crl/"+p.Scope.File() != want {
		t.Fatalf("published at %s, certificates name %s", p.Scope.File(), want)
	}
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/pkix-crl" || res.Header.Get("ETag") == "" {
		t.Fatalf("GET: %d %v", res.StatusCode, res.Header)
	}
	lm, err := http.ParseTime(res.Header.Get("Last-Modified"))
	if err != nil || !lm.Equal(crlNow) {
		t.Fatalf("Last-Modified %q, want thisUpdate %v", res.Header.Get("Last-Modified"), crlNow)
	}
	rl, err := x509.ParseRevocationList(body)
	if err != nil || rl.CheckSignatureFrom(ik.Cert) != nil || rl.Number.Cmp(p.Number) != 0 {
		t.Fatalf("served CRL: %v", err)
	}

	for _, tc := range []struct {
		name   string
		header string
		value  string
		want   int
	}{
		{"If-None-Match", "If-None-Match", res.Header.Get("ETag"), http.StatusNotModified},
		{"If-Modified-Since", "If-Modified-Since", crlNow.Add(time.Minute).Format(http.TimeFormat), http.StatusNotModified},
		{"stale If-None-Match", "If-None-Match", `"other"`, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set(tc.header, tc.value)
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", r.StatusCode, tc.want)
			}
		})
	}
	// A new CRL has a new ETag.
	clock.add(time.Hour)
	if _, err := u.Generate(context.Background(), p.Scope); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("If-None-Match", res.Header.Get("ETag"))
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 200 || r2.Header.Get("ETag") == res.Header.Get("ETag") {
		t.Fatalf("after a new CRL: %d, ETag %s", r2.StatusCode, r2.Header.Get("ETag"))
	}

	for _, path := range []string{"/crl/" + ik.Issuer.ID + "/.lock", "/crl/" + ik.Issuer.ID + "/302015.json",
		"/crl/../" + ik.Issuer.ID + "/302015.crl", "/crl/" + ik.Issuer.ID + "/999999.crl", "/crl/x/y/z.crl"} {
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, r.StatusCode)
		}
	}
}
