package ca

import (
	"errors"
	"fmt"
	"time"
)

// Distinct reasons for ErrNotEligible; each wraps it, so errors.Is matches
// both the reason and ErrNotEligible.
var (
	// ErrUnderAge: a signature certificate for a resident under 15.
	ErrUnderAge = fmt.Errorf("%w: under 15", ErrNotEligible)
	// ErrAdultGuardianship: a signature certificate for a resident under
	// adult guardianship (成年被後見人).
	ErrAdultGuardianship = fmt.Errorf("%w: under adult guardianship", ErrNotEligible)
)

// SignatureMinimumAge is the age from which a resident may hold a signature
// certificate.
const SignatureMinimumAge = 15

// EligibilityRequest is what decides whether a resident may hold a
// certificate type.
type EligibilityRequest struct {
	Type              CertType
	BirthDate         Date
	IssuedAt          time.Time // its date in Japan is the issuance date
	AdultGuardianship bool
}

// CheckEligibility applies DOMAIN.md's "who may hold it": anyone may hold an
// authentication certificate (under 15 the legal guardian applies); a
// signature certificate needs age 15 or over on the issuance date and no
// adult guardianship. A refusal wraps ErrUnderAge or ErrAdultGuardianship
// (both wrap ErrNotEligible); malformed input is ErrInvalid.
func CheckEligibility(req EligibilityRequest) error {
	if req.Type != Signature && req.Type != Authentication {
		return fmt.Errorf("%w: eligibility: certificate type %v", ErrInvalid, req.Type)
	}
	if !req.BirthDate.Valid() {
		return fmt.Errorf("%w: eligibility: birth date %v", ErrInvalid, req.BirthDate)
	}
	if req.IssuedAt.IsZero() {
		return fmt.Errorf("%w: eligibility: no issuance time", ErrInvalid)
	}
	on := DateOf(req.IssuedAt)
	if req.BirthDate.After(on) {
		return fmt.Errorf("%w: eligibility: birth date %v after issuance date %v", ErrInvalid, req.BirthDate, on)
	}
	if req.Type == Authentication {
		return nil
	}
	var errs []error
	if age := AgeOn(req.BirthDate, on); age < SignatureMinimumAge {
		errs = append(errs, fmt.Errorf("%w: aged %d on %v, 15 from %v", ErrUnderAge, age, on,
			comesOfAge(req.BirthDate, SignatureMinimumAge)))
	}
	if req.AdultGuardianship {
		errs = append(errs, ErrAdultGuardianship)
	}
	return errors.Join(errs...)
}

// AgeOn is the resident's age on day, by the Japanese rule (年齢計算ニ関スル
// 法律 and Civil Code article 143): age N is reached at the end of the day
// before the N-th anniversary of birth, so during the whole of the
// anniversary day the resident is N. That is the natural "has had their
// N-th birthday by that day".
//
// For a resident born on 29 February the anniversary in a common year does
// not exist; article 143(2) then ends the period at the end of the month, so
// the age is reached at the end of 28 February and counts from 1 March. This
// deliberately differs from BirthdayIn (the certificate's expiry day, 28
// February): age is a statute with a settled answer, the expiry rule is not.
func AgeOn(birth, day Date) int {
	age := day.Year - birth.Year
	if day.Before(comesOfAge(birth, age)) {
		age--
	}
	return age
}

// comesOfAge is the first day on which a resident born on birth is n years
// old: the n-th anniversary, 1 March for a 29 February birth in a common year
// (time.Date normalises 29 February of a common year to 1 March).
func comesOfAge(birth Date, n int) Date {
	return DateOf(time.Date(birth.Year+n, birth.Month, birth.Day, 12, 0, 0, 0, jst))
}
