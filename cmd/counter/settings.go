package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jpkica/jpkica/api/wire"
)

// settingError is a flag, an environment variable or a config file that is
// missing or wrong: name says which ("--cert", "COUNTER_SIG_PIN"), err what
// is wrong and what to do. It is a usage error.
type settingError struct {
	name string
	err  error
}

func (e *settingError) Error() string   { return e.name + ": " + e.err.Error() }
func (e *settingError) Unwrap() []error { return []error{errUsage, e.err} }
func (e *settingError) setting() string { return e.name }

// reachError is a call to the API that failed in a way that points at a
// setting: name says which (--api, --ca, --cert). It is no usage error:
// the setting may be right and the network down.
type reachError struct {
	name string
	err  error
}

func (e *reachError) Error() string   { return e.name + ": " + e.err.Error() }
func (e *reachError) Unwrap() error   { return e.err }
func (e *reachError) setting() string { return e.name }

// problems are all that a command found wrong with its settings before it
// did anything: it reports them together, one a line.
type problems []error

func (p problems) Error() string {
	if len(p) == 1 {
		return p[0].Error()
	}
	lines := make([]string, len(p))
	for i, e := range p {
		lines[i] = "  " + e.Error()
	}
	return fmt.Sprintf("%d problems, nothing was done:\n%s", len(p), strings.Join(lines, "\n"))
}

func (p problems) Unwrap() []error { return p }

// err is p as an error: nil when there is no problem.
func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// configEnv names the environment variable that names the config file.
const configEnv = "COUNTER_CONFIG"

// configName is the config file's name in the user's config folder.
const configName = "jpkica-counter.json"

// configKeys are what a config file may set: the connection and card
// flags, by their names.
var configKeys = []string{"api", "cert", "key", "ca", "module", "sig-token", "auth-token"}

// config is the terminal's config file as read.
type config struct {
	// path is the file read, or the one that would have been: where a
	// setting the command lacks can go.
	path   string
	values map[string]string
}

// defaultConfigPath is $XDG_CONFIG_HOME/jpkica-counter.json, or
// ~/.config/jpkica-counter.json; "" without either variable.
func defaultConfigPath(getenv func(string) string) string {
	if dir := getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, configName)
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".config", configName)
	}
	return ""
}

// loadConfig reads the file that COUNTER_CONFIG names, which must exist,
// or else the default file, if there is one. The file is one JSON object
// of strings whose keys are configKeys; relative paths in it are taken
// from its folder. A PIN is refused: PINs come from the environment.
func loadConfig(getenv func(string) string) (config, error) {
	path, name := getenv(configEnv), configEnv
	if path == "" {
		path = defaultConfigPath(getenv)
		name = path
	}
	cfg := config{path: path, values: map[string]string{}}
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && name != configEnv {
		return cfg, nil
	}
	if err != nil {
		return cfg, &settingError{name, fmt.Errorf("%w: correct or unset %s", err, configEnv)}
	}
	var raw map[string]any
	if err := wire.Decode(b, &raw); err != nil {
		return cfg, &settingError{name, fmt.Errorf("config file %s: %w", path, err)}
	}
	var errs problems
	for k, v := range raw {
		s, ok := v.(string)
		switch {
		case strings.Contains(strings.ToLower(k), "pin"):
			errs = append(errs, &settingError{name, fmt.Errorf("config file %s: key %q: a PIN never goes in a file; "+
				"remove it, the PINs come from the environment (counter help)", path, k)})
		case !slices.Contains(configKeys, k):
			errs = append(errs, &settingError{name, fmt.Errorf("config file %s: unknown key %q: the keys are %s",
				path, k, strings.Join(configKeys, ", "))})
		case !ok:
			errs = append(errs, &settingError{name, fmt.Errorf("config file %s: key %q: want a string", path, k)})
		default:
			cfg.values[k] = fromFolder(filepath.Dir(path), k, s)
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return cfg, errs.err()
}

// fromFolder takes a relative file path of the config file (cert, key,
// ca, and a module given as a path) from the file's folder dir. A module
// named without a slash is left to the system's library search.
func fromFolder(dir, key, v string) string {
	switch {
	case v == "" || filepath.IsAbs(v):
		return v
	case key == "cert" || key == "key" || key == "ca" || (key == "module" && strings.ContainsRune(v, '/')):
		return filepath.Join(dir, v)
	}
	return v
}

// settings are a command's flags, those the command line left unset taken
// from the config file.
type settings struct {
	fs       *flag.FlagSet
	config   config
	fromFile map[string]bool
}

// parseSettings parses a command's flags into fs (parseFlags) and fills
// the unset flags from the config file: a flag on the command line
// overrides the file.
func parseSettings(fs *flag.FlagSet, args []string, getenv func(string) string) (*settings, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, err
	}
	s := &settings{fs: fs, config: cfg, fromFile: map[string]bool{}}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for k, v := range cfg.values {
		if given[k] || v == "" || fs.Lookup(k) == nil {
			continue
		}
		if err := fs.Set(k, v); err != nil {
			return nil, &settingError{"--" + k, fmt.Errorf("%q in %s: %w", k, cfg.path, err)}
		}
		s.fromFile[k] = true
	}
	return s, nil
}

// get is the value of the flag name.
func (s *settings) get(name string) string { return s.fs.Lookup(name).Value.String() }

// wrong is the error of a flag whose value is wrong; it says where the
// value came from when the config file gave it.
func (s *settings) wrong(name, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if s.fromFile[name] {
		msg += fmt.Sprintf(" (set by %q in %s)", name, s.config.path)
	}
	return &settingError{"--" + name, errors.New(msg)}
}

// unset is the error of a flag the command needs and lacks: what it
// names, and where it can be given.
func (s *settings) unset(name, what string) error {
	where := "give " + what + " with --" + name
	if slices.Contains(configKeys, name) {
		file := s.config.path
		if file == "" {
			file = "the file " + configEnv + " names"
		}
		where += fmt.Sprintf(", or set %q in %s", name, file)
	}
	return &settingError{"--" + name, errors.New("not set: " + where)}
}
