package ca

import (
	"crypto/sha256"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/text/encoding/japanese"
)

// Sex is the resident's sex as the signature certificate records it
// (otherName 1.2.392.200149.8.5.5.3).
type Sex int

// The codes of the register and the certificate.
const (
	Male       Sex = 1
	Female     Sex = 2
	SexUnknown Sex = 3
)

var sexNames = map[Sex]string{Male: "male", Female: "female", SexUnknown: "unknown"}

func (s Sex) String() string {
	if n, ok := sexNames[s]; ok {
		return n
	}
	return fmt.Sprintf("Sex(%d)", int(s))
}

// Valid reports whether s is one of the three codes.
func (s Sex) Valid() bool { _, ok := sexNames[s]; return ok }

// ParseSex reads the API's "male", "female" or "unknown".
func ParseSex(s string) (Sex, error) {
	for v, n := range sexNames {
		if n == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%w: sex %q: want male, female or unknown", ErrInvalid, s)
}

// Facts are the 4 facts (基本4情報) of the Basic Resident Register that a
// signature certificate carries.
type Facts struct {
	// Name: family name, a full-width space (U+3000), given name. Further
	// single full-width spaces are allowed (middle names).
	Name      string
	BirthDate Date
	Sex       Sex
	// Address: from the prefecture on, without the postcode.
	Address string
}

// MaxAddressChars is the longest address in characters (after substitution:
// a base character with its combining marks counts once).
const MaxAddressChars = 200

// MaxNameChars is the longest name in characters, counted as the address
// is. The register's names are far shorter; the bound is there for the
// card. A signature certificate with a name and an address of the most
// characters, each three bytes in UTF-8, stays within
// MaxCardCertificateBytes.
const MaxNameChars = 100

// MaxCardCertificateBytes is the size of the certificate file a card's
// JPKI application is assumed to hold (DER). The real size is not public.
// The limits above keep a signature certificate of the longest facts under
// it, with room for the profile to grow; the API's TestFactsAsSent holds
// them to that.
const MaxCardCertificateBytes = 4096

// SubstituteChar replaces, in the certificate, a character outside JIS X 0208
// levels 1-2 and JIS X 0212. It is the GETA MARK 〓 (U+3013, JIS X 0208 2-14),
// the substitute character of Japanese typesetting. A 〓 written in the input
// itself is an ordinary JIS X 0208 character: its map digit is 0.
const SubstituteChar = '〓'

// Era is a Japanese era as the birth-date otherName codes it.
type Era int

// The era digits (DOMAIN.md).
const (
	Meiji  Era = 1
	Taisho Era = 2
	Showa  Era = 3
	Heisei Era = 4
	Reiwa  Era = 5
)

// eraStarts lists each era's first day, newest first.
//
// Meiji: the proclamation of 1868-10-23 applied the era retroactively from
// the first day of that lunar year, Meiji 1-1-1, which is 1868-01-25 in the
// Gregorian calendar; that is the lower bound taken here. No living resident
// was born before it, so earlier dates are ErrInvalid.
var eraStarts = []struct {
	era   Era
	start Date
}{
	{Reiwa, Date{2019, time.May, 1}},
	{Heisei, Date{1989, time.January, 8}},
	{Showa, Date{1926, time.December, 25}},
	{Taisho, Date{1912, time.July, 30}},
	{Meiji, Date{1868, time.January, 25}},
}

// EraOf is the era in which d falls.
func EraOf(d Date) (Era, error) {
	if !d.Valid() {
		return 0, fmt.Errorf("%w: date %v", ErrInvalid, d)
	}
	for _, e := range eraStarts {
		if !d.Before(e.start) {
			return e.era, nil
		}
	}
	return 0, fmt.Errorf("%w: date %v is before the Meiji era", ErrInvalid, d)
}

// EncodeBirthDate is the birth-date otherName: the era digit, then the
// Gregorian date as YYYYMMDD ("419900502" for 1990-05-02, a Heisei date).
func EncodeBirthDate(d Date) (string, error) {
	era, err := EraOf(d)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d%04d%02d%02d", era, d.Year, int(d.Month), d.Day), nil
}

// DecodeBirthDate reads what EncodeBirthDate writes, checking that the era
// digit matches the date.
func DecodeBirthDate(s string) (Date, error) {
	if len(s) != 9 {
		return Date{}, fmt.Errorf("%w: birth date %q: want 9 digits", ErrInvalid, s)
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return Date{}, fmt.Errorf("%w: birth date %q: want 9 digits", ErrInvalid, s)
		}
	}
	d, err := ParseDate(s[1:5] + "-" + s[5:7] + "-" + s[7:9])
	if err != nil {
		return Date{}, err
	}
	era, err := EraOf(d)
	if err != nil {
		return Date{}, err
	}
	if Era(s[0]-'0') != era {
		return Date{}, fmt.Errorf("%w: birth date %q: era digit %c, the date is in era %d", ErrInvalid, s, s[0], era)
	}
	return d, nil
}

