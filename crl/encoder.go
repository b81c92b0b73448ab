package crl

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"time"

	"github.com/jpkica/jpkica/ca"
)

// Entry is one revoked certificate of a CRL.
type Entry struct {
	Serial    ca.Serial
	RevokedAt time.Time
	// Reason is written as a reasonCode entry extension unless it is
	// Unspecified (RFC 5280 section 5.3.1), as crypto/x509 does.
	Reason ca.Reason
}

// Yield takes one entry of a Source: serial is the big-endian magnitude of
// the serial number (no leading zero bytes), only valid during the call, so
// a Source can reuse one buffer for millions of rows.
type Yield func(serial []byte, revokedAt time.Time, reason ca.Reason) error

// Source yields a CRL's entries in strictly increasing serial order, calling
// yield once per entry, and returns yield's first error.
type Source func(ctx context.Context, yield Yield) error

// SliceSource is a Source over entries held in memory (tests, benchmarks).
func SliceSource(entries []Entry) Source {
	return func(ctx context.Context, yield Yield) error {
		for _, e := range entries {
			if err := yield(e.Serial.Bytes(), e.RevokedAt, e.Reason); err != nil {
				return err
			}
		}
		return nil
	}
}

// Spec describes one CRL: everything but its entries.
type Spec struct {
	// Issuer names the CRL issuer (its RawSubject) and gives the
	// authorityKeyIdentifier (its SubjectKeyId).
	Issuer     *x509.Certificate
	Number     *big.Int
	ThisUpdate time.Time
	NextUpdate time.Time
	// IDP, when not empty, is the partition's URL: the CRL carries a
	// critical issuingDistributionPoint with it as fullName and
	// onlyContainsUserCerts (RFC 5280 section 5.2.5).
	IDP string
	// DeltaBase, when set, makes this a delta CRL: a critical
	// deltaCRLIndicator naming the base CRL number (section 5.2.4).
	DeltaBase *big.Int
	// FreshestCRL, when not empty, is the URL of the delta CRLs for a
	// complete CRL (section 5.2.6).
	FreshestCRL string
	// ExpiredCertsOnCRL, when not zero, is the expiredCertsOnCRL extension
	// (X.509 (2019) 9.6.2.9, 2.5.29.60): entries are kept for certificates
	// that expired at or after it.
	ExpiredCertsOnCRL time.Time
	// SignatureAlgorithm defaults to crypto/x509's choice for the key.
	SignatureAlgorithm x509.SignatureAlgorithm
}

// Info describes an encoded CRL.
type Info struct {
	Number    *big.Int
	Entries   int64
	Size      int64 // bytes of DER written
	TBSDigest []byte
	Signature []byte
}

// Sentinel errors of the crl package; match them with errors.Is.
var (
	// ErrInvalid: a Spec or Config that cannot be used.
	ErrInvalid = errors.New("invalid CRL input")
	// ErrEntryOrder: a Source yielded a serial not strictly greater than the
	// one before (unsorted or duplicate).
	ErrEntryOrder = errors.New("CRL entries out of serial order")
	// ErrUnsupportedKey: the signer's key cannot sign a streamed CRL
	// (Ed25519 signs the whole message, not a digest).
	ErrUnsupportedKey = errors.New("unsupported CRL signing key")
	// ErrSigner: the signer failed or returned a signature that does not
	// verify.
	ErrSigner = errors.New("CRL signer failed")
)

// Object identifiers of the CRL and CRL entry extensions.
var (
	oidAKI               = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber         = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIDP               = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidFreshestCRL       = asn1.ObjectIdentifier{2, 5, 29, 46}
	oidExpiredCertsOnCRL = asn1.ObjectIdentifier{2, 5, 29, 60}
	oidReasonCode        = asn1.ObjectIdentifier{2, 5, 29, 21}
)

// sigAlg is a signature algorithm the encoder can stream: a digest then
// crypto.Signer.Sign.
type sigAlg struct {
	algo x509.SignatureAlgorithm
	hash crypto.Hash
	der  []byte // the AlgorithmIdentifier
}

