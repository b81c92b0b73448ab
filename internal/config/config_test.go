package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDefaultIsValid(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if !c.Embedded() || c.Keys.Backend != "software" || !strings.HasPrefix(c.Store.DSN, "sqlite:") {
		t.Fatalf("defaults: embedded=%v backend=%q dsn=%q", c.Embedded(), c.Keys.Backend, c.Store.DSN)
	}
	if _, ok := c.Municipalities["302015"]; !ok {
		t.Fatal("defaults lack Wakayama City (302015)")
	}
	// A new user's status listener is the fast one.
	if c.Listen.StatusStack != StackFastHTTP {
		t.Fatalf("default listen.status_stack %q, want %q", c.Listen.StatusStack, StackFastHTTP)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr bool
	}{
		{"override listen", "listen:\n  status: 127.0.0.1:9090\n", false},
		{"unknown key", "listne:\n  status: 127.0.0.1:9090\n", true},
		{"bad dsn", "store:\n  dsn: mysql://x\n", true},
		{"pkcs11 without pin source", "keys:\n  backend: pkcs11\n  pkcs11:\n    module: /m.so\n    token_label: t\n", true},
		{"pkcs11 with two pin sources", "keys:\n  backend: pkcs11\n  pkcs11:\n    module: /m.so\n    token_label: t\n    pin_file: /p\n    pin_env: P\n", true},
		{"pkcs11 ok", "keys:\n  backend: pkcs11\n  pkcs11:\n    module: /m.so\n    token_label: t\n    pin_env: P\n", false},
		{"bad municipality code", "municipalities:\n  \"30201\": {prefecture: A, name: B}\n", true},
		{"bad ocsp url", "urls:\n  ocsp: ftp://x\n", true},
		{"profile not a boolean", "profile:\n  issuer_alt_name: maybe\n", true},
		{"unknown profile key", "profile:\n  issuer_alt_names: false\n", true},
		{"api names", "listen:\n  api_names: [ca.jpkica.example, 10.0.0.5, \"::1\"]\n", false},
		{"api name wildcard", "listen:\n  api_names: [\"*.jpkica.example\"]\n", true},
		{"api name with a port", "listen:\n  api_names: [\"ca.jpkica.example:8443\"]\n", true},
		{"status stack nethttp", "listen:\n  status_stack: nethttp\n", false},
		{"status stack unknown", "listen:\n  status_stack: h2o\n", true},
		{"status clients", "listen:\n  status_clients: [10.0.0.0/8, 192.0.2.10]\n", false},
		{"status client not a network", "listen:\n  status_clients: [verifiers.example]\n", true},
		{"renewal window zero", "issuance:\n  renewal_window_months: 0\n", true},
		{"responder renewed as soon as made", "issuance:\n  responder_validity: 240h\n", true},
		{"responder renewed after a third of its life", "issuance:\n  responder_validity: 300h\n", true},
		{"responder renewed too late", "issuance:\n  responder_renew_before: 36h\n", true},
		{"responder renewal", "issuance:\n  responder_validity: 2160h\n  responder_renew_before: 720h\n", false},
		{"pool", "store:\n  max_open_conns: 20\n  max_idle_conns: 20\n  conn_max_lifetime: 1h\n  max_lag: 2s\n", false},
		{"more idle connections than open", "store:\n  max_open_conns: 4\n", true},
		{"no open connections", "store:\n  max_open_conns: 0\n  max_idle_conns: 0\n", true},
		{"connections closed at once", "store:\n  conn_max_idle_time: 0s\n", true},
		{"no lag allowed", "store:\n  max_lag: 0s\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadYAML(t, tt.yaml)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Load = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Embedded() {
				t.Fatal("a loaded file is not the embedded default")
			}
		})
	}
}

