package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/jpkica/jpkica/lint"
)

// TestSignMatchesCreateCertificate holds buildTBS and sign to
// x509.CreateCertificate with the issuer key itself: byte for byte for the
// RSA issuers (PKCS #1 v1.5 signatures are deterministic), and for ECDSA
// issuers the same TBSCertificate and a signature that verifies.
func TestSignMatchesCreateCertificate(t *testing.T) {
	f := newFixture(t)
	p := testProfiles(t)
	for _, typ := range []CertType{Signature, Authentication} {
		t.Run(typ.String(), func(t *testing.T) {
			tmpl, err := p.Template(f.request(typ))
			if err != nil {
				t.Fatal(err)
			}
			want, err := x509.CreateCertificate(rand.Reader, tmpl, f.issuers[typ], tmpl.PublicKey, f.keys[typ])
			if err != nil {
				t.Fatal(err)
			}
			tbs, err := buildTBS(tmpl, f.issuers[typ])
			if err != nil {
				t.Fatal(err)
			}
			got, err := tbs.sign(rand.Reader, f.keys[typ], f.issuers[typ])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("certificate differs from x509.CreateCertificate's:\n got %x\nwant %x", got, want)
			}
			der, err := tbs.lintDER(f.issuers[typ])
			if err != nil {
				t.Fatal(err)
			}
			if err := (lint.Linter{}).Certificate(der); err != nil {
				t.Errorf("lint: %v", err)
			}
		})
	}
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		t.Run("client CA "+curve.Params().Name, func(t *testing.T) {
			caKey, caTmpl := testClientCA(t, curve, 1)
			caCert := sign(t, caTmpl, caTmpl, caKey.Public(), caKey)
			termKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := ClientTemplate(ClientTemplateRequest{Serial: SerialFromBytes([]byte{2}), NotBefore: t0,
				NotAfter: t0.AddDate(1, 0, 0), PublicKey: termKey.Public(), Role: "admin", Name: "admin-01",
				IssuerCert: caCert})
			if err != nil {
				t.Fatal(err)
			}
			want := sign(t, tmpl, caCert, termKey.Public(), caKey)
			tbs, err := buildTBS(tmpl, caCert)
			if err != nil {
				t.Fatal(err)
			}
			der, err := tbs.sign(rand.Reader, caKey, caCert)
			if err != nil {
				t.Fatal(err)
			}
			got, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.RawTBSCertificate, want.RawTBSCertificate) || got.SignatureAlgorithm != want.SignatureAlgorithm {
				t.Errorf("TBSCertificate or algorithm differs from x509.CreateCertificate's (%v, want %v)",
					got.SignatureAlgorithm, want.SignatureAlgorithm)
			}
			if err := got.CheckSignatureFrom(caCert); err != nil {
				t.Errorf("signature: %v", err)
			}
		})
	}
}