var (
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

func mustAlgID(oid asn1.ObjectIdentifier, null bool) []byte {
	ai := pkix.AlgorithmIdentifier{Algorithm: oid}
	if null {
		ai.Parameters = asn1.NullRawValue
	}
	b, err := asn1.Marshal(ai)
	if err != nil {
		panic(err)
	}
	return b
}

var sigAlgs = map[x509.SignatureAlgorithm]sigAlg{
	x509.SHA256WithRSA:   {x509.SHA256WithRSA, crypto.SHA256, mustAlgID(oidSHA256WithRSA, true)},
	x509.SHA384WithRSA:   {x509.SHA384WithRSA, crypto.SHA384, mustAlgID(oidSHA384WithRSA, true)},
	x509.SHA512WithRSA:   {x509.SHA512WithRSA, crypto.SHA512, mustAlgID(oidSHA512WithRSA, true)},
	x509.ECDSAWithSHA256: {x509.ECDSAWithSHA256, crypto.SHA256, mustAlgID(oidECDSAWithSHA256, false)},
	x509.ECDSAWithSHA384: {x509.ECDSAWithSHA384, crypto.SHA384, mustAlgID(oidECDSAWithSHA384, false)},
	x509.ECDSAWithSHA512: {x509.ECDSAWithSHA512, crypto.SHA512, mustAlgID(oidECDSAWithSHA512, false)},
}

// signatureAlgorithm picks the algorithm as crypto/x509 does: SHA-256 with
// RSA PKCS#1 v1.5, ECDSA with the curve's hash, unless one is asked for.
func signatureAlgorithm(pub crypto.PublicKey, want x509.SignatureAlgorithm) (sigAlg, error) {
	var def x509.SignatureAlgorithm
	isRSA := false
	switch k := pub.(type) {
	case *rsa.PublicKey:
		def, isRSA = x509.SHA256WithRSA, true
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P224(), elliptic.P256():
			def = x509.ECDSAWithSHA256
		case elliptic.P384():
			def = x509.ECDSAWithSHA384
		case elliptic.P521():
			def = x509.ECDSAWithSHA512
		default:
			return sigAlg{}, fmt.Errorf("%w: elliptic curve %v", ErrUnsupportedKey, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		return sigAlg{}, fmt.Errorf("%w: Ed25519 cannot sign a digest", ErrUnsupportedKey)
	default:
		return sigAlg{}, fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
	}
	if want == 0 {
		want = def
	}
	a, ok := sigAlgs[want]
	if !ok {
		return sigAlg{}, fmt.Errorf("%w: signature algorithm %v", ErrUnsupportedKey, want)
	}
	switch want {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA:
		if !isRSA {
			return sigAlg{}, fmt.Errorf("%w: %v with a %T key", ErrUnsupportedKey, want, pub)
		}
	default:
		if isRSA {
			return sigAlg{}, fmt.Errorf("%w: %v with an RSA key", ErrUnsupportedKey, want)
		}
	}
	return a, nil
}

// reasonExts are the crlEntryExtensions of each reason code: a SEQUENCE
// holding one reasonCode extension with an ENUMERATED.
var reasonExts = func() [11][]byte {
	var out [11][]byte
	for r := 1; r <= 10; r++ {
		if r == 7 { // not used by RFC 5280
			continue
		}
		ext := appendExtension(nil, oidReasonCode, false, []byte{tagEnumerated, 1, byte(r)})
		out[r] = appendTLV(nil, tagSequence, ext)
	}
	return out
}()

// appendEntry appends one revokedCertificates element.
func appendEntry(b []byte, serial []byte, at time.Time, reason ca.Reason) ([]byte, error) {
	var ext []byte
	if reason != ca.Unspecified {
		if reason < 0 || int(reason) >= len(reasonExts) || reasonExts[reason] == nil {
			return b, fmt.Errorf("%w: reason code %d", ErrInvalid, int(reason))
		}
		ext = reasonExts[reason]
	}
	mag := serial
	intLen := int64(len(mag))
	if mag[0]&0x80 != 0 {
		intLen++
	}
	n := tlvSize(intLen) + timeSize(at) + int64(len(ext))
	b = appendHeader(b, tagSequence, n)
	b = appendUnsignedInteger(b, mag)
	b = appendTime(b, at)
	return append(b, ext...), nil
}

// extensions returns the DER of the crlExtensions field ([0] EXPLICIT
// Extensions) in crypto/x509's order: authorityKeyIdentifier, cRLNumber, then
// issuingDistributionPoint, deltaCRLIndicator, freshestCRL and
// expiredCertsOnCRL, each when the Spec asks for it.
func (s *Spec) extensions() ([]byte, error) {
	var exts []byte
	aki := appendTLV(nil, 0x80, s.Issuer.SubjectKeyId)
	exts = appendExtension(exts, oidAKI, false, appendTLV(nil, tagSequence, aki))
	exts = appendExtension(exts, oidCRLNumber, false, appendUnsignedInteger(nil, s.Number.Bytes()))
	for _, e := range s.extraExtensions() {
		exts = appendExtension(exts, e.Id, e.Critical, e.Value)
	}
	inner := appendTLV(nil, tagSequence, exts)
	return appendTLV(nil, tagContext0, inner), nil
}

// extraExtensions are the CRL extensions after cRLNumber, as
// x509.RevocationList.ExtraExtensions would carry them.
func (s *Spec) extraExtensions() []pkix.Extension {
	var out []pkix.Extension
	if s.IDP != "" {
		out = append(out, pkix.Extension{Id: oidIDP, Critical: true, Value: idpValue(s.IDP)})
	}
	if s.DeltaBase != nil {
		out = append(out, pkix.Extension{Id: oidDeltaCRLIndicator, Critical: true, Value: appendUnsignedInteger(nil, s.DeltaBase.Bytes())})
	}
	if s.FreshestCRL != "" {
		dp := appendTLV(nil, tagSequence, distributionPointName(s.FreshestCRL))
		out = append(out, pkix.Extension{Id: oidFreshestCRL, Value: appendTLV(nil, tagSequence, dp)})
	}
	if !s.ExpiredCertsOnCRL.IsZero() {
		t := s.ExpiredCertsOnCRL.UTC()
		g := []byte(t.Format("20060102150405Z"))
		out = append(out, pkix.Extension{Id: oidExpiredCertsOnCRL, Value: appendTLV(nil, tagGeneralized, g)})
	}
	return out
}

// distributionPointName is [0] { fullName [0] { uniformResourceIdentifier
// [6] uri } }.
func distributionPointName(uri string) []byte {
	gn := appendTLV(nil, 0x86, []byte(uri))
	full := appendTLV(nil, 0xa0, gn)
	return appendTLV(nil, 0xa0, full)
}

// idpValue is IssuingDistributionPoint { distributionPoint fullName uri,
// onlyContainsUserCerts TRUE }.
func idpValue(uri string) []byte {
	v := distributionPointName(uri)
	v = append(v, 0x81, 1, 0xff)
	return appendTLV(nil, tagSequence, v)
}

func (s *Spec) validate() error {
	switch {
	case s.Issuer == nil:
		return fmt.Errorf("%w: no issuer certificate", ErrInvalid)
	case len(s.Issuer.SubjectKeyId) == 0:
		return fmt.Errorf("%w: issuer certificate without subject key identifier", ErrInvalid)
	case s.Issuer.KeyUsage&x509.KeyUsageCRLSign == 0:
		return fmt.Errorf("%w: issuer certificate lacks the cRLSign key usage", ErrInvalid)
	case s.Number == nil || s.Number.Sign() < 0:
		return fmt.Errorf("%w: no CRL number", ErrInvalid)
	case len(s.Number.Bytes()) > 20 || len(s.Number.Bytes()) == 20 && s.Number.Bytes()[0]&0x80 != 0:
		return fmt.Errorf("%w: CRL number exceeds 20 octets", ErrInvalid)
	case s.ThisUpdate.IsZero() || s.NextUpdate.IsZero():
		return fmt.Errorf("%w: thisUpdate and nextUpdate are required", ErrInvalid)
	case s.NextUpdate.Before(s.ThisUpdate):
		return fmt.Errorf("%w: nextUpdate before thisUpdate", ErrInvalid)
	case s.DeltaBase != nil && (s.DeltaBase.Sign() < 0 || s.DeltaBase.Cmp(s.Number) >= 0):
		return fmt.Errorf("%w: delta base %v not below the CRL number %v", ErrInvalid, s.DeltaBase, s.Number)
	}
	return nil
}

// Options tunes Encode; the zero value is fine.
type Options struct {
	// SpoolDir holds the temporary spool of large CRLs ("" = os.TempDir()).
	SpoolDir string
	// MemoryLimit is how many bytes of entries stay in memory before the
	// spool moves to a file (default 4 MiB).
	MemoryLimit int
	// Progress, when set, is called with the number of entries encoded so
	// far, every ProgressEvery entries (default 65536) and once at the end.
	Progress      func(entries int64)
	ProgressEvery int64
	// Rand is handed to signers that take randomness (ECDSA in software);
	// nil means crypto/rand. RSA PKCS#1 v1.5 uses none.
	Rand io.Reader
}

// Encode writes a signed CRL to out: the entries of src, streamed.
//
// Encoding is two passes over bytes, one over the Source. The first pass
// encodes each entry as it arrives into a spool (memory up to
// Options.MemoryLimit, then an unlinked temporary file), checking serial
// order and summing sizes, so the length of revokedCertificates, and with it
// every length in front of it, is known when the Source ends. The second
// pass writes header, spool and extensions to out and through the hash at
// once (RSA: the signature's length is known in advance), then one signature
// is made through signer and appended; for ECDSA, whose signatures vary in
// length, hashing and writing are two passes. Memory is bounded by the
// spool's buffer, whatever the number of entries. The signature is verified
// against signer.Public(), as crypto/x509 does. After an error, out may hold
// a partial CRL: write to a temporary file.
func Encode(ctx context.Context, spec Spec, signer crypto.Signer, src Source, out io.Writer, opt Options) (Info, error) {
	if err := spec.validate(); err != nil {
		return Info{}, err
	}
	alg, err := signatureAlgorithm(signer.Public(), spec.SignatureAlgorithm)
	if err != nil {
		return Info{}, err
	}
	sp := newSpool(opt.SpoolDir, opt.MemoryLimit)
	defer sp.close()

	every := opt.ProgressEvery
	if every <= 0 {
		every = 65536
	}
	var (
		count int64
		prev  = make([]byte, 0, 32)
		buf   = make([]byte, 0, 64<<10)
	)
	err = src(ctx, func(sn []byte, at time.Time, reason ca.Reason) error {
		if len(sn) == 0 || sn[0] == 0 {
			return fmt.Errorf("%w: entry with serial %x (zero or not minimal)", ErrInvalid, sn)
		}
		if at.IsZero() {
			return fmt.Errorf("%w: entry %x without revocation time", ErrInvalid, sn)
		}
		if count > 0 && compareMagnitude(prev, sn) >= 0 {
			return fmt.Errorf("%w: %x after %x", ErrEntryOrder, sn, prev)
		}
		var err error
		buf, err = appendEntry(buf, sn, at, reason)
		if err != nil {
			return fmt.Errorf("entry %x: %w", sn, err)
		}
		prev = append(prev[:0], sn...)
		count++
		if len(buf) >= 60<<10 {
			if _, err := sp.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if count%every == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if opt.Progress != nil {
				opt.Progress(count)
			}
		}
		return nil
	})
	if err != nil {
		return Info{}, fmt.Errorf("reading CRL entries: %w", err)
	}
	if _, err := sp.Write(buf); err != nil {
		return Info{}, err
	}
	if opt.Progress != nil {
		opt.Progress(count)
	}

	// Everything in front of the entries, and the extensions after them.
	exts, err := spec.extensions()
	if err != nil {
		return Info{}, err
	}
	issuerName := spec.Issuer.RawSubject
	entriesLen := sp.size()
	tbsLen := int64(3) + int64(len(alg.der)) + int64(len(issuerName)) +
		timeSize(spec.ThisUpdate) + timeSize(spec.NextUpdate) + int64(len(exts))
	if count > 0 {
		tbsLen += tlvSize(entriesLen)
	}
	head := make([]byte, 0, 256+len(issuerName))
	head = appendHeader(head, tagSequence, tbsLen)
	head = append(head, tagInteger, 1, 1) // v2
	head = append(head, alg.der...)
	head = append(head, issuerName...)
	head = appendTime(head, spec.ThisUpdate)
	head = appendTime(head, spec.NextUpdate)
	if count > 0 {
		head = appendHeader(head, tagSequence, entriesLen)
	}

	h := alg.hash.New()
	w := bufio.NewWriterSize(out, 256<<10)
	signAndCheck := func(digest []byte) ([]byte, error) {
		sig, err := sign(ctx, signer, digest, alg.hash, opt.Rand)
		if err != nil {
			return nil, err
		}
		if err := verifyDigest(signer.Public(), alg.hash, digest, sig); err != nil {
			return nil, fmt.Errorf("%w: the signature does not verify: %v", ErrSigner, err)
		}
		return sig, nil
	}
	tail := func(sig []byte) []byte {
		t := append([]byte{}, alg.der...)
		t = appendHeader(t, tagBitString, int64(len(sig))+1)
		t = append(t, 0)
		return append(t, sig...)
	}
	outer := func(sigLen int) []byte {
		total := tlvSize(tbsLen) + int64(len(alg.der)) + tlvSize(int64(sigLen)+1)
		return appendHeader(nil, tagSequence, total)
	}
	var (
		digest, sig []byte
		size        int64
	)
	if rsaKey, ok := signer.Public().(*rsa.PublicKey); ok {
		// The signature's length is the modulus': every length is known
		// now, so the spool is hashed and written in one pass.
		sigLen := (rsaKey.N.BitLen() + 7) / 8
		o := outer(sigLen)
		w.Write(o)
		tee := io.MultiWriter(w, h)
		tee.Write(head)
		if err := sp.replay(tee); err != nil {
			return Info{}, fmt.Errorf("writing CRL: %w", err)
		}
		tee.Write(exts)
		digest = h.Sum(nil)
		if sig, err = signAndCheck(digest); err != nil {
			return Info{}, err
		}
		if len(sig) != sigLen {
			return Info{}, fmt.Errorf("%w: RSA signature of %d bytes, want %d", ErrSigner, len(sig), sigLen)
		}
		t := tail(sig)
		w.Write(t)
		size = int64(len(o)+len(head)+len(exts)+len(t)) + entriesLen
	} else {
		// ECDSA signatures vary in length: hash first, then write.
		h.Write(head)
		if err := sp.replay(h); err != nil {
			return Info{}, fmt.Errorf("hashing CRL: %w", err)
		}
		h.Write(exts)
		digest = h.Sum(nil)
		if sig, err = signAndCheck(digest); err != nil {
			return Info{}, err
		}
		o, t := outer(len(sig)), tail(sig)
		w.Write(o)
		w.Write(head)
		if err := sp.replay(w); err != nil {
			return Info{}, fmt.Errorf("writing CRL: %w", err)
		}
		w.Write(exts)
		w.Write(t)
		size = int64(len(o)+len(head)+len(exts)+len(t)) + entriesLen
	}
	if err := w.Flush(); err != nil {
		return Info{}, fmt.Errorf("writing CRL: %w", err)
	}
	return Info{
		Number:    new(big.Int).Set(spec.Number),
		Entries:   count,
		Size:      size,
		TBSDigest: digest,
		Signature: sig,
	}, nil
}

// compareMagnitude compares two big-endian magnitudes without leading zeros.
func compareMagnitude(a, b []byte) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return bytes.Compare(a, b)
}

// contextSigner is a signer that takes a context (the hsm package's).
type contextSigner interface {
	SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// sign signs the digest, through SignContext when the signer has it.
func sign(ctx context.Context, signer crypto.Signer, digest []byte, h crypto.Hash, rnd io.Reader) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var (
		sig []byte
		err error
	)
	if cs, ok := signer.(contextSigner); ok {
		sig, err = cs.SignContext(ctx, digest, h)
	} else {
		sig, err = signer.Sign(rnd, digest, h)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSigner, err)
	}
	return sig, nil
}

