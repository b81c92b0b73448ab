package lint

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
	"math/bits"
	mrand "math/rand/v2"
	"strings"
	"testing"

	zrsa "github.com/zmap/zcrypto/rsa"
	zx509 "github.com/zmap/zcrypto/x509"
	zl "github.com/zmap/zlint/v3/lint"
	_ "github.com/zmap/zlint/v3/lints/community" // registers e_rsa_fermat_factorization
)

// fermatLintName is the zlint lint that fermatFactors stands in for.
const fermatLintName = "e_rsa_fermat_factorization"

// zlintFermat runs zlint's own e_rsa_fermat_factorization lint, from its
// global registry and through its framework (configuration, CheckApplies,
// Execute), on an in-memory zcrypto certificate whose RSA modulus is n. With
// rounds = fermatRounds the lint runs with zlint's default configuration;
// otherwise its Rounds are set through a TOML configuration.
func zlintFermat(tb testing.TB, n *big.Int, rounds int) *zl.LintResult {
	tb.Helper()
	l := zl.GlobalRegistry().CertificateLints().ByName(fermatLintName)
	if l == nil {
		tb.Fatalf("zlint has no lint %s", fermatLintName)
	}
	cfg := zl.NewEmptyConfig()
	if rounds != fermatRounds {
		var err error
		cfg, err = zl.NewConfigFromString(fmt.Sprintf("[%s]\nRounds = %d\n", fermatLintName, rounds))
		if err != nil {
			tb.Fatalf("zlint configuration: %v", err)
		}
	}
	cert := &zx509.Certificate{PublicKey: &zrsa.PublicKey{N: n, E: big.NewInt(65537)}, PublicKeyAlgorithm: zx509.RSA}
	return l.Execute(cert, cfg)
}

// zlintFactors decodes the p and q that an Error result of the lint names
// ("... factored into p: P; q: Q").
func zlintFactors(tb testing.TB, res *zl.LintResult) (p, q *big.Int) {
	tb.Helper()
	_, pq, ok := strings.Cut(res.Details, "p: ")
	ps, qs, ok2 := strings.Cut(pq, "; q: ")
	p, okp := new(big.Int).SetString(ps, 10)
	q, okq := new(big.Int).SetString(qs, 10)
	if !ok || !ok2 || !okp || !okq {
		tb.Fatalf("zlint details %q: no p and q", res.Details)
	}
	return p, q
}

// checkAgainstZlint asserts that fermatFactors(n, rounds) gives zlint's
// answer: factors exactly when the lint reports an Error, the same p and q
// as the lint, p >= q and p*q = n; no factors when the lint passes; and, for
// a nil or negative n on which the lint panics (Fatal), no factors. It also
// checks that n is left as it was, and reports whether n was split.
func checkAgainstZlint(tb testing.TB, n *big.Int, rounds int) bool {
	tb.Helper()
	var before *big.Int
	if n != nil {
		before = new(big.Int).Set(n)
	}
	p, q, ok := fermatFactors(n, rounds)
	if n != nil && n.Cmp(before) != 0 {
		tb.Fatalf("fermatFactors changed n from %v to %v", before, n)
	}
	res := zlintFermat(tb, n, rounds)
	switch res.Status {
	case zl.Error:
		if !ok {
			tb.Fatalf("n = %v, %d rounds: zlint splits n (%s), fermatFactors does not", n, rounds, res.Details)
		}
		zp, zq := zlintFactors(tb, res)
		if p.Cmp(zp) != 0 || q.Cmp(zq) != 0 {
			tb.Fatalf("n = %v, %d rounds: fermatFactors p = %v, q = %v; zlint p = %v, q = %v", n, rounds, p, q, zp, zq)
		}
		if p.Cmp(q) < 0 {
			tb.Fatalf("n = %v: p = %v < q = %v", n, p, q)
		}
		if pq := new(big.Int).Mul(p, q); pq.Cmp(n) != 0 {
			tb.Fatalf("n = %v: p*q = %v", n, pq)
		}
	case zl.Pass:
		if ok {
			tb.Fatalf("n = %v, %d rounds: zlint passes, fermatFactors splits n into %v * %v", n, rounds, p, q)
		}
	case zl.Fatal:
		if n != nil && n.Sign() >= 0 {
			tb.Fatalf("n = %v: zlint fatal (%s)", n, res.Details)
		}
		if ok {
			tb.Fatalf("n = %v: fermatFactors splits it into %v * %v", n, p, q)
		}
	default:
		tb.Fatalf("n = %v: zlint status %v (%s)", n, res.Status, res.Details)
	}
	return ok
}

