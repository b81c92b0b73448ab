package ca

import (
	"bytes"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"testing"
	"testing/iotest"
)

func TestNewSerial(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  io.Reader
	}{
		{"crypto/rand", rand.Reader},
		{"all zero", bytes.NewReader(make([]byte, 64))},
		{"all ones", bytes.NewReader(bytes.Repeat([]byte{0xff}, 64))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSerial(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if s.Big().Sign() <= 0 {
				t.Fatalf("serial %v not positive", s)
			}
			der, err := asn1.Marshal(s.Big())
			if err != nil {
				t.Fatal(err)
			}
			// INTEGER, length 16, first content octet < 0x80.
			if der[0] != 0x02 || der[1] != serialLen || der[2]&0x80 != 0 {
				t.Fatalf("serial DER % x: want a positive 16-octet INTEGER", der)
			}
			if got, _ := ParseSerial(s.Hex()); got != s {
				t.Fatalf("ParseSerial(Hex) = %v, want %v", got, s)
			}
		})
	}
}

// TestNewSerialEntropy counts the bit positions that vary over many serials:
// fewer than 64 (CA/B Forum BR 7.1) fails.
func TestNewSerialEntropy(t *testing.T) {
	var and, or big.Int
	const n = 256
	seen := map[Serial]bool{}
	for i := range n {
		s, err := NewSerial(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		seen[s] = true
		if i == 0 {
			and.Set(s.Big())
		}
		and.And(&and, s.Big())
		or.Or(&or, s.Big())
	}
	if len(seen) != n {
		t.Fatalf("%d distinct serials of %d", len(seen), n)
	}
	varying := 0
	for i := range or.BitLen() {
		if or.Bit(i) != and.Bit(i) {
			varying++
		}
	}
	if varying < 64 || varying < SerialEntropyBits-8 {
		t.Fatalf("%d varying bits, want at least 64 (claimed %d)", varying, SerialEntropyBits)
	}
	// Every bit read must matter: flipping one input bit changes the serial.
	in := make([]byte, serialLen)
	base, _ := NewSerial(bytes.NewReader(in))
	for i := 2; i < serialLen*8; i++ {
		flipped := bytes.Clone(in)
		flipped[i/8] ^= 0x80 >> (i % 8)
		s, _ := NewSerial(bytes.NewReader(flipped))
		if s == base {
			t.Fatalf("input bit %d does not reach the serial", i)
		}
	}
}

func TestNewSerialShortRead(t *testing.T) {
	for _, src := range []io.Reader{
		bytes.NewReader(make([]byte, serialLen-1)),
		iotest.ErrReader(errors.New("no entropy")),
	} {
		if _, err := NewSerial(src); err == nil {
			t.Fatal("NewSerial from a short reader succeeded")
		}
	}
}