// badSigner signs with another key, returns junk, or fails.
type badSigner struct {
	pub  crypto.PublicKey
	sign func(digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

func (s badSigner) Public() crypto.PublicKey { return s.pub }
func (s badSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.sign(digest, opts)
}

// TestSignRefuses: a signature that does not verify with the issuer
// certificate's key, or a signer error, gives no certificate.
func TestSignRefuses(t *testing.T) {
	f := newFixture(t)
	tmpl := f.template(t, Authentication)
	issuer := f.issuers[Authentication]
	tbs, err := buildTBS(tmpl, issuer)
	if err != nil {
		t.Fatal(err)
	}
	failed := errors.New("token removed")
	for name, s := range map[string]crypto.Signer{
		"another key": f.keys[Signature],
		"junk": badSigner{pub: issuer.PublicKey, sign: func([]byte, crypto.SignerOpts) ([]byte, error) {
			return make([]byte, 256), nil
		}},
		"a faulted signature": badSigner{pub: issuer.PublicKey, sign: func(d []byte, o crypto.SignerOpts) ([]byte, error) {
			sig, err := f.keys[Authentication].Sign(rand.Reader, d, o)
			sig[len(sig)/2] ^= 1
			return sig, err
		}},
		"an error": badSigner{pub: issuer.PublicKey, sign: func([]byte, crypto.SignerOpts) ([]byte, error) {
			return nil, failed
		}},
	} {
		t.Run(name, func(t *testing.T) {
			der, err := tbs.sign(rand.Reader, s, issuer)
			if err == nil || der != nil {
				t.Fatalf("sign = %d bytes, %v; want an error", len(der), err)
			}
			if name == "an error" && !errors.Is(err, failed) {
				t.Errorf("sign = %v, want it to wrap the signer's error", err)
			}
		})
	}
	// A template that asks for another algorithm than the issuer key's.
	other := *tmpl
	other.SignatureAlgorithm = x509.ECDSAWithSHA256
	if _, err := buildTBS(&other, issuer); !errors.Is(err, ErrInvalid) {
		t.Errorf("buildTBS(ECDSA template, RSA issuer) = %v, want ErrInvalid", err)
	}
	if _, err := buildTBS(nil, issuer); !errors.Is(err, ErrInvalid) {
		t.Errorf("buildTBS(nil) = %v, want ErrInvalid", err)
	}
}

// TestSignCertificate: the ceremony's and the client CA's path. A template
// zlint refuses gets no signature; a sound one, self-signed or under an
// issuer, comes back signed and verifying.
func TestSignCertificate(t *testing.T) {
	f := newFixture(t)
	issuer, key := f.issuers[Authentication], f.keys[Authentication]
	tmpl := f.template(t, Authentication)
	signed := 0
	counting := badSigner{pub: key.Public(), sign: func(d []byte, o crypto.SignerOpts) ([]byte, error) {
		signed++
		return key.Sign(rand.Reader, d, o)
	}}
	bad := *tmpl
	bad.ExtraExtensions = append(slices.Clone(bad.ExtraExtensions),
		pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: []byte{0x30, 0x00}})
	if der, err := SignCertificate(rand.Reader, lint.Linter{}, &bad, issuer, counting); !errors.Is(err, ErrLint) || errors.Is(err, ErrWeakKey) || der != nil || signed != 0 {
		t.Fatalf("SignCertificate(lint failure) = %d bytes, %v, %d signatures; want ErrLint (not ErrWeakKey) and no signature", len(der), err, signed)
	}
	der, err := SignCertificate(rand.Reader, lint.Linter{}, tmpl, issuer, counting)
	if err != nil || signed != 1 {
		t.Fatalf("SignCertificate = %v, %d signatures", err, signed)
	}
	if c, err := x509.ParseCertificate(der); err != nil || c.CheckSignatureFrom(issuer) != nil {
		t.Fatalf("issued certificate: %v", err)
	}
	rootKey, root := testClientCA(t, elliptic.P256(), 9)
	der, err = SignCertificate(rand.Reader, lint.Linter{}, root, nil, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := x509.ParseCertificate(der); err != nil || c.CheckSignatureFrom(c) != nil {
		t.Fatalf("self-signed certificate: %v", err)
	}
}

// testClientCA is a fresh key on curve and a client CA template for it.
func testClientCA(t *testing.T, curve elliptic.Curve, serial byte) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := ClientCATemplate(ClientCATemplateRequest{Serial: SerialFromBytes([]byte{serial}), NotBefore: t0,
		NotAfter: t0.AddDate(5, 0, 0), PublicKey: key.Public(), Name: "test client CA"})
	if err != nil {
		t.Fatal(err)
	}
	return key, tmpl
}

// BenchmarkBuildTBS: a signature certificate's TBSCertificate, caught from
// x509.CreateCertificate (docs/benchmarks.md has the figures).
func BenchmarkBuildTBS(b *testing.B) {
	f := newFixture(b)
	tmpl := f.template(b, Signature)
	issuer := f.issuers[Signature]
	for b.Loop() {
		if _, err := buildTBS(tmpl, issuer); err != nil {
			b.Fatal(err)
		}
	}
}
