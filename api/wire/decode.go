package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
)

// DecodeError is a request body that Decode refuses. Code is
// CodeMalformedJSON or CodeUnknownField; Message names the fault in the
// terms of the JSON text, never in those of the Go types it decodes into.
type DecodeError struct {
	Code    string
	Message string
}

func (e *DecodeError) Error() string { return e.Message }

func malformed(msg string) *DecodeError { return &DecodeError{Code: CodeMalformedJSON, Message: msg} }

// Decode is the strict JSON decoding of every request body: one JSON object
// of UTF-8 text, no lone surrogates, no key twice in an object, no unknown
// fields, nothing after it. A refusal is a *DecodeError.
func Decode(body []byte, v any) error {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return malformed("the body must be one JSON object")
	}
	if err := checkJSONText(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return malformed("data after the JSON object")
	}
	return nil
}

// decodeError says what encoding/json refused in the JSON's terms: its
// messages name Go types and struct fields.
func decodeError(err error) *DecodeError {
	var (
		typ *json.UnmarshalTypeError
		syn *json.SyntaxError
	)
	switch {
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "the body"
		}
		return malformed(fmt.Sprintf("%s: want %s, not %s", field, jsonKind(typ.Type), typ.Value))
	case errors.As(err, &syn):
		return malformed(fmt.Sprintf("not valid JSON at byte %d", syn.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return malformed("the JSON text ends early")
	}
	// encoding/json's unknown-field error has no type of its own.
	const unknown = "json: unknown field "
	if msg := err.Error(); len(msg) > len(unknown) && msg[:len(unknown)] == unknown {
		return &DecodeError{Code: CodeUnknownField, Message: "unknown field " + msg[len(unknown):]}
	}
	return malformed("the body does not decode")
}

// jsonKind names the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "an object"
}