// fermatModulusAt builds n = a² − b², odd, with a = s+1+r and b the smallest
// number of parity opposite to a's with b² > a² − (s+1)², so that n < (s+1)²;
// for a large s, n >= s² too, and Fermat's method from floor(sqrt(n))+1 = s+1
// then reaches a at round r. Callers check what they rely on.
func fermatModulusAt(s *big.Int, r int) (n, a, b *big.Int) {
	s1 := new(big.Int).Add(s, big.NewInt(1))
	a = new(big.Int).Add(s1, big.NewInt(int64(r)))
	lo := new(big.Int).Mul(a, a)
	lo.Sub(lo, new(big.Int).Mul(s1, s1))
	b = new(big.Int).Sqrt(lo)
	b.Add(b, big.NewInt(1))
	if b.Bit(0) == a.Bit(0) {
		b.Add(b, big.NewInt(1))
	}
	n = new(big.Int).Mul(a, a)
	n.Sub(n, new(big.Int).Mul(b, b))
	return n, a, b
}

// fermatRoot is a 1024-bit number with its top two bits set, so that its
// square has 2048 bits, drawn from a fixed seed.
func fermatRoot(seed uint64) *big.Int {
	rng := mrand.New(mrand.NewPCG(seed, 0x6a706b6963612d66))
	buf := make([]byte, 128)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	buf[0] |= 0xc0
	return new(big.Int).SetBytes(buf)
}

// TestFermatFactorsCrafted checks 2048-bit moduli that Fermat's method splits
// at a chosen round, below, at and above fermatRounds. zlint itself, with its
// rounds configured, confirms the round: it passes with round rounds and
// fails with round+1.
func TestFermatFactorsCrafted(t *testing.T) {
	for _, round := range []int{0, 1, 2, 50, 99, 100, 101, 150} {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			s := fermatRoot(uint64(round))
			n, a, b := fermatModulusAt(s, round)
			if n.Bit(0) != 1 || n.BitLen() != 2048 {
				t.Fatalf("n has %d bits and bit 0 = %d; want odd, 2048 bits", n.BitLen(), n.Bit(0))
			}
			if root := new(big.Int).Sqrt(n); root.Cmp(s) != 0 {
				t.Fatalf("floor(sqrt(n)) = %v, want %v", root, s)
			}
			if res := zlintFermat(t, n, round); res.Status != zl.Pass {
				t.Fatalf("zlint with %d rounds: %v (%s), want pass", round, res.Status, res.Details)
			}
			res := zlintFermat(t, n, round+1)
			if res.Status != zl.Error {
				t.Fatalf("zlint with %d rounds: %v, want error", round+1, res.Status)
			}
			zp, zq := zlintFactors(t, res)
			if wp, wq := new(big.Int).Add(a, b), new(big.Int).Sub(a, b); zp.Cmp(wp) != 0 || zq.Cmp(wq) != 0 {
				t.Fatalf("zlint splits n into %v * %v, want a+b = %v, a-b = %v", zp, zq, wp, wq)
			}

			for _, rounds := range []int{round, round + 1, fermatRounds} {
				if got, want := checkAgainstZlint(t, n, rounds), round < rounds; got != want {
					t.Errorf("%d rounds: split %v, want %v", rounds, got, want)
				}
			}
		})
	}
}

// nextPrime is the smallest probable prime >= x.
func nextPrime(x *big.Int) *big.Int {
	p := new(big.Int).Set(x)
	p.SetBit(p, 0, 1)
	for !p.ProbablyPrime(20) {
		p.Add(p, big.NewInt(2))
	}
	return p
}

