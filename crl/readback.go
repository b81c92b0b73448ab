package crl

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"time"

	"github.com/jpkica/jpkica/ca"
)

// Parsed is what ReadBack found in a CRL.
type Parsed struct {
	Number            *big.Int
	ThisUpdate        time.Time
	NextUpdate        time.Time
	IDP               string // the issuingDistributionPoint URI; "" without one
	OnlyUserCerts     bool
	DeltaBase         *big.Int // nil for a complete CRL
	FreshestCRL       string
	ExpiredCertsOnCRL time.Time
	Entries           int64
	Size              int64
}

// ErrMalformed: a CRL that ReadBack cannot accept.
var ErrMalformed = errors.New("malformed CRL")

// ReadBack parses a DER CRL from r in one streaming pass, in memory that
// does not depend on its number of entries: it hashes the TBSCertList as it
// reads it, verifies the signature with issuer's public key, checks that the
// issuer name and authorityKeyIdentifier are issuer's, that the entries are
// in strictly increasing serial order, and that no unknown critical
// extension is present. fn, when not nil, is called with each entry.
// Failures wrap ErrMalformed (or fn's error).
func ReadBack(r io.Reader, issuer *x509.Certificate, fn func(Entry) error) (Parsed, error) {
	return readBack(r, issuer, fn, -1)
}

// readBack is ReadBack calling fn for the first limit entries only (all
// with limit < 0). The TBSCertList is hashed in the blocks it is read in,
// below the parser's buffer.
func readBack(r io.Reader, issuer *x509.Certificate, fn func(Entry) error, limit int64) (Parsed, error) {
	var p Parsed
	tag, outerLen, outerHdr, err := rawHeader(r)
	if err != nil || tag != tagSequence {
		return p, malformed("CertificateList", err)
	}
	tag, tbsLen, tbsHdr, err := rawHeader(r)
	if err != nil || tag != tagSequence {
		return p, malformed("TBSCertList", err)
	}
	lazy := &lazyHash{pending: tbsHdr}
	body := io.TeeReader(io.LimitReader(r, tbsLen), lazy)
	d := &derReader{r: bufio.NewReaderSize(body, 1<<20), n: int64(len(outerHdr) + len(tbsHdr))}
	tbsEnd := d.n + tbsLen
	_, ver, err := d.element(16)
	if err != nil || !bytes.Equal(ver, []byte{tagInteger, 1, 1}) {
		return p, malformed("version (want v2)", err)
	}
	_, algDER, err := d.element(256)
	if err != nil {
		return p, malformed("signature algorithm", err)
	}
	var alg sigAlg
	for _, a := range sigAlgs {
		if bytes.Equal(a.der, algDER) {
			alg = a
		}
	}
	if alg.hash == 0 {
		return p, malformed(fmt.Sprintf("unsupported signature algorithm %x", algDER), nil)
	}
	lazy.start(alg.hash.New())

	_, name, err := d.element(64 << 10)
	if err != nil || !bytes.Equal(name, issuer.RawSubject) {
		return p, malformed("issuer name does not match the issuer certificate", err)
	}
	if p.ThisUpdate, err = d.time(); err != nil {
		return p, malformed("thisUpdate", err)
	}
	if p.NextUpdate, err = d.time(); err != nil {
		return p, malformed("nextUpdate", err)
	}
	tag, err = d.peek()
	if err != nil {
		return p, malformed("after nextUpdate", err)
	}
	if tag == tagSequence {
		_, n, err := d.header()
		if err != nil {
			return p, malformed("revokedCertificates", err)
		}
		if n == 0 {
			return p, malformed("empty revokedCertificates (omit it instead)", nil)
		}
		if err := d.entries(n, &p, fn, limit); err != nil {
			return p, err
		}
		tag, err = d.peek()
		if err != nil {
			return p, malformed("after revokedCertificates", err)
		}
	}
	if tag != tagContext0 {
		return p, malformed("no crlExtensions", nil)
	}
	_, extsDER, err := d.element(1 << 20)
	if err != nil {
		return p, malformed("crlExtensions", err)
	}
	if err := p.extensions(extsDER, issuer); err != nil {
		return p, err
	}
	if d.n != tbsEnd || d.r.Buffered() != 0 {
		return p, malformed("TBSCertList length", nil)
	}
	digest := lazy.h.Sum(nil)

	t := &derReader{r: bufio.NewReaderSize(r, 16<<10), n: d.n}
	_, alg2, err := t.element(256)
	if err != nil || !bytes.Equal(alg2, algDER) {
		return p, malformed("outer signature algorithm differs from the TBSCertList's", err)
	}
	_, bits, err := t.element(16 << 10)
	if err != nil || bits[0] != tagBitString {
		return p, malformed("signature", err)
	}
	_, content, _ := splitTLV(bits)
	if len(content) < 2 || content[0] != 0 {
		return p, malformed("signature bit string", nil)
	}
	if t.n != int64(len(outerHdr))+outerLen {
		return p, malformed("CertificateList length", nil)
	}
	if _, err := t.r.ReadByte(); err != io.EOF {
		return p, malformed("trailing data after the CRL", err)
	}
	if err := verifyDigest(issuer.PublicKey, alg.hash, digest, content[1:]); err != nil {
		return p, malformed("signature does not verify with the issuer's key", err)
	}
	p.Size = t.n
	return p, nil
}

