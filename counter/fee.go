package counter

import "github.com/jpkica/jpkica/ca"

// FeeSchedule is a municipality's fees (fees are per municipality).
type FeeSchedule struct {
	// PerCertificate is the fee in yen for one certificate (200 on the
	// seed page).
	PerCertificate int
}

// DefaultFees are the seed page's fees.
var DefaultFees = FeeSchedule{PerCertificate: 200}

// FeeRequest describes one visit to the counter.
type FeeRequest struct {
	Signature      bool // a signature certificate is issued
	Authentication bool // a user-authentication certificate is issued
	// MyNumberCard: the certificates go onto a My Number Card, new or
	// already held. Both are then free ("both free for card holders and
	// with a new card").
	MyNumberCard bool
	// ReissueAfterOwnLoss: a re-issue because the holder lost the card
	// (or the certificates) themselves. It is charged even on a My Number
	// Card.
	ReissueAfterOwnLoss bool
}

// FeeLine is one certificate on the quote.
type FeeLine struct {
	Type ca.CertType
	Yen  int
	Why  string
}

// Quote is what the counter charges.
type Quote struct {
	Lines []FeeLine
	Total int
}

// Quote applies the seed rules, a pure function of its input: each
// certificate costs PerCertificate; the user-authentication certificate is
// free when issued together with the signature certificate; both are free
// on a My Number Card, except for a re-issue after the holder's own loss.
func (s FeeSchedule) Quote(req FeeRequest) Quote {
	var q Quote
	add := func(t ca.CertType, yen int, why string) {
		q.Lines = append(q.Lines, FeeLine{Type: t, Yen: yen, Why: why})
		q.Total += yen
	}
	free := req.MyNumberCard && !req.ReissueAfterOwnLoss
	if req.Signature {
		if free {
			add(ca.Signature, 0, "free on a My Number Card")
		} else {
			add(ca.Signature, s.PerCertificate, "per certificate")
		}
	}
	if req.Authentication {
		switch {
		case free:
			add(ca.Authentication, 0, "free on a My Number Card")
		case req.Signature:
			add(ca.Authentication, 0, "free with the signature certificate")
		default:
			add(ca.Authentication, s.PerCertificate, "per certificate")
		}
	}
	return q
}
