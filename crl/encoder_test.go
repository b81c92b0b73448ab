package crl

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ca"
)

var testNow = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// testIssuer is a self-signed CRL issuer for key.
func testIssuer(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Country: []string{"JP"}, Organization: []string{"JPKI"}, OrganizationalUnit: []string{"Test", "CRL"}},
		NotBefore:             testNow.Add(-24 * time.Hour),
		NotAfter:              testNow.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// goCRL builds the same CRL with crypto/x509.
func goCRL(t testing.TB, spec Spec, entries []Entry, key crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{
		Number:             spec.Number,
		ThisUpdate:         spec.ThisUpdate,
		NextUpdate:         spec.NextUpdate,
		ExtraExtensions:    spec.extraExtensions(),
		SignatureAlgorithm: spec.SignatureAlgorithm,
	}
	for _, e := range entries {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: e.Serial.Big(), RevocationTime: e.RevokedAt, ReasonCode: int(e.Reason),
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, spec.Issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// entriesN makes n sorted entries cycling through the reasons JPKI uses,
// with serials of varying length and top bit.
func entriesN(n int) []Entry {
	reasons := []ca.Reason{ca.Unspecified, ca.KeyCompromise, ca.AffiliationChanged, ca.Superseded,
		ca.CertificateHold, ca.CessationOfOperation, ca.CACompromise, ca.PrivilegeWithdrawn, ca.AACompromise}
	out := make([]Entry, n)
	base := new(big.Int).Lsh(big.NewInt(0x7a), 150)
	for i := range out {
		sn := new(big.Int).Add(base, new(big.Int).Lsh(big.NewInt(int64(i)+1), 40))
		out[i] = Entry{
			Serial:    ca.SerialFromBig(sn),
			RevokedAt: testNow.Add(-time.Duration(i) * time.Minute).Add(123 * time.Millisecond),
			Reason:    reasons[i%len(reasons)],
		}
	}
	return out
}

func TestEncodeMatchesCryptoX509(t *testing.T) {
	key := testRSAKey()
	issuer := testIssuer(t, key)
	small := []Entry{
		{Serial: ca.SerialFromBig(big.NewInt(1)), RevokedAt: testNow.Add(-time.Hour), Reason: ca.CertificateHold},
		{Serial: ca.SerialFromBig(big.NewInt(0x80)), RevokedAt: time.Date(2051, 1, 2, 3, 4, 5, 0, time.FixedZone("JST", 9*3600))},
		{Serial: ca.SerialFromBytes(bytes.Repeat([]byte{0xff}, 20)), RevokedAt: time.Date(1949, 12, 31, 23, 59, 59, 0, time.UTC), Reason: ca.RemoveFromCRL},
	}
	base := Spec{Issuer: issuer, Number: big.NewInt(7), ThisUpdate: testNow, NextUpdate: testNow.Add(24 * time.Hour)}
	withIDP := base
	withIDP.IDP = "http://127.0.0.1:8080/crl/signature-g1/302015.crl"
	withIDP.FreshestCRL = "http://127.0.0.1:8080/crl/signature-g1/302015-delta.crl"
	delta := withIDP
	delta.FreshestCRL = ""
	delta.DeltaBase = big.NewInt(6)
	expired := base
	expired.ExpiredCertsOnCRL = testNow.Add(-10 * 365 * 24 * time.Hour)
	expired.Number = new(big.Int).Lsh(big.NewInt(1), 158)
	far := base
	far.NextUpdate = time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC)
	sha512 := base
	sha512.SignatureAlgorithm = x509.SHA512WithRSA

	for _, tc := range []struct {
		name    string
		spec    Spec
		entries []Entry
		memory  int
	}{
		{"empty", base, nil, 0},
		{"small", base, small, 0},
		{"partition", withIDP, small, 0},
		{"delta", delta, small, 0},
		{"expired certs kept", expired, small, 0},
		{"generalized nextUpdate", far, small, 0},
		{"sha512", sha512, small, 0},
		{"1000 entries in memory", withIDP, entriesN(1000), 0},
		{"1000 entries spooled to a file", withIDP, entriesN(1000), 1000},
		{"128 entries (long-form lengths)", base, entriesN(128), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			info, err := Encode(context.Background(), tc.spec, key, SliceSource(tc.entries), &out,
				Options{MemoryLimit: tc.memory, SpoolDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			want := goCRL(t, tc.spec, tc.entries, key)
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("DER differs from crypto/x509's:\n got %x\nwant %x", out.Bytes(), want)
			}
			if info.Size != int64(out.Len()) || info.Entries != int64(len(tc.entries)) {
				t.Errorf("info = %+v, wrote %d bytes of %d entries", info, out.Len(), len(tc.entries))
			}
			rl, err := x509.ParseRevocationList(out.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if err := rl.CheckSignatureFrom(issuer); err != nil {
				t.Fatal(err)
			}
			var got []Entry
			p, err := ReadBack(bytes.NewReader(out.Bytes()), issuer, func(e Entry) error {
				got = append(got, e)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if p.Number.Cmp(tc.spec.Number) != 0 || p.IDP != tc.spec.IDP || p.OnlyUserCerts != (tc.spec.IDP != "") ||
				p.FreshestCRL != tc.spec.FreshestCRL || !p.ThisUpdate.Equal(tc.spec.ThisUpdate) ||
				!p.NextUpdate.Equal(tc.spec.NextUpdate) || p.Size != int64(out.Len()) ||
				!p.ExpiredCertsOnCRL.Equal(tc.spec.ExpiredCertsOnCRL.Truncate(time.Second)) ||
				(p.DeltaBase == nil) != (tc.spec.DeltaBase == nil) || p.DeltaBase != nil && p.DeltaBase.Cmp(tc.spec.DeltaBase) != 0 {
				t.Errorf("read back %+v for %+v", p, tc.spec)
			}
			if len(got) != len(tc.entries) {
				t.Fatalf("read back %d entries, want %d", len(got), len(tc.entries))
			}
			for i, e := range got {
				w := tc.entries[i]
				if e.Serial != w.Serial || !e.RevokedAt.Equal(w.RevokedAt.Truncate(time.Second)) || e.Reason != w.Reason {
					t.Errorf("entry %d = %+v, want %+v", i, e, w)
				}
			}
		})
	}
}

func TestReadBackRejectsTampering(t *testing.T) {
	key := testRSAKey()
	issuer := testIssuer(t, key)
	spec := Spec{Issuer: issuer, Number: big.NewInt(9), ThisUpdate: testNow, NextUpdate: testNow.Add(time.Hour),
		IDP: "http://127.0.0.1/crl/x/302015.crl"}
	var out bytes.Buffer
	if _, err := Encode(context.Background(), spec, key, SliceSource(entriesN(50)), &out, Options{}); err != nil {
		t.Fatal(err)
	}
	good := out.Bytes()
	if _, err := ReadBack(bytes.NewReader(good), issuer, nil); err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stranger := testIssuer(t, ecKey)
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	for _, tc := range []struct {
		name   string
		der    []byte
		issuer *x509.Certificate
	}{
		{"entry byte flipped", flip(len(good) / 2), issuer},
		{"signature byte flipped", flip(len(good) - 3), issuer},
		{"truncated", good[:len(good)-1], issuer},
		{"trailing data", append(bytes.Clone(good), 0), issuer},
		{"other issuer", good, stranger},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadBack(bytes.NewReader(tc.der), tc.issuer, nil); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestEncodeECDSA(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issuer := testIssuer(t, key)
	var out bytes.Buffer
	spec := Spec{Issuer: issuer, Number: big.NewInt(1), ThisUpdate: testNow, NextUpdate: testNow.Add(time.Hour)}
	if _, err := Encode(context.Background(), spec, key, SliceSource(entriesN(300)), &out, Options{}); err != nil {
		t.Fatal(err)
	}
	rl, err := x509.ParseRevocationList(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		t.Fatal(err)
	}
	if len(rl.RevokedCertificateEntries) != 300 || rl.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Fatalf("%d entries, %v", len(rl.RevokedCertificateEntries), rl.SignatureAlgorithm)
	}
}

func TestEncodeRejects(t *testing.T) {
	key := testRSAKey()
	issuer := testIssuer(t, key)
	spec := Spec{Issuer: issuer, Number: big.NewInt(3), ThisUpdate: testNow, NextUpdate: testNow.Add(time.Hour)}
	e := entriesN(3)
	noSKI := *issuer
	noSKI.SubjectKeyId = nil
	badDelta := spec
	badDelta.DeltaBase = big.NewInt(3)
	for _, tc := range []struct {
		name    string
		spec    Spec
		entries []Entry
		want    error
	}{
		{"unsorted", spec, []Entry{e[1], e[0]}, ErrEntryOrder},
		{"duplicate", spec, []Entry{e[0], e[1], e[1]}, ErrEntryOrder},
		{"reason 7", spec, []Entry{{Serial: e[0].Serial, RevokedAt: testNow, Reason: 7}}, ErrInvalid},
		{"no revocation time", spec, []Entry{{Serial: e[0].Serial}}, ErrInvalid},
		{"issuer without SKI", Spec{Issuer: &noSKI, Number: big.NewInt(1), ThisUpdate: testNow, NextUpdate: testNow}, nil, ErrInvalid},
		{"delta base not below number", badDelta, nil, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Encode(context.Background(), tc.spec, key, SliceSource(tc.entries), &bytes.Buffer{}, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