// rawHeader reads a tag and definite length straight from r, a byte at a
// time (the two outer headers only), and returns the bytes read.
func rawHeader(r io.Reader) (byte, int64, []byte, error) {
	var hb [10]byte
	if _, err := io.ReadFull(r, hb[:2]); err != nil {
		return 0, 0, nil, err
	}
	if hb[1] < 0x80 {
		return hb[0], int64(hb[1]), append([]byte{}, hb[:2]...), nil
	}
	k := int(hb[1] & 0x7f)
	if k == 0 || k > 8 {
		return 0, 0, nil, errors.New("unsupported length form")
	}
	if _, err := io.ReadFull(r, hb[2:2+k]); err != nil {
		return 0, 0, nil, err
	}
	var n int64
	for _, c := range hb[2 : 2+k] {
		n = n<<8 | int64(c)
	}
	if hb[2] == 0 || n < 0x80 || lenSize(n) != int64(1+k) {
		return 0, 0, nil, errors.New("non-minimal length")
	}
	return hb[0], n, append([]byte{}, hb[:2+k]...), nil
}

// lazyHash keeps what it is given until the hash is known.
type lazyHash struct {
	h       hash.Hash
	pending []byte
}

func (l *lazyHash) Write(b []byte) (int, error) {
	if l.h == nil {
		l.pending = append(l.pending, b...)
		return len(b), nil
	}
	return l.h.Write(b)
}

func (l *lazyHash) start(h hash.Hash) {
	h.Write(l.pending)
	l.h, l.pending = h, nil
}

func malformed(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, what, err)
	}
	return fmt.Errorf("%w: %s", ErrMalformed, what)
}

// entries reads n bytes of revokedCertificates, each entry straight out of
// the read buffer.
func (d *derReader) entries(n int64, p *Parsed, fn func(Entry) error, limit int64) error {
	end := d.n + n
	var prev, cur []byte
	for d.n < end {
		h, err := d.r.Peek(3)
		if err != nil {
			return malformed(fmt.Sprintf("entry %d", p.Entries), err)
		}
		l, hdr := int(h[1]), 2
		switch {
		case h[0] != tagSequence:
			return malformed(fmt.Sprintf("entry %d", p.Entries), nil)
		case l == 0x81 && h[2] >= 0x80:
			l, hdr = int(h[2]), 3
		case l >= 0x80:
			return malformed(fmt.Sprintf("entry %d length", p.Entries), nil)
		}
		el, err := d.r.Peek(hdr + l)
		if err != nil {
			return malformed(fmt.Sprintf("entry %d", p.Entries), err)
		}
		tag, sn, rest := splitTLV(el[hdr:])
		if tag != tagInteger || len(sn) == 0 || sn[0]&0x80 != 0 || len(sn) > 1 && sn[0] == 0 && sn[1]&0x80 == 0 {
			return malformed(fmt.Sprintf("entry %d serial", p.Entries), nil)
		}
		for len(sn) > 1 && sn[0] == 0 {
			sn = sn[1:]
		}
		cur = append(cur[:0], sn...)
		if prev != nil && compareMagnitude(prev, cur) >= 0 {
			return fmt.Errorf("%w: %w: entry %d: %x after %x", ErrMalformed, ErrEntryOrder, p.Entries, cur, prev)
		}
		prev, cur = cur, prev
		ttag, tval, rest := splitTLV(rest)
		want := fn != nil && (limit < 0 || p.Entries < limit)
		var at time.Time
		if want {
			at, err = parseTime(ttag, tval)
		} else {
			err = checkTime(ttag, tval)
		}
		if err != nil {
			return malformed(fmt.Sprintf("entry %d revocationDate", p.Entries), err)
		}
		reason := ca.Unspecified
		if len(rest) > 0 {
			if reason, err = entryReason(rest); err != nil {
				return fmt.Errorf("entry %d: %w", p.Entries, err)
			}
		}
		if _, err := d.r.Discard(hdr + l); err != nil {
			return err
		}
		d.n += int64(hdr + l)
		p.Entries++
		if want {
			if err := fn(Entry{Serial: ca.SerialFromBytes(prev), RevokedAt: at, Reason: reason}); err != nil {
				return err
			}
		}
	}
	if d.n != end {
		return malformed("revokedCertificates length", nil)
	}
	return nil
}

