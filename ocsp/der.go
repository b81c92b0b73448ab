package ocsp

import (
	"crypto"
	"encoding/asn1"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/jpkica/jpkica/ca"
)

// Object identifiers used on the wire.
var (
	oidSHA1          = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidNonce         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidBasicResponse = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 1}
)

// maxNonce is the longest nonce RFC 8954 section 2.1 allows.
const maxNonce = 32

// CertID is one certificate a request asks about (RFC 6960 4.1.1).
type CertID struct {
	Hash     crypto.Hash // crypto.SHA1 or crypto.SHA256
	NameHash []byte
	KeyHash  []byte
	// SerialDER is the content octets of the serialNumber INTEGER, as sent
	// (echoed into answers for serials this CA never issued).
	SerialDER []byte
}

// Serial is the serial the CertID names, and false when it cannot be one of
// ours (zero, negative or longer than 20 octets).
func (id CertID) Serial() (ca.Serial, bool) {
	b := id.SerialDER
	if len(b) == 0 || b[0]&0x80 != 0 {
		return ca.Serial{}, false
	}
	for len(b) > 0 && b[0] == 0 {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 20 {
		return ca.Serial{}, false
	}
	return ca.SerialFromBytes(b), true
}

// Request is a decoded OCSPRequest.
type Request struct {
	CertIDs []CertID
	// Nonce is the extnValue of the id-pkix-ocsp-nonce request extension
	// (RFC 8954), nil when there is none.
	Nonce []byte
}

// ParseRequest decodes a DER OCSPRequest (RFC 6960 4.1.1). The requestor
// name, a request signature and extensions other than the nonce are read past
// and ignored. More than maxCerts CertIDs, trailing data or any encoding error
// is ErrMalformed; a CertID hash other than SHA-1 or SHA-256 is
// ErrUnsupportedHash. The returned CertIDs alias der.
func ParseRequest(der []byte, maxCerts int) (Request, error) {
	var req Request
	in := cryptobyte.String(der)
	var ocspReq, tbs cryptobyte.String
	if !in.ReadASN1(&ocspReq, cbasn1.SEQUENCE) || !in.Empty() {
		return req, fmt.Errorf("%w: not one OCSPRequest", ErrMalformed)
	}
	if !ocspReq.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return req, fmt.Errorf("%w: no tbsRequest", ErrMalformed)
	}
	if !ocspReq.SkipOptionalASN1(cbasn1.Tag(0).ContextSpecific().Constructed()) || !ocspReq.Empty() {
		return req, fmt.Errorf("%w: data after tbsRequest", ErrMalformed)
	}
	var version cryptobyte.String
	var hasVersion bool
	if !tbs.ReadOptionalASN1(&version, &hasVersion, cbasn1.Tag(0).ContextSpecific().Constructed()) {
		return req, fmt.Errorf("%w: version", ErrMalformed)
	}
	if hasVersion {
		var v int64
		if !version.ReadASN1Int64WithTag(&v, cbasn1.INTEGER) || v != 0 || !version.Empty() {
			return req, fmt.Errorf("%w: version is not v1", ErrMalformed)
		}
	}
	if !tbs.SkipOptionalASN1(cbasn1.Tag(1).ContextSpecific().Constructed()) {
		return req, fmt.Errorf("%w: requestorName", ErrMalformed)
	}
	var list cryptobyte.String
	if !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return req, fmt.Errorf("%w: requestList", ErrMalformed)
	}
	var exts cryptobyte.String
	var hasExts bool
	if !tbs.ReadOptionalASN1(&exts, &hasExts, cbasn1.Tag(2).ContextSpecific().Constructed()) || !tbs.Empty() {
		return req, fmt.Errorf("%w: requestExtensions", ErrMalformed)
	}
	for !list.Empty() {
		if len(req.CertIDs) == maxCerts {
			return req, fmt.Errorf("%w: more than %d CertIDs", ErrMalformed, maxCerts)
		}
		var one, certID cryptobyte.String
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) || !one.ReadASN1(&certID, cbasn1.SEQUENCE) {
			return req, fmt.Errorf("%w: Request", ErrMalformed)
		}
		if !one.SkipOptionalASN1(cbasn1.Tag(0).ContextSpecific().Constructed()) || !one.Empty() {
			return req, fmt.Errorf("%w: singleRequestExtensions", ErrMalformed)
		}
		id, err := parseCertID(certID)
		if err != nil {
			return req, err
		}
		req.CertIDs = append(req.CertIDs, id)
	}
	if len(req.CertIDs) == 0 {
		return req, fmt.Errorf("%w: no CertID", ErrMalformed)
	}
	if hasExts {
		nonce, err := findNonce(exts)
		if err != nil {
			return req, err
		}
		req.Nonce = nonce
	}
	return req, nil
}

