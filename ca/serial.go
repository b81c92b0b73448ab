package ca

import (
	"fmt"
	"io"
)

// serialLen is the length of a serial's magnitude in bytes. RFC 5280 allows
// up to 20 octets; CA/B Forum rules want at least 64 random bits.
const serialLen = 16

// SerialEntropyBits is how many bits of a NewSerial come from the reader.
const SerialEntropyBits = serialLen*8 - 2

// NewSerial draws a certificate serial number from rand (crypto/rand.Reader
// in production). The 16-byte magnitude has its top bit cleared (so the
// DER INTEGER is positive without a leading zero byte) and the next bit set
// (so it is never shorter than 16 bytes): 126 random bits, DER-encoded in
// exactly 16 content octets.
func NewSerial(rand io.Reader) (Serial, error) {
	b := make([]byte, serialLen)
	if _, err := io.ReadFull(rand, b); err != nil {
		return Serial{}, fmt.Errorf("drawing serial: %w", err)
	}
	b[0] = b[0]&0x3f | 0x40
	return SerialFromBytes(b), nil
}