// EncodedFacts are the six otherName values of a signature certificate's
// subjectAltName, in the order of their OIDs 1.2.392.200149.8.5.5.1 to .6.
type EncodedFacts struct {
	Name       string // with substitute characters
	NameMap    string // one '0' or '1' per character of Name
	Sex        string // "1", "2" or "3"
	BirthDate  string // era digit + YYYYMMDD
	Address    string // with substitute characters
	AddressMap string // one '0' or '1' per character of Address
}

// Validate checks the facts: see Encode.
func (f Facts) Validate() error {
	_, err := f.Encode()
	return err
}

// Encode validates the facts and produces the certificate's values. Errors
// wrap ErrInvalid.
//
// Character rules, applied to Name and Address:
//   - Invalid UTF-8, control characters (Cc), format characters (Cf: zero
//     width spaces, joiners, bidi marks, BOM), and white space other than
//     the full-width space U+3000 are refused.
//   - Half-width characters (ASCII, half-width katakana) are refused, not
//     substituted and not widened: the register writes full-width forms,
//     and a counter that sends half-width text should fix it rather than
//     get a certificate full of 〓.
//   - A character is a base character with the combining marks (Mn, Me)
//     that follow it, such as an ideographic variation selector. It is kept
//     as it is if it is a single rune of JIS X 0208 rows 1-8 and 16-84
//     (non-kanji and kanji levels 1-2) or of JIS X 0212, and otherwise
//     replaced by one SubstituteChar with '1' in the map. So a kanji with a
//     variation selector (an 異体字 outside the two sets) becomes one 〓.
//     A string that starts with a combining mark is refused.
//   - For the JIS X 0208 cells that the JIS and the Microsoft mappings send
//     to different code points (～ and 〜, － and −, ∥ and ‖, ― and —,
//     ￠ ¢, ￡ £, ￢ ¬), both code points count as members and are kept as
//     written.
//   - Nothing else is normalised: no NFC, no width folding, no trimming.
//
// The name must contain a full-width space, and may not start or end with
// one or contain two in a row. The name is at most MaxNameChars characters,
// the address at most MaxAddressChars.
func (f Facts) Encode() (EncodedFacts, error) {
	var e EncodedFacts
	var err error
	if e.Name, e.NameMap, err = substitute(f.Name); err != nil {
		return EncodedFacts{}, fmt.Errorf("%w: name: %v", ErrInvalid, err)
	}
	if err := checkName(f.Name); err != nil {
		return EncodedFacts{}, fmt.Errorf("%w: name: %v", ErrInvalid, err)
	}
	if n := len(e.NameMap); n > MaxNameChars {
		return EncodedFacts{}, fmt.Errorf("%w: name: %d characters, at most %d", ErrInvalid, n, MaxNameChars)
	}
	if !f.Sex.Valid() {
		return EncodedFacts{}, fmt.Errorf("%w: sex %d", ErrInvalid, int(f.Sex))
	}
	e.Sex = fmt.Sprint(int(f.Sex))
	if e.BirthDate, err = EncodeBirthDate(f.BirthDate); err != nil {
		return EncodedFacts{}, fmt.Errorf("birth date: %w", err)
	}
	if e.Address, e.AddressMap, err = substitute(f.Address); err != nil {
		return EncodedFacts{}, fmt.Errorf("%w: address: %v", ErrInvalid, err)
	}
	if f.Address == "" {
		return EncodedFacts{}, fmt.Errorf("%w: address: empty", ErrInvalid)
	}
	if n := len(e.AddressMap); n > MaxAddressChars {
		return EncodedFacts{}, fmt.Errorf("%w: address: %d characters, at most %d", ErrInvalid, n, MaxAddressChars)
	}
	return e, nil
}

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty")
	}
	parts := strings.Split(name, "\u3000")
	if len(parts) < 2 {
		return fmt.Errorf("no full-width space (U+3000) between family and given name")
	}
	for _, p := range parts {
		if p == "" {
			return fmt.Errorf("leading, trailing or doubled full-width space")
		}
	}
	return nil
}

