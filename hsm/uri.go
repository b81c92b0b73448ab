package hsm

import (
	"fmt"
	"net/url"
	"strings"
)

// URI is the subset of an RFC 7512 PKCS #11 URI that jpkica understands,
// so configuration can name a token or key as, for example,
//
//	pkcs11:token=JPKI%20CA;object=sign-2026;id=%01%02?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/hsm-pin
//
// Values are percent-decoded. Path attributes: token, object, id, type,
// manufacturer, model, serial, slot-id (kept as text). Query attributes:
// module-path, module-name, pin-source. pin-value is refused: a PIN must not
// sit in configuration; use pin-source. Attributes starting with "x-" are
// ignored (RFC 7512 section 2.3, vendor-specific); any other attribute, or a
// repeated one, is an error.
type URI struct {
	Token        string
	Object       string
	ID           []byte
	Type         string // "private", "public", "cert", "secret-key" or "data"
	Manufacturer string
	Model        string
	Serial       string
	SlotID       string
	ModulePath   string
	ModuleName   string
	// PINSource is where the PIN is, as written in the URI (for example
	// "file:/run/secrets/pin"); reading it is up to the caller.
	PINSource string
}

// ParseURI parses an RFC 7512 PKCS #11 URI (the subset described on URI).
func ParseURI(s string) (URI, error) {
	var u URI
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		// The scheme is case-insensitive (RFC 3986 section 3.1).
		if len(s) < 7 || !strings.EqualFold(s[:7], "pkcs11:") {
			return URI{}, fmt.Errorf("parsing PKCS#11 URI: %w: missing pkcs11: scheme", ErrInvalidRequest)
		}
		rest = s[7:]
	}
	path, query, _ := strings.Cut(rest, "?")
	if strings.Contains(query, "#") {
		return URI{}, fmt.Errorf("parsing PKCS#11 URI: %w: fragment not allowed", ErrInvalidRequest)
	}
	seen := map[string]bool{}
	set := func(part, name, raw string) error {
		if seen[part+name] {
			return fmt.Errorf("%w: attribute %q repeated", ErrInvalidRequest, name)
		}
		seen[part+name] = true
		if name == "pin-value" {
			// Never echo the value.
			return fmt.Errorf("%w: pin-value is not accepted, use pin-source", ErrInvalidRequest)
		}
		v, err := url.PathUnescape(raw)
		if err != nil {
			return fmt.Errorf("%w: attribute %q: bad percent-encoding", ErrInvalidRequest, name)
		}
		switch part + name {
		case "path:token":
			u.Token = v
		case "path:object":
			u.Object = v
		case "path:id":
			u.ID = []byte(v)
		case "path:type":
			switch v {
			case "private", "public", "cert", "secret-key", "data":
			default:
				return fmt.Errorf("%w: type %q", ErrInvalidRequest, v)
			}
			u.Type = v
		case "path:manufacturer":
			u.Manufacturer = v
		case "path:model":
			u.Model = v
		case "path:serial":
			u.Serial = v
		case "path:slot-id":
			u.SlotID = v
		case "query:module-path":
			u.ModulePath = v
		case "query:module-name":
			u.ModuleName = v
		case "query:pin-source":
			u.PINSource = v
		default:
			if !strings.HasPrefix(name, "x-") {
				return fmt.Errorf("%w: unknown %s attribute %q", ErrInvalidRequest, strings.TrimSuffix(part, ":"), name)
			}
		}
		return nil
	}
	for _, kv := range splitNonEmpty(path, ";") {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return URI{}, fmt.Errorf("parsing PKCS#11 URI: %w: path attribute without name=value", ErrInvalidRequest)
		}
		if err := set("path:", name, value); err != nil {
			return URI{}, fmt.Errorf("parsing PKCS#11 URI: %w", err)
		}
	}
	for _, kv := range splitNonEmpty(query, "&") {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return URI{}, fmt.Errorf("parsing PKCS#11 URI: %w: query attribute without name=value", ErrInvalidRequest)
		}
		if err := set("query:", name, value); err != nil {
			return URI{}, fmt.Errorf("parsing PKCS#11 URI: %w", err)
		}
	}
	return u, nil
}

func splitNonEmpty(s, sep string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, sep)
}

// String formats the URI in the canonical form: path attributes in the
// order of RFC 7512's grammar, every byte of id percent-encoded, other
// values escaped where they must be.
func (u URI) String() string {
	var path []string
	add := func(name, v string) {
		if v != "" {
			path = append(path, name+"="+escapeAttr(v))
		}
	}
	add("token", u.Token)
	add("manufacturer", u.Manufacturer)
	add("serial", u.Serial)
	add("model", u.Model)
	add("slot-id", u.SlotID)
	add("object", u.Object)
	add("type", u.Type)
	if len(u.ID) > 0 {
		var b strings.Builder
		for _, c := range u.ID {
			fmt.Fprintf(&b, "%%%02X", c)
		}
		path = append(path, "id="+b.String())
	}
	s := "pkcs11:" + strings.Join(path, ";")
	var query []string
	if u.ModulePath != "" {
		query = append(query, "module-path="+escapeAttr(u.ModulePath))
	}
	if u.ModuleName != "" {
		query = append(query, "module-name="+escapeAttr(u.ModuleName))
	}
	if u.PINSource != "" {
		query = append(query, "pin-source="+escapeAttr(u.PINSource))
	}
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// escapeAttr percent-encodes everything but RFC 3986 unreserved characters
// and the few that RFC 7512 allows unescaped in attribute values.
func escapeAttr(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == ':', c == '[', c == ']', c == '@', c == '!', c == '$', c == '\'', c == '(', c == ')', c == '*', c == ',', c == '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
