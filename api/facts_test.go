package api_test

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/jpkica/jpkica/api/apitest"
	"github.com/jpkica/jpkica/ca"
)

// TestFactsAsSent: the 4 facts are certified as they were sent. A character
// written as a surrogate pair escape is one character (𠮷, outside JIS X
// 0208, becomes 〓 with its map bit set), and a signature certificate of the
// longest name and address, every character three bytes of UTF-8, fits the
// card's certificate file.
func TestFactsAsSent(t *testing.T) {
	backends(t, func(t *testing.T, opts apitest.Options) {
		e := newEnv(t, opts)
		pair := mustJSON(issueBody("signature", "CARD-PAIR", "RES-PAIR", "302015"))
		pair = strings.Replace(pair, "太郎", `\ud842\udfb7郎`, 1)
		a := e.counter.do("POST", "/v1/certificates", []byte(pair), "Idempotency-Key", "pair")
		wantStatus(t, "a surrogate pair", a, 201, "")
		facts := certifiedFacts(t, a)
		if facts.Name != "和歌山　〓郎" || facts.NameMap != "000010" {
			t.Fatalf("certified name %q map %q, want 和歌山　〓郎 000010", facts.Name, facts.NameMap)
		}

		longest := issueBody("signature", "CARD-LONG", "RES-LONG", "302015")
		longest.Resident.Name = "和歌山　" + strings.Repeat("太", ca.MaxNameChars-4)
		longest.Resident.Address = "和歌山県" + strings.Repeat("町", ca.MaxAddressChars-4)
		a, _ = e.counter.issue(longest, "longest")
		wantStatus(t, "the longest facts", a, 201, "")
		if n := len(certDER(t, a)); n > ca.MaxCardCertificateBytes {
			t.Fatalf("the certificate of the longest facts takes %d bytes, over %d", n, ca.MaxCardCertificateBytes)
		} else {
			t.Logf("the certificate of the longest facts takes %d bytes", n)
		}
	})
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

func certDER(t *testing.T, a answer) []byte {
	t.Helper()
	var out struct{ Certificate string }
	if err := json.Unmarshal(a.body, &out); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(out.Certificate))
	if block == nil {
		t.Fatalf("no certificate in %s", a.body)
	}
	return block.Bytes
}

func certifiedFacts(t *testing.T, a answer) ca.EncodedFacts {
	t.Helper()
	cert, err := x509.ParseCertificate(certDER(t, a))
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			f, err := ca.ParseSubjectAltNameFacts(ext.Value)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatal("no subjectAltName")
	return ca.EncodedFacts{}
}
