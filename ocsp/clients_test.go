package ocsp_test

import (
	"crypto"
	"encoding/base64"
	"errors"
	"net/http"
	"testing"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/jpkica/jpkica/internal/netacl"
	"github.com/jpkica/jpkica/ocsp"
)

// TestClients: with Config.Clients set, a client outside those networks
// gets unauthorized (RFC 6960 section 2.3) from both HTTP stacks, by GET
// and by POST; one inside gets its answer.
func TestClients(t *testing.T) {
	for _, fast := range []bool{false, true} {
		for _, c := range []struct {
			networks []string
			allowed  bool
		}{
			{[]string{"192.0.2.0/24"}, false},
			{[]string{"192.0.2.0/24", "127.0.0.0/8"}, true},
		} {
			clients, err := netacl.Parse(c.networks)
			if err != nil {
				t.Fatal(err)
			}
			_, _, srv := memServerOn(t, 1, ocsp.Config{Clients: clients}, fast)
			pki := testPKI()
			_, cert := pki.leaf(t, 1)
			req := pki.request(t, 1, crypto.SHA1)
			for _, body := range [][]byte{
				httpDo(t, http.MethodPost, srv.URL+"/ocsp", req),
				httpDo(t, http.MethodGet, srv.URL+"/ocsp/"+base64.StdEncoding.EncodeToString(req), nil),
			} {
				_, err := xocsp.ParseResponseForCert(body, cert, pki.issuer)
				var re xocsp.ResponseError
				switch {
				case c.allowed && err != nil:
					t.Errorf("fast=%v, %v: allowed client: %v", fast, c.networks, err)
				case !c.allowed && !(errors.As(err, &re) && re.Status == xocsp.Unauthorized):
					t.Errorf("fast=%v, %v: refused client: %v, want unauthorized", fast, c.networks, err)
				}
			}
		}
	}
}