// checkTime validates what parseTime reads, without making a time.Time.
func checkTime(tag byte, v []byte) error {
	switch {
	case tag == tagUTCTime && len(v) == 13:
		v = v[2:]
	case tag == tagGeneralized && len(v) == 15:
		return func() error { _, err := parseTime(tag, v); return err }()
	default:
		return fmt.Errorf("time with tag %#x and %d bytes", tag, len(v))
	}
	if v[10] != 'Z' {
		return errors.New("time not in UTC")
	}
	lim := [5]int{12, 31, 23, 59, 59}
	for i := range lim {
		n, ok := digits(v[2*i : 2*i+2])
		if !ok || n > lim[i] || i < 2 && n == 0 {
			return errors.New("bad time")
		}
	}
	return nil
}

// entryReason reads crlEntryExtensions: a reasonCode, nothing critical
// besides.
func entryReason(der []byte) (ca.Reason, error) {
	if len(der) == 14 {
		if r := der[13]; int(r) < len(reasonExts) && reasonExts[r] != nil && bytes.Equal(der, reasonExts[r]) {
			return ca.Reason(r), nil
		}
	}
	for r, b := range reasonExts {
		if b != nil && bytes.Equal(der, b) {
			return ca.Reason(r), nil
		}
	}
	var exts []pkix.Extension
	if rest, err := asn1.Unmarshal(der, &exts); err != nil || len(rest) > 0 {
		return 0, malformed("crlEntryExtensions", err)
	}
	reason := ca.Unspecified
	for _, e := range exts {
		switch {
		case e.Id.Equal(oidReasonCode):
			var v asn1.Enumerated
			if rest, err := asn1.Unmarshal(e.Value, &v); err != nil || len(rest) > 0 {
				return 0, malformed("reasonCode", err)
			}
			reason = ca.Reason(v)
		case e.Critical:
			return 0, malformed("unknown critical entry extension "+e.Id.String(), nil)
		}
	}
	return reason, nil
}

