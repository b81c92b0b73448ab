package counter

import (
	"errors"
	"fmt"

	"github.com/jpkica/jpkica/ca"
)

// ErrPIN reports a PIN that the card's rules refuse.
var ErrPIN = errors.New("PIN refused")

// SignaturePIN checks a signature-certificate PIN (DOMAIN.md): 6 to 16
// characters of A-Z and 0-9, with at least one letter and one digit. ASCII
// lower case is folded to upper case first; the folded PIN is returned and
// is what goes on the card. Anything else (full-width characters, symbols,
// spaces) is refused, not folded.
func SignaturePIN(pin string) (string, error) {
	if len(pin) < 6 || len(pin) > 16 {
		return "", fmt.Errorf("%w: a signature PIN has 6 to 16 characters, not %d", ErrPIN, len([]rune(pin)))
	}
	out := []byte(pin)
	letter, digit := false, false
	for i, c := range out {
		switch {
		case c >= 'a' && c <= 'z':
			out[i] = c - 'a' + 'A'
			letter = true
		case c >= 'A' && c <= 'Z':
			letter = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			return "", fmt.Errorf("%w: a signature PIN has only letters A-Z and digits 0-9", ErrPIN)
		}
	}
	if !letter || !digit {
		return "", fmt.Errorf("%w: a signature PIN mixes letters and digits", ErrPIN)
	}
	return string(out), nil
}

// AuthenticationPIN checks a user-authentication PIN: exactly 4 digits 0-9.
func AuthenticationPIN(pin string) error {
	if len(pin) != 4 {
		return fmt.Errorf("%w: a user-authentication PIN has 4 digits", ErrPIN)
	}
	for _, c := range []byte(pin) {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: a user-authentication PIN has digits 0-9 only", ErrPIN)
		}
	}
	return nil
}

// ResidentPIN checks a resident's PIN for the certificate type t against
// its rule and returns it as the card keeps it (a signature PIN folded to
// upper case). A counter checks a PIN the resident types before it tries
// it on the card: a PIN that breaks the rule cannot be right, and trying
// it would use up one of the card's few tries.
func ResidentPIN(t ca.CertType, pin string) (string, error) {
	switch t {
	case ca.Signature:
		return SignaturePIN(pin)
	case ca.Authentication:
		return pin, AuthenticationPIN(pin)
	}
	return "", fmt.Errorf("%w: no PIN for %v", ErrPIN, t)
}
