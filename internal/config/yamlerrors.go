package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// yamlProblems rewrites the YAML decoder's type errors, which name the Go
// types of this package ("field foo not found in type config.Listen",
// "cannot unmarshal !!str `x` into time.Duration"), in the configuration's
// own terms: the section's keys and the kind of value wanted. Other errors
// (YAML syntax) are returned as they are.
func yamlProblems(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = yamlProblem(m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

var (
	unknownField = regexp.MustCompile("^(line [0-9]+): field (.+) not found in type (.+)$")
	wrongKind    = regexp.MustCompile("^(line [0-9]+): cannot unmarshal !!([a-z]+)(?: `(.*)`)? into (.+)$")
	// sections maps the Go type of every mapping in Config to its path in
	// the YAML ("" for the top level).
	sections = sectionPaths(reflect.TypeFor[Config](), "", map[string]string{})
)

func yamlProblem(m string) string {
	if g := unknownField.FindStringSubmatch(m); g != nil {
		if path, ok := sections[g[3]]; ok && path != "" {
			return fmt.Sprintf("%s: %s has no key %q", g[1], path, g[2])
		}
		return fmt.Sprintf("%s: unknown key %q", g[1], g[2])
	}
	if g := wrongKind.FindStringSubmatch(m); g != nil {
		got := "a " + map[string]string{"seq": "list", "map": "mapping", "str": "string"}[g[2]]
		if got == "a " {
			got = "a " + g[2]
		}
		if g[3] != "" {
			got = fmt.Sprintf("%q", g[3])
		}
		return fmt.Sprintf("%s: %s is not %s", g[1], got, kindWanted(g[4]))
	}
	return m
}

// kindWanted says in words what a value of the Go type named goType looks
// like in YAML.
func kindWanted(goType string) string {
	switch {
	case goType == reflect.TypeFor[time.Duration]().String():
		return "a duration (such as 90s, 10m or 24h)"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	default:
		return "a mapping of keys"
	}
}

// sectionPaths records the YAML path of t and of every struct within it.
func sectionPaths(t reflect.Type, path string, out map[string]string) map[string]string {
	out[t.String()] = path
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if path != "" {
			name = path + "." + name
		}
		switch ft := f.Type; {
		case ft.Kind() == reflect.Struct && ft.PkgPath() == t.PkgPath():
			sectionPaths(ft, name, out)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
			sectionPaths(ft.Elem(), "an entry of "+name, out)
		}
	}
	return out
}
