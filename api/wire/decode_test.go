package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestDecode: what Decode refuses, with which code, and messages in the
// JSON's terms: never a Go type or struct name.
func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		code       string // "" for accepted
		msg        string // a part of the message
	}{
		{"one object", `{"type":"signature","card":{"id":"C1"}}`, "", ""},
		{"not an object", `["signature"]`, CodeMalformedJSON, "one JSON object"},
		{"empty", ``, CodeMalformedJSON, "one JSON object"},
		{"trailing data", `{"type":"signature"} {}`, CodeMalformedJSON, "data after"},
		{"unknown field", `{"colour":"red"}`, CodeUnknownField, `unknown field "colour"`},
		{"wrong type: bool", `{"resident":{"adult_guardianship":"no"}}`, CodeMalformedJSON, "resident.adult_guardianship: want true or false, not string"},
		{"wrong type: string", `{"type":1}`, CodeMalformedJSON, "type: want a string, not number"},
		{"wrong type: object", `{"card":[]}`, CodeMalformedJSON, "card: want an object, not array"},
		{"syntax", `{"type":}`, CodeMalformedJSON, "not valid JSON at byte"},
		{"ends early", `{"type":"sig`, CodeMalformedJSON, ""},
		{"invalid UTF-8", "{\"type\":\"\xff\"}", CodeMalformedJSON, "not valid UTF-8"},
		{"lone surrogate", `{"type":"\ud800"}`, CodeMalformedJSON, "lone UTF-16 surrogate"},
		{"escaped backslash then u", `{"type":"\\ud800"}`, "", ""},
		{"surrogate pair", `{"type":"\ud842\udfb7"}`, "", ""},
		{"duplicate key", `{"type":"a","type":"b"}`, CodeMalformedJSON, `"type" appears twice`},
		{"same key in two objects", `{"card":{"id":"a"},"resident":{"id":"b"}}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v IssueRequest
			err := Decode([]byte(tc.body), &v)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Code != tc.code || !strings.Contains(de.Message, tc.msg) {
				t.Fatalf("Decode = %v, want %s containing %q", err, tc.code, tc.msg)
			}
			for _, goName := range []string{"Go ", "struct", "wire.", "IssueRequest", "bool"} {
				if strings.Contains(de.Message, goName) {
					t.Errorf("message %q names a Go type (%q)", de.Message, goName)
				}
			}
		})
	}
}

// FuzzJSONText: a body that checkJSONText accepts decodes without a
// replacement character that the body did not write (as U+FFFD or as
// \ufffd): no byte and no escape was read as something other than sent.
func FuzzJSONText(f *testing.F) {
	for _, seed := range []string{`{"name":"\ud842\udfb7"}`, `{"name":"\ud800"}`, `{"name":"\udc00\ud800"}`, `{"a":"\\ud800"}`,
		`{"a":1,"a":2}`, `{"a":{"b":1},"b":{"b":2}}`, `{"a":[{"x":1},{"x":1}]}`, "{\"a\":\"\xed\xa0\x80\"}", `{"a":"\ufffd"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkJSONText(body) != nil || !json.Valid(body) {
			return
		}
		// Numbers as json.Number: a valid number may be out of float64's
		// range, which is not what this target is about.
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
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
