package api

import (
	"errors"
	"testing"

	"github.com/jpkica/jpkica/api/wire"
)

// fuzzBody decodes body into v the way the API does and checks that every
// refusal is an API error with a 4xx status and a code.
func fuzzBody[T any](t *testing.T, body []byte, validate func(*T) error) {
	var v T
	err := decodeBody(body, &v)
	if err == nil && validate != nil {
		err = validate(&v)
	}
	if err == nil {
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.status < 400 || ae.status >= 500 || ae.code == "" {
		t.Fatalf("%q: refusal %v is not a 4xx API error", body, err)
	}
}

func seeds(f *testing.F, ss ...string) {
	for _, s := range ss {
		f.Add([]byte(s))
	}
	f.Add([]byte(""))
	f.Add([]byte("null"))
	f.Add([]byte("{}"))
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte("\xff{"))
}

func FuzzIssueRequest(f *testing.F) {
	seeds(f, `{"type":"signature","csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
"card":{"id":"C1","expires":"2036-05-02"},"resident":{"id":"R1","municipality":"302015","name":"和歌山　太郎",
"birth_date":"1990-05-02","sex":"male","address":"和歌山県和歌山市七番丁２３番地","adult_guardianship":false},
"proxy":{"application_id":"00112233445566778899aabbccddeeff","answer_code":"ABC"}}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzBody(t, body, func(r *wire.IssueRequest) error {
			if _, err := parseType(r.Type); err != nil {
				return err
			}
			if _, err := validateResident(r.Resident); err != nil {
				return err
			}
			if _, _, err := validateCard(r.Card); err != nil {
				return err
			}
			_, err := parseCSR(r.CSR)
			return err
		})
	})
}

func FuzzRevokeRequest(f *testing.F) {
	seeds(f, `{"reason":"keyCompromise"}`, `{"reason":"KEYCOMPROMISE"}`)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzBody[wire.RevokeRequest](t, body, nil) })
}

func FuzzEventRequest(f *testing.F) {
	seeds(f, `{"kind":"facts_changed","effective":"2026-11-25"}`, `{"kind":"deceased","effective":"2026-02-30"}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzBody(t, body, func(r *wire.EventRequest) error {
			_, err := parseDate("effective", r.Effective)
			return err
		})
	})
}

func FuzzProxyApplicationRequest(f *testing.F) {
	seeds(f, `{"resident":{"id":"R1","municipality":"302015","name":"和歌山　太郎","birth_date":"1990-05-02","sex":"male",
"address":"和歌山県和歌山市七番丁２３番地","adult_guardianship":false},"card":{"id":"C1","expires":"2036-05-02"},"types":["signature"]}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzBody(t, body, func(r *wire.ProxyApplicationRequest) error {
			if _, err := validateResident(r.Resident); err != nil {
				return err
			}
			for _, s := range r.Types {
				if _, err := parseType(s); err != nil {
					return err
				}
			}
			_, _, err := validateCard(r.Card)
			return err
		})
	})
}

func FuzzHoldBody(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzBody[struct{}](t, body, nil) })
}
