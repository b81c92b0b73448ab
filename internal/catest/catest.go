// Package catest sets up a working certificate authority for tests: the key
// ceremony (one or more issuer generations) into a key store, a store, the
// certificate profiles, and an Authority per generation. Everything is real:
// the software key store (or the PKCS#11 one the test passes), SQLite (or
// the DSN the test passes), zlint before every signature.
package catest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/ceremony"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/lint"
	"github.com/jpkica/jpkica/store"
)

// Now is the default issuance time: 2026-11-25 12:00 JST. The ceremony runs
// an hour earlier.
var Now = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

// Municipalities are the profiles' municipalities unless a test names others.
var Municipalities = map[string]ca.Municipality{
	"302015": {Prefecture: "Wakayama-ken", Name: "Wakayama-shi"},
	"131016": {Prefecture: "Tokyo-to", Name: "Chiyoda-ku"},
}

// Options shape the CA; the zero value is one generation, software keys,
// SQLite, an ECDSA responder key and a fixed clock at Now.
type Options struct {
	Keys               hsm.KeyStore // nil: a fresh software key store
	DSN                string       // "": a fresh SQLite file
	Generations        int          // 0: 1
	ResponderAlgorithm hsm.Algorithm
	IssuerValidity     time.Duration    // 0: ten years
	Clock              func() time.Time // the authorities' clock; nil: Now
	Listener           ca.StatusListener
	Municipalities     map[string]ca.Municipality
}

// CA is a certificate authority set up for a test.
type CA struct {
	Store    *store.Store
	Keys     hsm.KeyStore
	Keyring  *ceremony.Keyring
	Profiles *ca.Profiles
	// Auth holds an Authority per issuer generation (1, 2, ...); Auth[1]
	// is the only one with the default options.
	Auth  map[int]*ca.Authority
	Roots *x509.CertPool // every card issuer generation
}

// New sets up a CA; its store closes when the test ends.
func New(t testing.TB, opts Options) *CA {
	t.Helper()
	ctx := context.Background()
	if opts.Keys == nil {
		keys, err := hsm.OpenSoftware(filepath.Join(t.TempDir(), "keys"))
		if err != nil {
			t.Fatal(err)
		}
		opts.Keys = keys
	}
	if opts.DSN == "" {
		opts.DSN = "sqlite:" + filepath.Join(t.TempDir(), "ca.db")
	}
	if opts.Generations == 0 {
		opts.Generations = 1
	}
	if opts.ResponderAlgorithm == 0 {
		opts.ResponderAlgorithm = hsm.ECDSAP256
	}
	if opts.IssuerValidity == 0 {
		opts.IssuerValidity = 10 * 365 * 24 * time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return Now }
	}
	if opts.Municipalities == nil {
		opts.Municipalities = Municipalities
	}
	st, err := store.Open(ctx, opts.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ceremonyClock := func() time.Time { return opts.Clock().Add(-time.Hour) }
	for gen := 1; gen <= opts.Generations; gen++ {
		_, err := ceremony.Run(ctx, ceremony.Config{
			IssuerValidity: opts.IssuerValidity, ResponderValidity: 365 * 24 * time.Hour,
			ResponderAlgorithm: opts.ResponderAlgorithm, ClientCAValidity: opts.IssuerValidity, Actor: "admin:test",
		}, ceremony.Deps{Store: st, Keys: opts.Keys, Clock: ceremonyClock, Rand: rand.Reader, Logger: slog.New(slog.DiscardHandler)}, gen > 1)
		if err != nil {
			t.Fatal(err)
		}
	}
	kr, err := ceremony.Load(ctx, st, opts.Keys)
	if err != nil {
		t.Fatal(err)
	}
	profiles, err := ca.NewProfiles(ca.ProfileConfig{
		OCSPURL: "http://127.0.0.1:8080/ocsp", CRLBaseURL: "http://127.0.0.1:8080/crl",
		SignatureCPSURL: "http://127.0.0.1:8080/cps.html", AuthenticationCPSURL: "http://127.0.0.1:8080/cps.html",
		Municipalities: opts.Municipalities,
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &CA{Store: st, Keys: opts.Keys, Keyring: kr, Profiles: profiles, Auth: map[int]*ca.Authority{}, Roots: x509.NewCertPool()}
	for _, ik := range kr.Issuers {
		c.Roots.AddCert(ik.Cert)
	}
	for gen := 1; gen <= opts.Generations; gen++ {
		var iks []ca.IssuerKey
		for _, ik := range kr.Issuers {
			if ik.Issuer.Generation == gen {
				iks = append(iks, ik)
			}
		}
		c.Auth[gen], err = ca.NewAuthority(ca.AuthorityConfig{RenewalWindowMonths: 3}, ca.AuthorityDeps{
			Store: st, Profiles: profiles, Issuers: iks, Clock: opts.Clock, Rand: rand.Reader, Linter: lint.Linter{}, Listener: opts.Listener,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// CardKey is one RSA-2048 card key, made once per test binary.
var CardKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

var cardKeys sync.Map // card ID -> *rsa.PrivateKey

// CardKeyFor is the RSA-2048 key of a card, made once per card per test
// binary: a key is one card's, and the Authority refuses it for any other
// (ca.ErrKeyReused).
func CardKeyFor(card string) *rsa.PrivateKey {
	if k, ok := cardKeys.Load(card); ok {
		return k.(*rsa.PrivateKey)
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	got, _ := cardKeys.LoadOrStore(card, k)
	return got.(*rsa.PrivateKey)
}

// Facts are Wakayama Taro's 4 facts: born 1990-05-02, Wakayama City.
func Facts() ca.Facts {
	return ca.Facts{Name: "和歌山　太郎", BirthDate: ca.Date{Year: 1990, Month: time.May, Day: 2}, Sex: ca.Male,
		Address: "和歌山県和歌山市七番丁２３番地"}
}

// Request is an issuance of typ onto card for Wakayama Taro (resident
// "R-"+card) at a Wakayama City counter, with the card's key (CardKeyFor).
func Request(typ ca.CertType, card string) ca.IssueRequest {
	return ca.IssueRequest{
		Type: typ, PublicKey: CardKeyFor(card).Public(), CardID: card, CardExpires: ca.Date{Year: 2036, Month: time.May, Day: 2},
		ResidentID: "R-" + card, Municipality: "302015", Facts: Facts(), Actor: "counter:302015:test",
	}
}