// TestFermatFactorsClosePrimes checks an RSA modulus of two consecutive
// 1024-bit primes, the weak key the lint is for: split at once into its
// primes.
func TestFermatFactorsClosePrimes(t *testing.T) {
	q := nextPrime(fermatRoot(7))
	p := nextPrime(new(big.Int).Add(q, big.NewInt(1)))
	n := new(big.Int).Mul(p, q)
	if !checkAgainstZlint(t, n, 1) {
		t.Fatal("not split in round 0")
	}
	gp, gq, _ := fermatFactors(n, fermatRounds)
	if gp.Cmp(p) != 0 || gq.Cmp(q) != 0 {
		t.Fatalf("split into %v * %v, want %v * %v", gp, gq, p, q)
	}
}

// TestFermatFactorsRSA checks moduli of real RSA-2048 keys: not split.
func TestFermatFactorsRSA(t *testing.T) {
	for i := range 3 {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		if checkAgainstZlint(t, key.N, fermatRounds) {
			t.Errorf("key %d: modulus split", i)
		}
	}
}

// TestFermatFactorsEdge checks nil, negative, small, even and perfect-square
// moduli, with the factors worked out by hand where the method finds any.
func TestFermatFactorsEdge(t *testing.T) {
	one := big.NewInt(1)
	pow2 := new(big.Int).Lsh(one, 2048)
	root := new(big.Int).Lsh(one, 1024)
	k := fermatRoot(11)
	// m odd and j = (m²−1)/2: j² is split at round 0, as (j+1)² − j² = m².
	m := new(big.Int).SetBit(fermatRoot(12), 0, 1)
	j := new(big.Int).Mul(m, m)
	j.Rsh(j, 1)
	j1 := new(big.Int).Add(j, one)
	for _, tc := range []struct {
		name string
		n    *big.Int
		p, q *big.Int // nil: not split
	}{
		{"nil", nil, nil, nil},
		{"-1", big.NewInt(-1), nil, nil},
		{"-15", big.NewInt(-15), nil, nil},
		{"0, which zlint splits as 2*0", big.NewInt(0), big.NewInt(2), big.NewInt(0)},
		{"1", big.NewInt(1), nil, nil},
		{"2", big.NewInt(2), nil, nil},
		{"3", big.NewInt(3), big.NewInt(3), big.NewInt(1)},
		{"4, whose 2*2 needs b = 0", big.NewInt(4), nil, nil},
		{"8", big.NewInt(8), big.NewInt(4), big.NewInt(2)},
		{"9, 9*1 at round 1", big.NewInt(9), big.NewInt(9), big.NewInt(1)},
		{"15", big.NewInt(15), big.NewInt(5), big.NewInt(3)},
		{"16", big.NewInt(16), big.NewInt(8), big.NewInt(2)},
		{"25, 25*1 at round 7", big.NewInt(25), big.NewInt(25), big.NewInt(1)},
		{"35", big.NewInt(35), big.NewInt(7), big.NewInt(5)},
		{"144 = 13² − 5²", big.NewInt(144), big.NewInt(18), big.NewInt(8)},
		{"4k+2, never a² − b²", big.NewInt(1_000_002), nil, nil},
		{"2^2048", pow2, nil, nil},
		{"2^2048 − 1", new(big.Int).Sub(pow2, one), new(big.Int).Add(root, one), new(big.Int).Sub(root, one)},
		{"2^2048 + 1", new(big.Int).Add(pow2, one), nil, nil},
		{"k², 2048 bits", new(big.Int).Mul(k, k), nil, nil},
		{"j² with 2j+1 a square", new(big.Int).Mul(j, j), new(big.Int).Add(j1, m), new(big.Int).Sub(j1, m)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			split := checkAgainstZlint(t, tc.n, fermatRounds)
			if want := tc.p != nil; split != want {
				t.Fatalf("split %v, want %v", split, want)
			}
			if p, q, ok := fermatFactors(tc.n, fermatRounds); ok && (p.Cmp(tc.p) != 0 || q.Cmp(tc.q) != 0) {
				t.Fatalf("split into %v * %v, want %v * %v", p, q, tc.p, tc.q)
			}
		})
	}
}

