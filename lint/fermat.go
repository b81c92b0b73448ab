package lint

import "math/big"

// fermatRounds is zlint's default for e_rsa_fermat_factorization.
const fermatRounds = 100

// fermatModulus is the modulus of the residue that fermatFactors keeps of
// b² = a² − n in a uint64: the product of the moduli whose squares
// fermatSquares lists, about 2^60.1, so that a sum of two residues still fits.
// A random number passes all the filters with probability about 4.4·10⁻⁵, so
// the big square root that confirms a square is almost never taken.
const fermatModulus = 64 * 63 * 65 * 11 * 17 * 19 * 23 * 29 * 31 * 37 * 41 * 43

// squareSet is a set of residues below 128: bit r of word r/64 is set when r
// is in the set.
type squareSet [2]uint64

// squaresModulo is the set of the squares modulo m (m at most 128).
func squaresModulo(m uint64) squareSet {
	var s squareSet
	for x := range m {
		r := x * x % m
		s[r/64] |= 1 << (r % 64)
	}
	return s
}

// has reports whether r (below 128) is in s.
func (s *squareSet) has(r uint64) bool {
	return s[r/64]&(1<<(r%64)) != 0
}

// fermatSquares are the squares modulo each factor of fermatModulus. They
// are computed once and never written afterwards.
var fermatSquares = struct {
	m64, m63, m65, m11, m17, m19, m23, m29, m31, m37, m41, m43 squareSet
}{
	squaresModulo(64), squaresModulo(63), squaresModulo(65), squaresModulo(11),
	squaresModulo(17), squaresModulo(19), squaresModulo(23), squaresModulo(29),
	squaresModulo(31), squaresModulo(37), squaresModulo(41), squaresModulo(43),
}

// maybeSquare reports whether a number x with x ≡ r (mod fermatModulus) can
// be a perfect square: false means it is not one; true means it is a square
// modulo every factor of fermatModulus, and only a big square root can tell.
// The filters run from the most to the least selective per cycle spent: the
// one modulo 64 alone rejects 81% of the numbers.
func maybeSquare(r uint64) bool {
	s := &fermatSquares
	return s.m64.has(r%64) && s.m63.has(r%63) && s.m65.has(r%65) && s.m11.has(r%11) &&
		s.m17.has(r%17) && s.m19.has(r%19) && s.m23.has(r%23) && s.m29.has(r%29) &&
		s.m31.has(r%31) && s.m37.has(r%37) && s.m41.has(r%41) && s.m43.has(r%43)
}

// fermatFactors reports whether Fermat's method splits n within rounds steps
// starting at a = floor(sqrt(n))+1, exactly as zlint's e_rsa_fermat_factorization
// lint does, and if so the factors p >= q (p = a+b, q = a-b).
//
// Round i (from 0) tests whether b² = a² − n, with a = floor(sqrt(n))+1+i,
// is a perfect square, as zlint's checkPrimeFactorsTooClose does, and the
// first round that finds one gives the factors: the answer is the same as
// zlint's for every n >= 0 and every rounds, including an even n, a perfect
// square n (zlint never tries a = sqrt(n), so b = 0 is never found) and
// n = 0, which zlint "splits" as 2·0 at round 0. rounds <= 0 finds nothing.
// For a nil or negative n zlint's lint panics and reports a fatal result;
// fermatFactors reports false, so a caller must reject such a modulus itself
// (Go's and zcrypto's certificate parsers already do).
//
// The cost is one big square root of n, then per round a few uint64
// operations: b² is kept modulo fermatModulus, updated with b² += 2a+1 as a
// grows, and checked against the squares modulo small numbers (maybeSquare).
// Only a round that passes every filter computes the big b² and its square
// root to confirm it. Safe for concurrent use; n is not modified.
func fermatFactors(n *big.Int, rounds int) (p, q *big.Int, ok bool) {
	if n == nil || n.Sign() < 0 || rounds <= 0 {
		return nil, nil, false
	}
	a0 := new(big.Int).Sqrt(n)
	a0.Add(a0, big.NewInt(1))

	var b2, t big.Int
	m := new(big.Int).SetUint64(fermatModulus)
	b2.Mul(a0, a0).Sub(&b2, n)
	r := t.Mod(&b2, m).Uint64() // b² mod M; b² > 0 since a > sqrt(n)
	t.Lsh(a0, 1).Add(&t, big.NewInt(1))
	d := t.Mod(&t, m).Uint64() // 2a+1 mod M, the step to the next b²

	for i := range rounds {
		if maybeSquare(r) {
			if p, q, ok := fermatSplit(n, a0, i); ok {
				return p, q, true
			}
		}
		r += d
		if r >= fermatModulus {
			r -= fermatModulus
		}
		d += 2
		if d >= fermatModulus {
			d -= fermatModulus
		}
	}
	return nil, nil, false
}

// fermatSplit tests round i of Fermat's method from a0 on n: whether
// b² = (a0+i)² − n is a perfect square, and if so p = a+b and q = a−b.
func fermatSplit(n, a0 *big.Int, i int) (p, q *big.Int, ok bool) {
	a := new(big.Int).Add(a0, big.NewInt(int64(i)))
	b2 := new(big.Int).Mul(a, a)
	b2.Sub(b2, n)
	b := new(big.Int).Sqrt(b2)
	if new(big.Int).Mul(b, b).Cmp(b2) != 0 {
		return nil, nil, false
	}
	return new(big.Int).Add(a, b), new(big.Int).Sub(a, b), true
}