// verifyDigest checks a signature over a digest.
func verifyDigest(pub crypto.PublicKey, h crypto.Hash, digest, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, h, digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA verification failed")
		}
		return nil
	}
	return fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

// spool keeps the encoded entries: in memory up to a limit, then in an
// unlinked temporary file.
type spool struct {
	dir   string
	limit int
	mem   []byte
	f     *os.File
	w     *bufio.Writer
	n     int64
}

func newSpool(dir string, limit int) *spool {
	if limit <= 0 {
		limit = 4 << 20
	}
	return &spool{dir: dir, limit: limit}
}

func (s *spool) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	if s.f == nil && len(s.mem)+len(p) <= s.limit {
		s.mem = append(s.mem, p...)
		return len(p), nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "jpkica-crl-spool-*")
		if err != nil {
			return 0, fmt.Errorf("creating CRL spool: %w", err)
		}
		os.Remove(f.Name()) // unlinked: nothing is left behind by a crash
		s.f = f
		s.w = bufio.NewWriterSize(f, 256<<10)
		if _, err := s.w.Write(s.mem); err != nil {
			return 0, fmt.Errorf("writing CRL spool: %w", err)
		}
		s.mem = nil
	}
	if _, err := s.w.Write(p); err != nil {
		return 0, fmt.Errorf("writing CRL spool: %w", err)
	}
	return len(p), nil
}

func (s *spool) size() int64 { return s.n }

// replay writes the spool's bytes to w.
func (s *spool) replay(w io.Writer) error {
	if s.f == nil {
		_, err := w.Write(s.mem)
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{s.f}, buf)
	if err != nil {
		return err
	}
	if n != s.n {
		return fmt.Errorf("spool gave %d bytes of %d", n, s.n)
	}
	return nil
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
	}
	s.mem = nil
}