func TestPINNeverInErrors(t *testing.T) {
	dir := t.TempDir()
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte("s3cret-1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Config{Keys: Keys{PKCS11: PKCS11{PINFile: pinFile}}}
	pin, err := c.PIN()
	if err != nil || pin != "s3cret-1234" {
		t.Fatalf("PIN() = %q, %v", pin, err)
	}
	t.Setenv("JPKICA_TEST_PIN_UNSET_CHECK", "")
	c = &Config{Keys: Keys{PKCS11: PKCS11{PINEnv: "JPKICA_TEST_PIN_UNSET_CHECK"}}}
	if _, err := c.PIN(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty env PIN: %v, want ErrInvalid", err)
	}
	t.Setenv("JPKICA_TEST_PIN", "9876")
	c = &Config{Keys: Keys{PKCS11: PKCS11{PINEnv: "JPKICA_TEST_PIN"}}}
	if pin, err := c.PIN(); err != nil || pin != "9876" {
		t.Fatalf("env PIN() = %q, %v", pin, err)
	}
}

// TestPINFileMode: a PIN file that group or others may read or write is
// refused, with the fix in the error and without the PIN; one only its
// owner may read is accepted.
func TestPINFileMode(t *testing.T) {
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o400, true},
		{0o600, true},
		{0o700, true},
		{0o640, false},
		{0o604, false},
		{0o644, false},
		{0o620, false},
		{0o602, false},
		{0o610, false},
	} {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			pinFile := filepath.Join(t.TempDir(), "pin")
			if err := os.WriteFile(pinFile, []byte("s3cret-1234\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(pinFile, tt.mode); err != nil { // whatever the umask
				t.Fatal(err)
			}
			c := &Config{Keys: Keys{PKCS11: PKCS11{PINFile: pinFile}}}
			pin, err := c.PIN()
			if tt.ok {
				if err != nil || pin != "s3cret-1234" {
					t.Fatalf("PIN() = %q, %v; want the PIN", pin, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("PIN() = %q, %v; want ErrInvalid", pin, err)
			}
			if fix := "chmod 600 " + pinFile; !strings.Contains(err.Error(), fix) {
				t.Errorf("the error does not say %q: %v", fix, err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error contains the PIN: %v", err)
			}
		})
	}
}

// TestYAMLErrorsInConfigTerms: a value of the wrong kind or an unknown key
// is reported by line, key and the kind of value wanted, never by the Go
// types the configuration is decoded into.
func TestYAMLErrorsInConfigTerms(t *testing.T) {
	goTypes := []string{"config.", "time.", "map[", "[]", "int", "bool", "!!", "unmarshal"}
	for _, tt := range []struct {
		name, yaml string
		says       []string
	}{
		{"duration", "crl:\n  interval: abc\n", []string{"line 2", `"abc"`, "a duration"}},
		{"number", "keys:\n  pkcs11:\n    max_sessions: many\n", []string{"line 3", `"many"`, "a whole number"}},
		{"boolean", "profile:\n  issuer_alt_name: maybe\n", []string{"line 2", `"maybe"`, "true or false"}},
		{"list", "listen:\n  api_names: api.example\n", []string{"line 2", "a list"}},
		{"mapping", "municipalities: [1]\n", []string{"line 1", "a list", "a mapping"}},
		{"unknown key in a section", "listen:\n  foo: 1\n", []string{"line 2", "listen", `"foo"`}},
		{"unknown top-level key", "bar: 2\n", []string{"line 1", `"bar"`}},
		{"unknown key of a municipality", "municipalities:\n  \"302015\":\n    town: x\n", []string{"line 3", "municipalities", `"town"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jpkica.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load: %v, want ErrInvalid", err)
			}
			msg := strings.TrimPrefix(err.Error(), "config "+path+": ")
			for _, g := range goTypes {
				if strings.Contains(msg, g) {
					t.Errorf("the error names Go's %q: %s", g, msg)
				}
			}
			for _, w := range tt.says {
				if !strings.Contains(msg, w) {
					t.Errorf("the error does not say %q: %s", w, msg)
				}
			}
		})
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Keys.Backend != "pkcs11" || c.Keys.PKCS11.PINFile == "" {
		t.Fatalf("example: backend %q pin_file %q", c.Keys.Backend, c.Keys.PKCS11.PINFile)
	}
}

// TestProfile: the three profile switches default to the real
// certificate's form, and a file that sets one keeps the others.
func TestProfile(t *testing.T) {
	all := Profile{IssuerAltName: true, CRLDirectoryName: true, AKIIssuerSerial: true}
	for _, c := range []struct {
		yaml string
		want Profile
	}{
		{"listen:\n  status: 127.0.0.1:9090\n", all},
		{"profile:\n  aki_issuer_serial: false\n", Profile{IssuerAltName: true, CRLDirectoryName: true}},
		{"profile:\n  issuer_alt_name: false\n  crl_directory_name: false\n", Profile{AKIIssuerSerial: true}},
	} {
		got, err := loadYAML(t, c.yaml)
		if err != nil {
			t.Fatal(err)
		}
		if got.Profile != c.want {
			t.Errorf("%q: profile %+v, want %+v", c.yaml, got.Profile, c.want)
		}
	}
	for _, load := range []func() (*Config, error){Default, func() (*Config, error) { return Load(filepath.Join("..", "..", "config.example.yaml")) }} {
		c, err := load()
		if err != nil {
			t.Fatal(err)
		}
		if c.Profile != all {
			t.Errorf("profile %+v, want %+v", c.Profile, all)
		}
	}
}

// TestMunicipalitiesReplaceDefaults: a file that lists municipalities
// serves those alone; one that lists none keeps the embedded ones.
func TestMunicipalitiesReplaceDefaults(t *testing.T) {
	defaults, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		yaml string
		want []string
	}{
		{"municipalities:\n  \"302015\": {prefecture: Wakayama-ken, name: Wakayama-shi}\n", []string{"302015"}},
		{"listen:\n  status: 127.0.0.1:9090\n", slices.Sorted(maps.Keys(defaults.Municipalities))},
	} {
		got, err := loadYAML(t, c.yaml)
		if err != nil {
			t.Fatal(err)
		}
		if keys := slices.Sorted(maps.Keys(got.Municipalities)); !slices.Equal(keys, c.want) {
			t.Errorf("%q: municipalities %v, want %v", c.yaml, keys, c.want)
		}
	}
}

// loadYAML loads doc as a config file over the embedded defaults.
func loadYAML(t *testing.T, doc string) (*Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(p)
}