// substitute applies the character rules of Encode to s.
func substitute(s string) (out, charMap string, err error) {
	if !utf8.ValidString(s) {
		return "", "", fmt.Errorf("not valid UTF-8")
	}
	var o, m strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); {
		r := rs[i]
		if err := checkRune(r); err != nil {
			return "", "", fmt.Errorf("character %d (%U): %v", i+1, r, err)
		}
		if isMark(r) {
			return "", "", fmt.Errorf("character %d (%U): combining mark without a base character", i+1, r)
		}
		j := i + 1
		for j < len(rs) && isMark(rs[j]) {
			j++
		}
		if j == i+1 && inJIS(r) {
			o.WriteRune(r)
			m.WriteByte('0')
		} else {
			o.WriteRune(SubstituteChar)
			m.WriteByte('1')
		}
		i = j
	}
	return o.String(), m.String(), nil
}

func isMark(r rune) bool { return unicode.In(r, unicode.Mn, unicode.Me) }

func checkRune(r rune) error {
	switch {
	case unicode.In(r, unicode.Cc, unicode.Cf):
		return fmt.Errorf("control or format character")
	case r == '\u3000':
		return nil
	case unicode.IsSpace(r) || unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp):
		return fmt.Errorf("white space other than the full-width space U+3000")
	case r < 0x80 || (r >= 0xff61 && r <= 0xff9f):
		return fmt.Errorf("half-width character: write it in full width")
	}
	return nil
}

// jisAliases are the code points of the JIS mapping for JIS X 0208 cells
// that x/text (following the WHATWG/Microsoft mapping) decodes to another
// code point.
var jisAliases = []rune{
	'\u301C', // WAVE DASH, 1-33 (x/text: U+FF5E)
	'\u2212', // MINUS SIGN, 1-61 (U+FF0D)
	'\u2016', // DOUBLE VERTICAL LINE, 1-34 (U+2225)
	'\u2014', // EM DASH, 1-29 (U+2015)
	'\u00A2', // CENT SIGN, 1-81 (U+FFE0)
	'\u00A3', // POUND SIGN, 1-82 (U+FFE1)
	'\u00AC', // NOT SIGN, 2-44 (U+FFE2)
}

// jisSet is the set of runes of JIS X 0208 rows 1-8 and 16-84 and of JIS X
// 0212, built once by decoding every cell with x/text's EUC-JP decoder.
// EUC-JP's encoder is not used: x/text's JIS X 0208 table also holds the NEC
// row 13 and the IBM extension rows 89-92, which are not JIS X 0208, and it
// encodes some JIS X 0212 kanji (髙) into those extension rows.
var jisSet = sync.OnceValue(func() map[rune]struct{} {
	set := make(map[rune]struct{}, 7000+6100)
	dec := japanese.EUCJP.NewDecoder()
	add := func(b []byte) {
		out, err := dec.Bytes(b)
		if err != nil {
			return
		}
		r, n := utf8.DecodeRune(out)
		if r != utf8.RuneError && n == len(out) {
			set[r] = struct{}{}
		}
	}
	for row := 1; row <= 94; row++ {
		for cell := 1; cell <= 94; cell++ {
			b1, b2 := byte(0xa0+row), byte(0xa0+cell)
			if (row >= 1 && row <= 8) || (row >= 16 && row <= 84) {
				add([]byte{b1, b2})
			}
			add([]byte{0x8f, b1, b2})
		}
	}
	for _, r := range jisAliases {
		set[r] = struct{}{}
	}
	return set
})