// extensions reads crlExtensions into p.
func (p *Parsed) extensions(der []byte, issuer *x509.Certificate) error {
	_, inner, _ := splitTLV(der)
	var exts []pkix.Extension
	if rest, err := asn1.Unmarshal(inner, &exts); err != nil || len(rest) > 0 {
		return malformed("crlExtensions", err)
	}
	seen := map[string]bool{}
	for _, e := range exts {
		if seen[e.Id.String()] {
			return malformed("duplicate extension "+e.Id.String(), nil)
		}
		seen[e.Id.String()] = true
		switch {
		case e.Id.Equal(oidAKI):
			var aki struct {
				ID []byte `asn1:"optional,tag:0"`
			}
			if _, err := asn1.Unmarshal(e.Value, &aki); err != nil || !bytes.Equal(aki.ID, issuer.SubjectKeyId) {
				return malformed("authorityKeyIdentifier does not match the issuer", err)
			}
		case e.Id.Equal(oidCRLNumber):
			p.Number = new(big.Int)
			if rest, err := asn1.Unmarshal(e.Value, &p.Number); err != nil || len(rest) > 0 || p.Number.Sign() < 0 {
				return malformed("cRLNumber", err)
			}
		case e.Id.Equal(oidDeltaCRLIndicator):
			p.DeltaBase = new(big.Int)
			if rest, err := asn1.Unmarshal(e.Value, &p.DeltaBase); err != nil || len(rest) > 0 || !e.Critical {
				return malformed("deltaCRLIndicator (must be critical)", err)
			}
		case e.Id.Equal(oidIDP):
			uri, user, err := parseIDP(e.Value)
			if err != nil || !e.Critical {
				return malformed("issuingDistributionPoint (must be critical)", err)
			}
			p.IDP, p.OnlyUserCerts = uri, user
		case e.Id.Equal(oidFreshestCRL):
			var dps []struct {
				DistributionPoint asn1.RawValue `asn1:"optional,tag:0"`
			}
			if _, err := asn1.Unmarshal(e.Value, &dps); err != nil || len(dps) != 1 {
				return malformed("freshestCRL", err)
			}
			uri, err := fullNameURI(dps[0].DistributionPoint.FullBytes)
			if err != nil {
				return malformed("freshestCRL", err)
			}
			p.FreshestCRL = uri
		case e.Id.Equal(oidExpiredCertsOnCRL):
			var t time.Time
			if _, err := asn1.UnmarshalWithParams(e.Value, &t, "generalized"); err != nil {
				return malformed("expiredCertsOnCRL", err)
			}
			p.ExpiredCertsOnCRL = t
		case e.Critical:
			return malformed("unknown critical extension "+e.Id.String(), nil)
		}
	}
	if p.Number == nil {
		return malformed("no cRLNumber", nil)
	}
	if !seen[oidAKI.String()] {
		return malformed("no authorityKeyIdentifier", nil)
	}
	return nil
}

// parseIDP reads an IssuingDistributionPoint that jpkica writes: a fullName
// with one URI, and onlyContainsUserCerts.
func parseIDP(der []byte) (string, bool, error) {
	var idp struct {
		DistributionPoint asn1.RawValue  `asn1:"optional,tag:0"`
		OnlyUser          bool           `asn1:"optional,tag:1"`
		OnlyCA            bool           `asn1:"optional,tag:2"`
		OnlySomeReasons   asn1.BitString `asn1:"optional,tag:3"`
		Indirect          bool           `asn1:"optional,tag:4"`
		OnlyAttr          bool           `asn1:"optional,tag:5"`
	}
	if rest, err := asn1.Unmarshal(der, &idp); err != nil || len(rest) > 0 {
		return "", false, fmt.Errorf("issuingDistributionPoint: %v", err)
	}
	if idp.OnlyCA || idp.Indirect || idp.OnlyAttr || idp.OnlySomeReasons.BitLength > 0 {
		return "", false, errors.New("issuingDistributionPoint with a scope jpkica does not use")
	}
	uri, err := fullNameURI(idp.DistributionPoint.FullBytes)
	return uri, idp.OnlyUser, err
}

// fullNameURI reads [0] { fullName [0] { [6] uri } }.
func fullNameURI(der []byte) (string, error) {
	if len(der) == 0 {
		return "", nil
	}
	tag, dpn, rest := splitTLV(der)
	if tag != 0xa0 || len(rest) > 0 {
		return "", errors.New("distributionPoint")
	}
	tag, names, rest := splitTLV(dpn)
	if tag != 0xa0 || len(rest) > 0 {
		return "", errors.New("fullName")
	}
	tag, uri, rest := splitTLV(names)
	if tag != 0x86 || len(rest) > 0 {
		return "", errors.New("want exactly one URI")
	}
	return string(uri), nil
}

// splitTLV splits one element off b: its tag, content and what follows. A
// malformed element gives tag 0.
func splitTLV(b []byte) (byte, []byte, []byte) {
	if len(b) < 2 {
		return 0, nil, nil
	}
	tag, l := b[0], int(b[1])
	off := 2
	if l&0x80 != 0 {
		k := l & 0x7f
		if k == 0 || k > 4 || len(b) < 2+k {
			return 0, nil, nil
		}
		l = 0
		for _, c := range b[2 : 2+k] {
			l = l<<8 | int(c)
		}
		off += k
	}
	if l < 0 || len(b)-off < l {
		return 0, nil, nil
	}
	return tag, b[off : off+l], b[off+l:]
}

