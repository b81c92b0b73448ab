package ca

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSex(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Sex
		code int
	}{{"male", Male, 1}, {"female", Female, 2}, {"unknown", SexUnknown, 3}} {
		got, err := ParseSex(tc.in)
		if err != nil || got != tc.want || int(got) != tc.code || got.String() != tc.in {
			t.Errorf("ParseSex(%q) = %v (%d), %v", tc.in, got, int(got), err)
		}
	}
	for _, in := range []string{"", "Male", "1", "m"} {
		if _, err := ParseSex(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSex(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestBirthDateEra(t *testing.T) {
	for _, tc := range []struct {
		date, want string
		wantErr    bool
	}{
		{"1868-01-24", "", true},
		{"1868-01-25", "118680125", false},
		{"1912-07-29", "119120729", false},
		{"1912-07-30", "219120730", false},
		{"1926-12-24", "219261224", false},
		{"1926-12-25", "319261225", false},
		{"1989-01-07", "319890107", false},
		{"1989-01-08", "419890108", false},
		{"1990-05-02", "419900502", false},
		{"2019-04-30", "420190430", false},
		{"2019-05-01", "520190501", false},
		{"2025-10-27", "520251027", false},
	} {
		t.Run(tc.date, func(t *testing.T) {
			got, err := EncodeBirthDate(mustDate(t, tc.date))
			if tc.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("EncodeBirthDate = %q, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("EncodeBirthDate = %q, %v; want %q", got, err, tc.want)
			}
			back, err := DecodeBirthDate(got)
			if err != nil || back != mustDate(t, tc.date) {
				t.Fatalf("DecodeBirthDate(%q) = %v, %v", got, back, err)
			}
		})
	}
	for _, bad := range []string{"319900502", "41990050", "4199005021", "4199013a2", "419900230", "519900502"} {
		if _, err := DecodeBirthDate(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeBirthDate(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func validFacts() Facts {
	return Facts{
		Name:      "和歌山\u3000太郎",
		BirthDate: Date{1990, 5, 2},
		Sex:       Male,
		Address:   "和歌山県和歌山市七番丁２３番地",
	}
}

func TestFactsEncode(t *testing.T) {
	for _, tc := range []struct {
		name            string
		edit            func(*Facts)
		wantName        string
		wantNameMap     string
		wantAddress     string
		wantAddressMap  string
		wantErr         bool
		wantSex, wantBD string
	}{
		{name: "plain", edit: func(*Facts) {},
			wantName: "和歌山\u3000太郎", wantNameMap: "000000",
			wantAddress: "和歌山県和歌山市七番丁２３番地", wantAddressMap: "000000000000000",
			wantSex: "1", wantBD: "419900502"},
		// 𠮷 (U+20BB7) is in neither set; 髙 (U+9AD9) and 﨑 (U+FA11) are
		// IBM extensions that x/text's EUC-JP encoder accepts, but they are
		// in neither JIS X 0208 nor JIS X 0212.
		{name: "outside characters", edit: func(f *Facts) { f.Name = "𠮷田\u3000髙﨑" },
			wantName: "〓田\u3000〓〓", wantNameMap: "10011"},
		// ① is NEC row 13, not JIS X 0208.
		{name: "NEC row 13", edit: func(f *Facts) { f.Address = "東京都千代田区①" }, wantAddress: "東京都千代田区〓", wantAddressMap: "00000001"},
		// JIS X 0212 non-kanji and kanji.
		{name: "JIS X 0212", edit: func(f *Facts) { f.Name = "丂\u3000˘" }, wantName: "丂\u3000˘", wantNameMap: "000"},
		// A variation sequence is one character, substituted once.
		{name: "variation selector", edit: func(f *Facts) { f.Name = "葛\U000E0100城\u3000花子" }, wantName: "〓城\u3000花子", wantNameMap: "10000"},
		{name: "private use", edit: func(f *Facts) { f.Name = "\uE000山\u3000花子" }, wantName: "〓山\u3000花子", wantNameMap: "10000"},
		{name: "geta in input is literal", edit: func(f *Facts) { f.Name = "〓\u3000花子" }, wantName: "〓\u3000花子", wantNameMap: "0000"},
		{name: "wave dash both mappings", edit: func(f *Facts) { f.Address = "一〜二～三" }, wantAddress: "一〜二～三", wantAddressMap: "00000"},
		{name: "middle name", edit: func(f *Facts) { f.Name = "スミス\u3000ジョン\u3000ポール" }, wantName: "スミス\u3000ジョン\u3000ポール", wantNameMap: "00000000000"},
		{name: "address with full-width space", edit: func(f *Facts) { f.Address = "東京都\u3000千代田区" }, wantAddress: "東京都\u3000千代田区", wantAddressMap: "00000000"},
		{name: "address 200", edit: func(f *Facts) { f.Address = strings.Repeat("町", 199) + "𠮷" }, wantAddressMap: strings.Repeat("0", 199) + "1"},
		{name: "address 200 with marks", edit: func(f *Facts) { f.Address = strings.Repeat("葛\U000E0100", 200) }, wantAddressMap: strings.Repeat("1", 200)},

		{name: "address 201", edit: func(f *Facts) { f.Address = strings.Repeat("町", 201) }, wantErr: true},
		{name: "address empty", edit: func(f *Facts) { f.Address = "" }, wantErr: true},
		{name: "half-width space in name", edit: func(f *Facts) { f.Name = "和歌山 太郎" }, wantErr: true},
		{name: "no space in name", edit: func(f *Facts) { f.Name = "和歌山太郎" }, wantErr: true},
		{name: "leading space", edit: func(f *Facts) { f.Name = "\u3000和歌山\u3000太郎" }, wantErr: true},
		{name: "trailing space", edit: func(f *Facts) { f.Name = "和歌山\u3000太郎\u3000" }, wantErr: true},
		{name: "doubled space", edit: func(f *Facts) { f.Name = "和歌山\u3000\u3000太郎" }, wantErr: true},
		{name: "ASCII", edit: func(f *Facts) { f.Name = "SMITH\u3000JOHN" }, wantErr: true},
		{name: "half-width katakana", edit: func(f *Facts) { f.Name = "ｽﾐｽ\u3000ｼﾞｮﾝ" }, wantErr: true},
		{name: "control", edit: func(f *Facts) { f.Address = "東京都\n千代田区" }, wantErr: true},
		{name: "zero width space", edit: func(f *Facts) { f.Address = "東京都\u200B千代田区" }, wantErr: true},
		{name: "leading mark", edit: func(f *Facts) { f.Name = "\u3099和歌山\u3000太郎" }, wantErr: true},
		{name: "invalid UTF-8", edit: func(f *Facts) { f.Name = "和歌山\u3000\xff" }, wantErr: true},
		{name: "bad sex", edit: func(f *Facts) { f.Sex = 4 }, wantErr: true},
		{name: "no birth date", edit: func(f *Facts) { f.BirthDate = Date{} }, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := validFacts()
			tc.edit(&f)
			e, err := f.Encode()
			if tc.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Encode = %+v, %v; want ErrInvalid", e, err)
				}
				if !errors.Is(f.Validate(), ErrInvalid) {
					t.Fatal("Validate accepts what Encode refuses")
				}
				return
			}
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			check := func(field, got, want string) {
				if want != "" && got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			check("Name", e.Name, tc.wantName)
			check("NameMap", e.NameMap, tc.wantNameMap)
			check("Address", e.Address, tc.wantAddress)
			check("AddressMap", e.AddressMap, tc.wantAddressMap)
			check("Sex", e.Sex, tc.wantSex)
			check("BirthDate", e.BirthDate, tc.wantBD)
			if n, m := len([]rune(e.Name)), len(e.NameMap); n != m {
				t.Errorf("name has %d characters, map %d", n, m)
			}
			if n, m := len([]rune(e.Address)), len(e.AddressMap); n != m {
				t.Errorf("address has %d characters, map %d", n, m)
			}

			der, err := e.MarshalSubjectAltName()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseSubjectAltNameFacts(der)
			if err != nil || back != e {
				t.Fatalf("ParseSubjectAltNameFacts = %+v, %v; want %+v", back, err, e)
			}
		})
	}
}

func TestParseSubjectAltNameFactsRejects(t *testing.T) {
	e, err := validFacts().Encode()
	if err != nil {
		t.Fatal(err)
	}
	der, _ := e.MarshalSubjectAltName()
	for name, b := range map[string][]byte{
		"empty":    {},
		"trailing": append(bytes.Clone(der), 0),
		"dNSName":  {0x30, 0x05, 0x82, 0x03, 'a', '.', 'b'},
		"five":     der[:len(der)-1],
	} {
		if _, err := ParseSubjectAltNameFacts(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestFactsHash(t *testing.T) {
	base := validFacts()
	h := base.Hash()
	if len(h) != 32 || !bytes.Equal(h, validFacts().Hash()) {
		t.Fatal("hash not 32 bytes or not stable")
	}
	for name, edit := range map[string]func(*Facts){
		"name":    func(f *Facts) { f.Name = "和歌山\u3000次郎" },
		"birth":   func(f *Facts) { f.BirthDate.Day = 3 },
		"sex":     func(f *Facts) { f.Sex = Female },
		"address": func(f *Facts) { f.Address += "の１" },
		// Moving characters between fields must change the hash.
		"shift":       func(f *Facts) { f.Name, f.Address = f.Name+"和", f.Address[len("和"):] },
		"outside chr": func(f *Facts) { f.Name = "𠮷田\u3000太郎" },
	} {
		f := validFacts()
		edit(&f)
		if bytes.Equal(f.Hash(), h) {
			t.Errorf("%s: hash unchanged", name)
		}
	}
	a, b := validFacts(), validFacts()
	a.Name, b.Name = "𠮷田\u3000太郎", "𩸽田\u3000太郎" // both substitute to 〓田
	if bytes.Equal(a.Hash(), b.Hash()) {
		t.Error("different outside characters hash the same")
	}
}
