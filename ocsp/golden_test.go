package ocsp

import (
	"bytes"
	"crypto"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/jpkica/jpkica/ca"
)

var update = flag.Bool("update", false, "rewrite the DER golden files in testdata")

// TestGoldenTBS pins the ResponseData encoding (signatures are randomised,
// the signed data is not). Refresh with go test ./ocsp -run TestGoldenTBS -update.
func TestGoldenTBS(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	responderID := append([]byte{0xa2, 0x16, 0x04, 0x14}, bytes.Repeat([]byte{0x11}, 20)...)
	base := single{hash: crypto.SHA1, nameHash: bytes.Repeat([]byte{0x22}, 20), keyHash: bytes.Repeat([]byte{0x33}, 20),
		serialDER: serialContent(ca.SerialFromBytes([]byte{0x80, 0x01, 0x02})), thisUpdate: t0, nextUpdate: t0.Add(24 * time.Hour)}
	revoked := base
	revoked.status, revoked.revokedAt, revoked.reason = StatusRevoked, t0.Add(-time.Hour), ca.CertificateHold
	unknown := base
	unknown.status = StatusUnknown
	sha256 := base
	sha256.hash, sha256.nameHash, sha256.keyHash = crypto.SHA256, bytes.Repeat([]byte{0x44}, 32), bytes.Repeat([]byte{0x55}, 32)
	nonce := []byte{0x04, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	for _, tc := range []struct {
		name    string
		singles []single
		nonce   []byte
	}{
		{"good", []single{base}, nil},
		{"hold", []single{revoked}, nil},
		{"unknown", []single{unknown}, nil},
		{"sha256-nonce", []single{sha256}, nonce},
		{"three", []single{base, revoked, unknown}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := appendTBS(nil, responderID, t0, tc.singles, tc.nonce)
			if err != nil {
				t.Fatal(err)
			}
			// Whatever the golden file says, it must be one DER SEQUENCE.
			s := cryptobyte.String(got)
			var inner cryptobyte.String
			if !s.ReadASN1(&inner, cbasn1.SEQUENCE) || !s.Empty() {
				t.Fatalf("not one SEQUENCE: % x", got)
			}
			path := filepath.Join("testdata", "tbs-"+tc.name+".der")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("ResponseData changed:\n got % x\nwant % x", got, want)
			}
		})
	}
}
