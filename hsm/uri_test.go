package hsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		in   string
		want URI
	}{
		{"pkcs11:token=JPKI%20CA;object=sign-2026;id=%01%02",
			URI{Token: "JPKI CA", Object: "sign-2026", ID: []byte{1, 2}}},
		{"pkcs11:token=t;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin",
			URI{Token: "t", Object: "k", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINSource: "file:/run/secrets/pin"}},
		{"PKCS11:object=a+b;type=private;x-vendor=1", URI{Object: "a+b", Type: "private"}},
		{"pkcs11:", URI{}},
		{"pkcs11:manufacturer=SoftHSM%20project;model=SoftHSM%20v2;serial=abc;slot-id=3?module-name=softhsm2",
			URI{Manufacturer: "SoftHSM project", Model: "SoftHSM v2", Serial: "abc", SlotID: "3", ModuleName: "softhsm2"}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseURI(tc.in)
			if err != nil {
				t.Fatalf("ParseURI: %v", err)
			}
			if !uriEqual(got, tc.want) {
				t.Fatalf("ParseURI = %+v, want %+v", got, tc.want)
			}
			// String round-trips.
			again, err := ParseURI(got.String())
			if err != nil || !uriEqual(again, got) {
				t.Fatalf("round trip of %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func uriEqual(a, b URI) bool {
	return bytes.Equal(a.ID, b.ID) && a.Token == b.Token && a.Object == b.Object && a.Type == b.Type &&
		a.Manufacturer == b.Manufacturer && a.Model == b.Model && a.Serial == b.Serial && a.SlotID == b.SlotID &&
		a.ModulePath == b.ModulePath && a.ModuleName == b.ModuleName && a.PINSource == b.PINSource
}

func TestParseURIErrors(t *testing.T) {
	for _, in := range []string{
		"token=x",
		"file:token=x",
		"pkcs11:token=a;token=b",
		"pkcs11:token",
		"pkcs11:id=%zz",
		"pkcs11:colour=red",
		"pkcs11:type=bogus",
		"pkcs11:token=x?pin-value=1234secret",
		"pkcs11:token=x?unknown=1",
		"pkcs11:token=x?module-path=/a#frag",
	} {
		t.Run(in, func(t *testing.T) {
			_, err := ParseURI(in)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("ParseURI: got %v, want ErrInvalidRequest", err)
			}
			if strings.Contains(err.Error(), "1234secret") {
				t.Fatalf("error repeats the pin-value: %v", err)
			}
		})
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add("pkcs11:token=JPKI%20CA;object=sign;id=%01%02?module-path=/x&pin-source=file:/p")
	f.Add("pkcs11:")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		again, err := ParseURI(u.String())
		if err != nil || !uriEqual(u, again) {
			t.Fatalf("round trip of %q via %q: %+v vs %+v, %v", s, u.String(), u, again, err)
		}
	})
}