// TestFermatFactorsSmall checks every n below 2048 against zlint, with the
// default rounds and with a few others.
func TestFermatFactorsSmall(t *testing.T) {
	for _, rounds := range []int{fermatRounds, 1, 3} {
		for n := range int64(2048) {
			checkAgainstZlint(t, big.NewInt(n), rounds)
		}
	}
}

// TestFermatFactorsRounds checks round counts around the round that splits a
// modulus, and round counts zlint's loop never enters.
func TestFermatFactorsRounds(t *testing.T) {
	const round = 50
	n, _, _ := fermatModulusAt(fermatRoot(50), round)
	for _, rounds := range []int{-100, -1, 0, 1, round, round + 1, fermatRounds, 1000} {
		if got, want := checkAgainstZlint(t, n, rounds), rounds > round; got != want {
			t.Errorf("%d rounds: split %v, want %v", rounds, got, want)
		}
	}
}

// TestFermatMaybeSquare checks that the residue filters never reject a
// square, and that they pass few non-squares.
func TestFermatMaybeSquare(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for x := range uint64(1 << 16) {
		hi, lo := bits.Mul64(x, x)
		if !maybeSquare(bits.Rem64(hi, lo, fermatModulus)) {
			t.Fatalf("%d² rejected", x)
		}
		y := rng.Uint64()
		hi, lo = bits.Mul64(y, y)
		if !maybeSquare(bits.Rem64(hi, lo, fermatModulus)) {
			t.Fatalf("%d² rejected", y)
		}
	}
	const tries = 1_000_000
	passed := 0
	for range tries {
		if maybeSquare(rng.Uint64N(fermatModulus)) {
			passed++
		}
	}
	if passed > tries/1000 {
		t.Errorf("%d of %d random residues pass the filters, want about 44", passed, tries)
	}
}

// FuzzFermatFactors compares fermatFactors with zlint's lint configured with
// the same rounds (from -128 to 127). The modulus is data as an odd number,
// or, with near set, a modulus built from data as a root by fermatModulusAt
// so that Fermat's method splits it at about round round.
func FuzzFermatFactors(f *testing.F) {
	f.Add([]byte{}, false, uint8(0), int8(100))
	f.Add([]byte{0x0f}, false, uint8(0), int8(100))
	f.Add([]byte{0x03, 0x21}, false, uint8(0), int8(3))
	f.Add([]byte{0xff, 0xff}, false, uint8(0), int8(-1))
	for _, round := range []uint8{0, 1, 50, 99, 100, 126, 127, 150} {
		f.Add(fermatRoot(uint64(round)).Bytes(), true, round, int8(100))
		f.Add(fermatRoot(uint64(round)).Bytes(), true, round, int8(127))
	}
	f.Add(fermatRoot(3).Bytes(), false, uint8(0), int8(100))
	f.Fuzz(func(t *testing.T, data []byte, near bool, round uint8, rounds int8) {
		if len(data) > 320 {
			t.Skip("longer than a 2560-bit modulus")
		}
		n := new(big.Int).SetBytes(data)
		if near {
			n, _, _ = fermatModulusAt(n, int(round))
		} else {
			n.SetBit(n, 0, 1)
		}
		checkAgainstZlint(t, n, int(rounds))
	})
}

// BenchmarkFermat compares fermatFactors with zlint's lint (through its
// framework, as zlint's runner calls it) on the modulus of a real RSA-2048
// key, which neither splits.
func BenchmarkFermat(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fermatFactors", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ok := fermatFactors(key.N, fermatRounds); ok {
				b.Fatal("split")
			}
		}
	})
	b.Run("zlint", func(b *testing.B) {
		l := zl.GlobalRegistry().CertificateLints().ByName(fermatLintName)
		cfg := zl.NewEmptyConfig()
		cert := &zx509.Certificate{PublicKey: &zrsa.PublicKey{N: key.N, E: big.NewInt(int64(key.E))}, PublicKeyAlgorithm: zx509.RSA}
		b.ReportAllocs()
		for b.Loop() {
			if res := l.Execute(cert, cfg); res.Status != zl.Pass {
				b.Fatalf("zlint: %v (%s)", res.Status, res.Details)
			}
		}
	})
}
