package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// checkJSONText refuses what encoding/json would accept but read
// differently from what was sent, before it decodes anything: bytes that are
// not UTF-8 and \u escapes of lone UTF-16 surrogates (both become U+FFFD,
// and a name would be certified as 〓), and an object with the same key twice
// (the last value wins there, and another parser may take the first). RFC
// 8259 sections 8.1, 8.2 and 4. Syntax errors are left to the decoder.
func checkJSONText(body []byte) error {
	if !utf8.Valid(body) {
		return malformed("the body is not valid UTF-8")
	}
	if at := loneSurrogate(body); at >= 0 {
		return malformed(fmt.Sprintf("a string holds a lone UTF-16 surrogate (%s at byte %d)", body[at:at+6], at))
	}
	if key, ok := duplicateKey(body); ok {
		return malformed(fmt.Sprintf("the key %q appears twice in one object", key))
	}
	return nil
}

// loneSurrogate is the offset of the first \u escape in a string of body
// that names a UTF-16 surrogate not in a high-low pair, or -1.
func loneSurrogate(body []byte) int {
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c != '\\':
		case i+1 < len(body) && body[i+1] != 'u':
			i++ // a one-character escape
		default:
			r, ok := escapedUnit(body, i)
			switch {
			case !ok:
				return -1 // not an escape the decoder takes: its error
			case r >= 0xDC00 && r < 0xE000:
				return i
			case r >= 0xD800 && r < 0xDC00:
				if low, ok := escapedUnit(body, i+6); !ok || low < 0xDC00 || low >= 0xE000 {
					return i
				}
				i += 6
			}
			i += 5
		}
	}
	return -1
}

// escapedUnit reads the \uXXXX escape at body[i:].
func escapedUnit(body []byte, i int) (rune, bool) {
	if i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(body[i+2:i+6]), 16, 16)
	return rune(n), err == nil
}

// duplicateKey finds a key that appears twice in one object of body.
func duplicateKey(body []byte) (string, bool) {
	type frame struct {
		keys    map[string]bool // nil for an array
		wantKey bool
	}
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false // io.EOF, or a syntax error the decoder reports
		}
		if n := len(stack); n > 0 && stack[n-1].wantKey {
			if key, ok := tok.(string); ok {
				if stack[n-1].keys[key] {
					return key, true
				}
				stack[n-1].keys[key] = true
				stack[n-1].wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}