func parseCertID(s cryptobyte.String) (CertID, error) {
	var id CertID
	var alg, oid cryptobyte.String
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return id, fmt.Errorf("%w: CertID hashAlgorithm", ErrMalformed)
	}
	if !alg.Empty() { // parameters: absent or NULL
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !alg.Empty() {
			return id, fmt.Errorf("%w: CertID hashAlgorithm parameters", ErrMalformed)
		}
	}
	var nameHash, keyHash, serial cryptobyte.String
	if !s.ReadASN1(&nameHash, cbasn1.OCTET_STRING) || !s.ReadASN1(&keyHash, cbasn1.OCTET_STRING) ||
		!s.ReadASN1(&serial, cbasn1.INTEGER) || !s.Empty() || len(serial) == 0 {
		return id, fmt.Errorf("%w: CertID", ErrMalformed)
	}
	switch {
	case oidEqual(oid, oidSHA1):
		id.Hash = crypto.SHA1
	case oidEqual(oid, oidSHA256):
		id.Hash = crypto.SHA256
	default:
		return id, fmt.Errorf("%w: %x", ErrUnsupportedHash, []byte(oid))
	}
	if len(nameHash) != id.Hash.Size() || len(keyHash) != id.Hash.Size() {
		return id, fmt.Errorf("%w: CertID hash lengths", ErrMalformed)
	}
	id.NameHash, id.KeyHash, id.SerialDER = nameHash, keyHash, serial
	return id, nil
}

// oidDER are the content octets of the OIDs compared on the hot path.
var (
	oidSHA1DER   = mustOIDContent(oidSHA1)
	oidSHA256DER = mustOIDContent(oidSHA256)
	oidNonceDER  = mustOIDContent(oidNonce)
)

func mustOIDContent(oid asn1.ObjectIdentifier) string {
	der, err := asn1.Marshal(oid)
	if err != nil {
		panic(err)
	}
	return string(der[2:])
}

func oidEqual(content cryptobyte.String, oid asn1.ObjectIdentifier) bool {
	switch {
	case oid.Equal(oidSHA1):
		return string(content) == oidSHA1DER
	case oid.Equal(oidSHA256):
		return string(content) == oidSHA256DER
	case oid.Equal(oidNonce):
		return string(content) == oidNonceDER
	}
	return false
}

// findNonce returns the extnValue of the nonce extension. RFC 8954 2.1: a
// nonce (the OCTET STRING inside extnValue) of 0 or more than 32 octets is
// malformed.
func findNonce(exts cryptobyte.String) ([]byte, error) {
	var seq cryptobyte.String
	if !exts.ReadASN1(&seq, cbasn1.SEQUENCE) || !exts.Empty() {
		return nil, fmt.Errorf("%w: requestExtensions", ErrMalformed)
	}
	var nonce []byte
	for !seq.Empty() {
		var ext, oid, value cryptobyte.String
		if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) {
			return nil, fmt.Errorf("%w: extension", ErrMalformed)
		}
		if !ext.SkipOptionalASN1(cbasn1.BOOLEAN) || !ext.ReadASN1(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
			return nil, fmt.Errorf("%w: extension", ErrMalformed)
		}
		if !oidEqual(oid, oidNonce) {
			continue
		}
		if nonce != nil {
			return nil, fmt.Errorf("%w: two nonces", ErrMalformed)
		}
		inner := value
		var n cryptobyte.String
		if !inner.ReadASN1(&n, cbasn1.OCTET_STRING) || !inner.Empty() {
			// Some old clients put the raw nonce in extnValue.
			n = value
		}
		if len(n) == 0 || len(n) > maxNonce {
			return nil, fmt.Errorf("%w: nonce of %d octets", ErrMalformed, len(n))
		}
		nonce = value
	}
	return nonce, nil
}

