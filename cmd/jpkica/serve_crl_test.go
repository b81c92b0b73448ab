package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jpkica/jpkica/internal/netacl"
)

// TestOnlyClients: CRLs go to the configured networks only; others get
// 403, and with no networks configured everyone gets them.
func TestOnlyClients(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	verifiers, err := netacl.Parse([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		clients netacl.List
		remote  string
		want    int
	}{
		{verifiers, "10.1.2.3:4444", http.StatusOK},
		{verifiers, "192.0.2.1:4444", http.StatusForbidden},
		{netacl.List{}, "192.0.2.1:4444", http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, "/crl/signature-g1/302015.crl", nil)
		req.RemoteAddr = c.remote
		rec := httptest.NewRecorder()
		onlyClients(c.clients, ok).ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: %d, want %d", c.remote, rec.Code, c.want)
		}
	}
}
