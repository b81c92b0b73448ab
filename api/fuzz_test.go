package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// fuzzBody decodes body into v the way the API does and checks that every
// refusal is an API error with a 4xx status and a code.
func fuzzBody[T any](t *testing.T, body []byte, validate func(*T) error) {
	var v T
	err := DecodeBody(body, &v)
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
		fuzzBody(t, body, func(r *IssueRequest) error {
			if _, err := parseType(r.Type); err != nil {
				return err
			}
			if _, err := r.Resident.validate(); err != nil {
				return err
			}
			if _, _, err := r.Card.validate(); err != nil {
				return err
			}
			_, err := parseCSR(r.CSR)
			return err
		})
	})
}

func FuzzRevokeRequest(f *testing.F) {
	seeds(f, `{"reason":"keyCompromise"}`, `{"reason":"KEYCOMPROMISE"}`)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzBody[RevokeRequest](t, body, nil) })
}

func FuzzEventRequest(f *testing.F) {
	seeds(f, `{"kind":"facts_changed","effective":"2026-11-25"}`, `{"kind":"deceased","effective":"2026-02-30"}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzBody(t, body, func(r *EventRequest) error {
			_, err := parseDate("effective", r.Effective)
			return err
		})
	})
}

func FuzzProxyApplicationRequest(f *testing.F) {
	seeds(f, `{"resident":{"id":"R1","municipality":"302015","name":"和歌山　太郎","birth_date":"1990-05-02","sex":"male",
"address":"和歌山県和歌山市七番丁２３番地","adult_guardianship":false},"card":{"id":"C1","expires":"2036-05-02"},"types":["signature"]}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzBody(t, body, func(r *ProxyApplicationRequest) error {
			if _, err := r.Resident.validate(); err != nil {
				return err
			}
			for _, s := range r.Types {
				if _, err := parseType(s); err != nil {
					return err
				}
			}
			_, _, err := r.Card.validate()
			return err
		})
	})
}

func FuzzHoldBody(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, body []byte) { fuzzBody[struct{}](t, body, nil) })
}

// FuzzJSONText: a body that checkJSONText accepts decodes without a
// replacement character that the body did not write (as U+FFFD or as
// \ufffd): no byte and no escape was read as something other than sent.
func FuzzJSONText(f *testing.F) {
	seeds(f, `{"name":"\ud842\udfb7"}`, `{"name":"\ud800"}`, `{"name":"\udc00\ud800"}`, `{"a":"\\ud800"}`,
		`{"a":1,"a":2}`, `{"a":{"b":1},"b":{"b":2}}`, `{"a":[{"x":1},{"x":1}]}`, "{\"a\":\"\xed\xa0\x80\"}", `{"a":"\ufffd"}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkJSONText(body) != nil || !json.Valid(body) {
			return
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		written := strings.Count(string(body), "\ufffd") + strings.Count(strings.ToLower(string(body)), `\ufffd`)
		if got := countReplacements(v); got > written {
			t.Fatalf("%q decodes with %d replacement characters, %d written", body, got, written)
		}
	})
}

func countReplacements(v any) int {
	n := 0
	switch v := v.(type) {
	case string:
		n = strings.Count(v, "\ufffd")
	case []any:
		for _, e := range v {
			n += countReplacements(e)
		}
	case map[string]any:
		for k, e := range v {
			n += strings.Count(k, "\ufffd") + countReplacements(e)
		}
	}
	return n
}