// ResponseStatus is an OCSPResponseStatus (RFC 6960 4.2.1).
type ResponseStatus int

// The OCSPResponseStatus values.
const (
	Successful       ResponseStatus = 0
	MalformedRequest ResponseStatus = 1
	InternalError    ResponseStatus = 2
	TryLater         ResponseStatus = 3
	SigRequired      ResponseStatus = 5
	Unauthorized     ResponseStatus = 6
)

func (s ResponseStatus) String() string {
	switch s {
	case Successful:
		return "successful"
	case MalformedRequest:
		return "malformedRequest"
	case InternalError:
		return "internalError"
	case TryLater:
		return "tryLater"
	case SigRequired:
		return "sigRequired"
	case Unauthorized:
		return "unauthorized"
	}
	return fmt.Sprintf("ResponseStatus(%d)", int(s))
}

// ErrorResponse is the DER OCSPResponse of an unsuccessful status: it has no
// responseBytes and is not signed (RFC 6960 4.2.1).
func ErrorResponse(s ResponseStatus) []byte {
	return []byte{0x30, 0x03, 0x0a, 0x01, byte(s)}
}

// CertStatus is the status one SingleResponse gives (RFC 6960 4.2.1).
type CertStatus uint8

// The three CertStatus choices.
const (
	StatusGood    CertStatus = 0
	StatusRevoked CertStatus = 1
	StatusUnknown CertStatus = 2
)

func (c CertStatus) String() string {
	switch c {
	case StatusGood:
		return "good"
	case StatusRevoked:
		return "revoked"
	case StatusUnknown:
		return "unknown"
	}
	return fmt.Sprintf("CertStatus(%d)", int(c))
}

// single is one SingleResponse to encode.
type single struct {
	hash       crypto.Hash
	nameHash   []byte
	keyHash    []byte
	serialDER  []byte // INTEGER content octets
	status     CertStatus
	revokedAt  time.Time
	reason     ca.Reason
	thisUpdate time.Time
	nextUpdate time.Time
}

// serialContent is the INTEGER content octets of a positive serial.
func serialContent(s ca.Serial) []byte {
	b := s.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		return append([]byte{0}, b...)
	}
	return b
}

// Pre-encoded AlgorithmIdentifiers of the CertID hashes (parameters NULL, as
// OpenSSL and Go write them).
var (
	algSHA1   = []byte{0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00}
	algSHA256 = []byte{0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00}
)

// generalizedTimeLen is the encoded length of a GeneralizedTime
// YYYYMMDDHHMMSSZ.
const generalizedTimeLen = 2 + 15

func appendGeneralizedTime(dst []byte, t time.Time) []byte {
	dst = append(dst, 0x18, 15)
	return t.UTC().AppendFormat(dst, "20060102150405Z")
}

func tlvLen(n int) int { return headerLen(n) + n }

// certIDLen is the content length of a CertID.
func (s *single) certIDLen() int {
	alg := algSHA1
	if s.hash == crypto.SHA256 {
		alg = algSHA256
	}
	return len(alg) + tlvLen(len(s.nameHash)) + tlvLen(len(s.keyHash)) + tlvLen(len(s.serialDER))
}

// contentLen is the content length of the SingleResponse.
func (s *single) contentLen() int {
	n := tlvLen(s.certIDLen())
	switch s.status {
	case StatusRevoked:
		n += tlvLen(generalizedTimeLen + 5) // revocationTime, [0] { ENUMERATED }
	default:
		n += 2
	}
	return n + generalizedTimeLen + 2 + generalizedTimeLen // thisUpdate, [0] nextUpdate
}

func (s *single) append(dst []byte) []byte {
	dst = appendHeader(dst, 0x30, s.contentLen())
	dst = appendHeader(dst, 0x30, s.certIDLen())
	if s.hash == crypto.SHA256 {
		dst = append(dst, algSHA256...)
	} else {
		dst = append(dst, algSHA1...)
	}
	dst = appendHeader(dst, 0x04, len(s.nameHash))
	dst = append(dst, s.nameHash...)
	dst = appendHeader(dst, 0x04, len(s.keyHash))
	dst = append(dst, s.keyHash...)
	dst = appendHeader(dst, 0x02, len(s.serialDER))
	dst = append(dst, s.serialDER...)
	switch s.status {
	case StatusGood:
		dst = append(dst, 0x80, 0x00)
	case StatusRevoked:
		dst = appendHeader(dst, 0xa1, generalizedTimeLen+5)
		dst = appendGeneralizedTime(dst, s.revokedAt)
		dst = append(dst, 0xa0, 0x03, 0x0a, 0x01, byte(s.reason))
	default:
		dst = append(dst, 0x82, 0x00)
	}
	dst = appendGeneralizedTime(dst, s.thisUpdate)
	dst = append(dst, 0xa0, generalizedTimeLen)
	return appendGeneralizedTime(dst, s.nextUpdate)
}

