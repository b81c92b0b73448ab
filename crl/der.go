package crl

import (
	"encoding/asn1"
	"time"
)

// DER tags used by the encoder and the streaming parser.
const (
	tagBoolean     = 0x01
	tagInteger     = 0x02
	tagBitString   = 0x03
	tagOctetString = 0x04
	tagOID         = 0x06
	tagEnumerated  = 0x0a
	tagUTCTime     = 0x17
	tagGeneralized = 0x18
	tagSequence    = 0x30
	tagContext0    = 0xa0 // [0] constructed
)

// lenSize is the number of bytes of a DER length field for n content bytes.
func lenSize(n int64) int64 {
	switch {
	case n < 0x80:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffff:
		return 4
	case n <= 0xffffffff:
		return 5
	}
	return 9
}

// appendHeader appends a tag and the DER length of n content bytes.
func appendHeader(b []byte, tag byte, n int64) []byte {
	b = append(b, tag)
	if n < 0x80 {
		return append(b, byte(n))
	}
	k := lenSize(n) - 1
	b = append(b, 0x80|byte(k))
	for i := k - 1; i >= 0; i-- {
		b = append(b, byte(n>>(8*i)))
	}
	return b
}

// tlvSize is the encoded size of an element with n content bytes.
func tlvSize(n int64) int64 { return 1 + lenSize(n) + n }

// appendTLV appends a complete element.
func appendTLV(b []byte, tag byte, content []byte) []byte {
	return append(appendHeader(b, tag, int64(len(content))), content...)
}

// appendUnsignedInteger appends a DER INTEGER for a non-negative big-endian
// magnitude (leading zero bytes allowed in mag; they are dropped).
func appendUnsignedInteger(b []byte, mag []byte) []byte {
	for len(mag) > 1 && mag[0] == 0 {
		mag = mag[1:]
	}
	if len(mag) == 0 {
		return append(b, tagInteger, 1, 0)
	}
	if mag[0]&0x80 != 0 {
		b = appendHeader(b, tagInteger, int64(len(mag))+1)
		b = append(b, 0)
		return append(b, mag...)
	}
	return appendTLV(b, tagInteger, mag)
}

// outsideUTCTime reports whether t must be a GeneralizedTime (RFC 5280
// section 4.1.2.5: UTCTime through 2049, as encoding/asn1 does).
func outsideUTCTime(t time.Time) bool {
	y := t.Year()
	return y < 1950 || y >= 2050
}

// timeSize is the encoded size of a Time.
func timeSize(t time.Time) int64 {
	if outsideUTCTime(t.UTC()) {
		return 17
	}
	return 15
}

// appendTime appends a Time in UTC with whole seconds, as UTCTime for years
// 1950-2049 and GeneralizedTime otherwise, byte-for-byte like encoding/asn1.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	if outsideUTCTime(t) {
		b = append(b, tagGeneralized, 15)
		b = appendDigits(b, y/100)
	} else {
		b = append(b, tagUTCTime, 13)
	}
	b = appendDigits(b, y%100)
	b = appendDigits(b, int(mo))
	b = appendDigits(b, d)
	b = appendDigits(b, h)
	b = appendDigits(b, mi)
	b = appendDigits(b, s)
	return append(b, 'Z')
}

func appendDigits(b []byte, v int) []byte {
	return append(b, byte('0'+v/10%10), byte('0'+v%10))
}

// appendExtension appends an Extension: SEQUENCE { extnID, critical
// DEFAULT FALSE, extnValue OCTET STRING }.
func appendExtension(b []byte, id asn1.ObjectIdentifier, critical bool, value []byte) []byte {
	oid, err := asn1.Marshal(id)
	if err != nil {
		panic(err) // only the package's constant OIDs are passed
	}
	n := int64(len(oid)) + tlvSize(int64(len(value)))
	if critical {
		n += 3
	}
	b = appendHeader(b, tagSequence, n)
	b = append(b, oid...)
	if critical {
		b = append(b, tagBoolean, 1, 0xff)
	}
	return appendTLV(b, tagOctetString, value)
}
