package counter_test

import (
	"errors"
	"testing"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/counter"
)

func TestSignaturePIN(t *testing.T) {
	for _, c := range []struct {
		pin, want string
		ok        bool
	}{
		{"ABC123", "ABC123", true},
		{"abc123", "ABC123", true}, // lower case folded
		{"aBc1234567890XYZ", "ABC1234567890XYZ", true},
		{"A1B2C", "", false},             // 5 characters
		{"A1B2C3D4E5F6G7H8I", "", false}, // 17 characters
		{"ABCDEF", "", false},            // no digit
		{"123456", "", false},            // no letter
		{"ABC-123", "", false},           // symbol
		{"ABC 123", "", false},           // space
		{"ＡＢＣ１２３", "", false},            // full width is refused, not folded
		{"ıbc123", "", false},            // dotless i does not fold to I
		{"", "", false},
	} {
		got, err := counter.SignaturePIN(c.pin)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("SignaturePIN(%q) = %q, %v; want %q ok=%v", c.pin, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, counter.ErrPIN) {
			t.Errorf("SignaturePIN(%q): %v is not ErrPIN", c.pin, err)
		}
	}
}

func TestAuthenticationPIN(t *testing.T) {
	for _, c := range []struct {
		pin string
		ok  bool
	}{
		{"0000", true}, {"1234", true}, {"123", false}, {"12345", false}, {"12a4", false}, {"１２３４", false}, {"", false}, {" 123", false},
	} {
		err := counter.AuthenticationPIN(c.pin)
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, counter.ErrPIN)) {
			t.Errorf("AuthenticationPIN(%q) = %v, want ok=%v", c.pin, err, c.ok)
		}
	}
}

func TestFeeQuote(t *testing.T) {
	for _, c := range []struct {
		name     string
		req      counter.FeeRequest
		total    int
		sig, aut int // -1: not on the quote
	}{
		{"signature only", counter.FeeRequest{Signature: true}, 200, 200, -1},
		{"authentication only", counter.FeeRequest{Authentication: true}, 200, -1, 200},
		{"both: authentication free with signature", counter.FeeRequest{Signature: true, Authentication: true}, 200, 200, 0},
		{"both on a My Number Card", counter.FeeRequest{Signature: true, Authentication: true, MyNumberCard: true}, 0, 0, 0},
		{"authentication on a My Number Card", counter.FeeRequest{Authentication: true, MyNumberCard: true}, 0, -1, 0},
		{"re-issue after own loss", counter.FeeRequest{Signature: true, Authentication: true, MyNumberCard: true, ReissueAfterOwnLoss: true}, 200, 200, 0},
		{"authentication re-issue after own loss", counter.FeeRequest{Authentication: true, MyNumberCard: true, ReissueAfterOwnLoss: true}, 200, -1, 200},
		{"nothing", counter.FeeRequest{}, 0, -1, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := counter.DefaultFees.Quote(c.req)
			got := map[ca.CertType]int{ca.Signature: -1, ca.Authentication: -1}
			sum := 0
			for _, l := range q.Lines {
				got[l.Type] = l.Yen
				sum += l.Yen
			}
			if q.Total != c.total || sum != q.Total || got[ca.Signature] != c.sig || got[ca.Authentication] != c.aut {
				t.Fatalf("quote %+v, want total %d, signature %d, authentication %d", q, c.total, c.sig, c.aut)
			}
		})
	}
	if q := (counter.FeeSchedule{PerCertificate: 300}).Quote(counter.FeeRequest{Signature: true}); q.Total != 300 {
		t.Fatalf("a municipality's own fee: %d", q.Total)
	}
}