// parseTime reads a UTCTime or GeneralizedTime as RFC 5280 allows them
// (seconds, Z) by hand: it is on the path of every entry.
func parseTime(tag byte, v []byte) (time.Time, error) {
	var y int
	switch {
	case tag == tagUTCTime && len(v) == 13:
		yy, ok := digits(v[0:2])
		if !ok {
			return time.Time{}, errors.New("bad UTCTime")
		}
		y = 1900 + yy
		if yy < 50 {
			y = 2000 + yy
		}
		v = v[2:]
	case tag == tagGeneralized && len(v) == 15:
		yy, ok := digits(v[0:4])
		if !ok || yy < 2050 && yy >= 1950 {
			return time.Time{}, errors.New("GeneralizedTime for a year UTCTime can carry")
		}
		y = yy
		v = v[4:]
	default:
		return time.Time{}, fmt.Errorf("time with tag %#x and %d bytes", tag, len(v))
	}
	if v[10] != 'Z' {
		return time.Time{}, errors.New("time not in UTC")
	}
	var f [5]int
	for i := range f {
		n, ok := digits(v[2*i : 2*i+2])
		if !ok {
			return time.Time{}, errors.New("bad time digits")
		}
		f[i] = n
	}
	t := time.Date(y, time.Month(f[0]), f[1], f[2], f[3], f[4], 0, time.UTC)
	if t.Month() != time.Month(f[0]) || t.Day() != f[1] || t.Hour() != f[2] || t.Minute() != f[3] || t.Second() != f[4] {
		return time.Time{}, errors.New("time out of range")
	}
	return t, nil
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// derReader reads DER from a buffered stream, counting bytes.
type derReader struct {
	r *bufio.Reader
	n int64
}

func (d *derReader) readFull(b []byte) error {
	if _, err := io.ReadFull(d.r, b); err != nil {
		return err
	}
	d.n += int64(len(b))
	return nil
}

func (d *derReader) peek() (byte, error) {
	b, err := d.r.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// header reads a tag and a definite DER length.
func (d *derReader) header() (byte, int64, error) {
	var h [2]byte
	if err := d.readFull(h[:]); err != nil {
		return 0, 0, err
	}
	if h[1] < 0x80 {
		return h[0], int64(h[1]), nil
	}
	k := int(h[1] & 0x7f)
	if k == 0 || k > 8 {
		return 0, 0, errors.New("unsupported length form")
	}
	var lb [8]byte
	if err := d.readFull(lb[:k]); err != nil {
		return 0, 0, err
	}
	if lb[0] == 0 {
		return 0, 0, errors.New("non-minimal length")
	}
	var n int64
	for _, c := range lb[:k] {
		n = n<<8 | int64(c)
	}
	if n < 0x80 || n < 0 {
		return 0, 0, errors.New("non-minimal length")
	}
	return h[0], n, nil
}

// element reads a whole element of at most max content bytes and returns
// its tag and full encoding.
func (d *derReader) element(max int64) (byte, []byte, error) {
	start := d.n
	var hdr []byte
	// Re-encode the header: it is canonical when header() accepts it.
	tag, n, err := d.header()
	if err != nil {
		return 0, nil, err
	}
	if n > max {
		return 0, nil, fmt.Errorf("element of %d bytes", n)
	}
	hdr = appendHeader(hdr, tag, n)
	if int64(len(hdr)) != d.n-start {
		return 0, nil, errors.New("non-minimal length")
	}
	out := make([]byte, len(hdr), len(hdr)+int(n))
	copy(out, hdr)
	out = out[:len(hdr)+int(n)]
	if err := d.readFull(out[len(hdr):]); err != nil {
		return 0, nil, err
	}
	return tag, out, nil
}

// time reads a Time element.
func (d *derReader) time() (time.Time, error) {
	tag, el, err := d.element(32)
	if err != nil {
		return time.Time{}, err
	}
	_, v, _ := splitTLV(el)
	return parseTime(tag, v)
}