// appendTBS appends a DER ResponseData (RFC 6960 4.2.1) to dst: responderID
// is the pre-encoded ResponderID, nonce the extnValue to echo (nil for none).
// Lengths are computed first, so the encoding allocates nothing.
func appendTBS(dst []byte, responderID []byte, producedAt time.Time, singles []single, nonce []byte) ([]byte, error) {
	if len(singles) == 0 {
		return nil, fmt.Errorf("%w: no SingleResponse", ErrInvalid)
	}
	list := 0
	for i := range singles {
		list += tlvLen(singles[i].contentLen())
	}
	n := len(responderID) + generalizedTimeLen + tlvLen(list)
	var ext, extSeq, extList int
	if nonce != nil {
		ext = tlvLen(len(oidNonceDER)) + tlvLen(len(nonce)) // Extension contents
		extSeq = tlvLen(ext)                                // Extensions contents
		extList = tlvLen(extSeq)                            // [1] contents
		n += tlvLen(extList)
	}
	dst = appendHeader(dst, 0x30, n)
	dst = append(dst, responderID...)
	dst = appendGeneralizedTime(dst, producedAt)
	dst = appendHeader(dst, 0x30, list)
	for i := range singles {
		dst = singles[i].append(dst)
	}
	if nonce != nil {
		dst = appendHeader(dst, 0xa1, extList)
		dst = appendHeader(dst, 0x30, extSeq)
		dst = appendHeader(dst, 0x30, ext)
		dst = appendHeader(dst, 0x06, len(oidNonceDER))
		dst = append(dst, oidNonceDER...)
		dst = appendHeader(dst, 0x04, len(nonce))
		dst = append(dst, nonce...)
	}
	return dst, nil
}

// appendSigned appends signatureAlgorithm and the BIT STRING signature that
// follow tbsResponseData in a BasicOCSPResponse.
func appendSigned(dst, sigAlg, sig []byte) []byte {
	dst = append(dst, sigAlg...)
	dst = appendHeader(dst, 0x03, len(sig)+1)
	dst = append(dst, 0)
	return append(dst, sig...)
}

// appendHeader appends a DER tag and length.
func appendHeader(dst []byte, tag byte, n int) []byte {
	dst = append(dst, tag)
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n < 0x100:
		return append(dst, 0x81, byte(n))
	case n < 0x10000:
		return append(dst, 0x82, byte(n>>8), byte(n))
	default:
		return append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
}

func headerLen(n int) int {
	switch {
	case n < 0x80:
		return 2
	case n < 0x100:
		return 3
	case n < 0x10000:
		return 4
	default:
		return 5
	}
}

// oidBasicDER is the encoded id-pkix-ocsp-basic OBJECT IDENTIFIER.
var oidBasicDER = []byte{0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01}

// appendResponsePrefix appends everything of a successful OCSPResponse that
// comes before the BasicOCSPResponse's contents, for contents of n octets
// (tbsResponseData, signatureAlgorithm, signature and certs). The caller then
// writes those contents: the response is assembled without copying them.
func appendResponsePrefix(dst []byte, n int) []byte {
	basic := headerLen(n) + n
	octet := headerLen(basic) + basic
	rb := len(oidBasicDER) + octet
	rbSeq := headerLen(rb) + rb
	outer := 3 + headerLen(rbSeq) + rbSeq
	dst = appendHeader(dst, 0x30, outer)
	dst = append(dst, 0x0a, 0x01, 0x00)
	dst = appendHeader(dst, 0xa0, rbSeq)
	dst = appendHeader(dst, 0x30, rb)
	dst = append(dst, oidBasicDER...)
	dst = appendHeader(dst, 0x04, basic)
	return appendHeader(dst, 0x30, n)
}