// inJIS reports whether r is in JIS X 0208 levels 1-2 (with its non-kanji
// rows) or JIS X 0212.
func inJIS(r rune) bool {
	_, ok := jisSet()[r]
	return ok
}

// Hash is SHA-256 over a canonical encoding of the facts as given (before
// substitution, so two different characters that both become 〓 still hash
// differently): the label "jpkica facts v1", then the name, the birth date
// as YYYY-MM-DD, the sex digit and the address, each prefixed with its
// length in bytes as a 4-byte big-endian integer. The store keeps it to
// tell whether a resident's 4 facts changed.
func (f Facts) Hash() []byte {
	h := sha256.New()
	for _, field := range []string{"jpkica facts v1", f.Name, f.BirthDate.String(), fmt.Sprint(int(f.Sex)), f.Address} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(field)))
		h.Write(n[:])
		h.Write([]byte(field))
	}
	return h.Sum(nil)
}

// The otherName type-ids of the 4 facts, in EncodedFacts' field order.
var (
	OIDFactName       = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 1}
	OIDFactNameMap    = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 2}
	OIDFactSex        = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 3}
	OIDFactBirthDate  = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 4}
	OIDFactAddress    = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 5}
	OIDFactAddressMap = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 6}
)

func (e *EncodedFacts) fields() []struct {
	oid asn1.ObjectIdentifier
	v   *string
} {
	return []struct {
		oid asn1.ObjectIdentifier
		v   *string
	}{
		{OIDFactName, &e.Name}, {OIDFactNameMap, &e.NameMap}, {OIDFactSex, &e.Sex},
		{OIDFactBirthDate, &e.BirthDate}, {OIDFactAddress, &e.Address}, {OIDFactAddressMap, &e.AddressMap},
	}
}

// MarshalSubjectAltName is the DER of the subjectAltName extension value:
// GeneralNames holding six otherName entries ([0] IMPLICIT OtherName), each
// value a [0] EXPLICIT UTF8String.
func (e EncodedFacts) MarshalSubjectAltName() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, f := range e.fields() {
			if !utf8.ValidString(*f.v) {
				b.SetError(fmt.Errorf("%w: otherName %v: not UTF-8", ErrInvalid, f.oid))
				return
			}
			b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(f.oid)
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(*f.v)) })
				})
			})
		}
	})
	return b.Bytes()
}

// ParseSubjectAltNameFacts reads the 4 facts back from a signature
// certificate's subjectAltName extension value. Every one of the six
// otherNames must be present exactly once; other GeneralNames are ErrInvalid.
func ParseSubjectAltNameFacts(extValue []byte) (EncodedFacts, error) {
	var e EncodedFacts
	bad := func(what string) (EncodedFacts, error) {
		return EncodedFacts{}, fmt.Errorf("%w: subjectAltName: %s", ErrInvalid, what)
	}
	in := cryptobyte.String(extValue)
	var names cryptobyte.String
	if !in.ReadASN1(&names, cbasn1.SEQUENCE) || !in.Empty() {
		return bad("not a GeneralNames SEQUENCE")
	}
	seen := map[string]bool{}
	for !names.Empty() {
		var on, val, utf cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !names.ReadASN1(&on, cbasn1.Tag(0).ContextSpecific().Constructed()) ||
			!on.ReadASN1ObjectIdentifier(&oid) ||
			!on.ReadASN1(&val, cbasn1.Tag(0).ContextSpecific().Constructed()) || !on.Empty() ||
			!val.ReadASN1(&utf, cbasn1.UTF8String) || !val.Empty() {
			return bad("an entry that is not an otherName with a [0] EXPLICIT UTF8String")
		}
		if !utf8.Valid(utf) {
			return bad(fmt.Sprintf("otherName %v not UTF-8", oid))
		}
		found := false
		for _, f := range e.fields() {
			if f.oid.Equal(oid) {
				if seen[oid.String()] {
					return bad(fmt.Sprintf("otherName %v twice", oid))
				}
				seen[oid.String()] = true
				*f.v = string(utf)
				found = true
			}
		}
		if !found {
			return bad(fmt.Sprintf("unknown otherName %v", oid))
		}
	}
	if len(seen) != 6 {
		return bad(fmt.Sprintf("%d of the 6 facts", len(seen)))
	}
	return e, nil
}
