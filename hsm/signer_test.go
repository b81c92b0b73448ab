package hsm

import (
	"bytes"
	"crypto/rand"
	"encoding/asn1"
	"math/big"
	"testing"
)

// ecdsaDER must agree with encoding/asn1 on every r||s, including leading
// zeros, top bits set, zero values and sizes up to P-521.
func TestECDSADERMatchesEncodingASN1(t *testing.T) {
	check := func(raw []byte) {
		t.Helper()
		got, err := ecdsaDER(raw)
		if err != nil {
			t.Fatalf("ecdsaDER(%x): %v", raw, err)
		}
		want, err := asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(raw[:len(raw)/2]), new(big.Int).SetBytes(raw[len(raw)/2:]),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ecdsaDER(%x)\n got %x\nwant %x", raw, got, want)
		}
	}
	for _, size := range []int{32, 48, 66} {
		check(make([]byte, 2*size)) // r = s = 0
		hi := bytes.Repeat([]byte{0xff}, 2*size)
		check(hi)
		lead := make([]byte, 2*size)
		lead[size-1], lead[2*size-1] = 0x80, 0x01 // one-byte values
		check(lead)
		for range 200 {
			raw := make([]byte, 2*size)
			rand.Read(raw)
			raw[0] &= byte(0xff >> (raw[1] % 9)) // vary the top bits and leading zeros
			if raw[2]%4 == 0 {
				raw[size] = 0
			}
			check(raw)
		}
	}
	for _, bad := range [][]byte{nil, {1}, make([]byte, 2*67)} {
		if _, err := ecdsaDER(bad); err == nil {
			t.Errorf("ecdsaDER(%d bytes) succeeded", len(bad))
		}
	}
}
