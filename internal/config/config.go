// Package config reads jpkica's YAML configuration and validates it once.
//
// A value has one source. Where a package's constructor defaults a value
// (crl.DefaultInterval, ocsp.DefaultValidity, hsm.DefaultMaxSessions, ...),
// the configuration starts from that constant, and a key the files leave
// out keeps it; defaults.yaml holds only what no package defaults (where
// files and keys live, the listeners, the URLs, the issuance lifetimes,
// delta CRLs, the municipalities). Either way the Config that Load returns
// holds every value as it is used, so validation sees what the daemon runs
// with.
//
// The YAML never holds a secret: the HSM PIN is named by a file path or an
// environment variable (pin_file, pin_env) and read by Load's caller through
// PIN, so that it never sits in a config file, a log or an error.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/crl"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/internal/netacl"
	"github.com/jpkica/jpkica/ocsp"
)

// ErrInvalid reports a configuration that cannot be used.
var ErrInvalid = errors.New("invalid configuration")

// Config is a validated configuration. Treat it as read-only after Load.
type Config struct {
	DataDir        string                  `yaml:"data_dir"`
	Store          Store                   `yaml:"store"`
	Keys           Keys                    `yaml:"keys"`
	Listen         Listen                  `yaml:"listen"`
	URLs           URLs                    `yaml:"urls"`
	Issuance       Issuance                `yaml:"issuance"`
	Profile        Profile                 `yaml:"profile"`
	CRL            CRL                     `yaml:"crl"`
	OCSP           OCSP                    `yaml:"ocsp"`
	Municipalities map[string]Municipality `yaml:"municipalities"`

	embedded      bool
	statusClients netacl.List // Listen.StatusClients, parsed
}

// Store names the system of record.
type Store struct {
	// DSN is "sqlite:PATH" or "postgres://...".
	DSN string `yaml:"dsn"`
	// The PostgreSQL connection pool (store.Options): at most MaxOpenConns
	// open, MaxIdleConns kept when idle, each closed after ConnMaxLifetime
	// or ConnMaxIdleTime idle.
	MaxOpenConns    int           `yaml:"max_open_conns"`
	MaxIdleConns    int           `yaml:"max_idle_conns"`
	ConnMaxLifetime time.Duration `yaml:"conn_max_lifetime"`
	ConnMaxIdleTime time.Duration `yaml:"conn_max_idle_time"`
	// MaxLag is the replication lag past which a node reading a hot
	// standby answers /readyz with 503.
	MaxLag time.Duration `yaml:"max_lag"`
}

// Keys names the key store.
type Keys struct {
	// Backend is "software" (development only) or "pkcs11".
	Backend     string `yaml:"backend"`
	SoftwareDir string `yaml:"software_dir"`
	PKCS11      PKCS11 `yaml:"pkcs11"`
}

// PKCS11 configures an HSM token.
type PKCS11 struct {
	Module         string        `yaml:"module"`
	TokenLabel     string        `yaml:"token_label"`
	PINFile        string        `yaml:"pin_file"`
	PINEnv         string        `yaml:"pin_env"`
	MaxSessions    int           `yaml:"max_sessions"`
	AcquireTimeout time.Duration `yaml:"acquire_timeout"`
}

// Listen holds the listener addresses.
type Listen struct {
	API    string `yaml:"api"`    // the /v1 API over mutual TLS
	Status string `yaml:"status"` // OCSP, CRLs, health and metrics over plain HTTP
	// StatusStack is the HTTP server of the status listener: "fasthttp"
	// (OCSP answered by the fasthttp responder, the other paths through an
	// adaptor for their net/http handlers) or "nethttp" (net/http alone,
	// the stack before fasthttp became the default).
	StatusStack string `yaml:"status_stack"`
	// OCSP, when set, is a listener of its own for OCSP only, served by the
	// fasthttp responder; OCSP stays on the status listener too.
	OCSP string `yaml:"ocsp"`
	// APINames are the DNS names and IP addresses counters reach the API
	// by: the API server certificate names them, besides 127.0.0.1,
	// localhost and the host of API.
	APINames []string `yaml:"api_names"`
	// StatusClients are the networks (CIDR, or single addresses) allowed
	// OCSP responses and CRLs on the status and OCSP listeners: the
	// registered verifiers'. Empty: everyone.
	StatusClients []string `yaml:"status_clients"`
}

// The values of listen.status_stack.
const (
	StackFastHTTP = "fasthttp"
	StackNetHTTP  = "nethttp"
)

// StatusClients is Listen.StatusClients, parsed once by validate.
func (c *Config) StatusClients() netacl.List { return c.statusClients }

// URLs are the public addresses written into certificates.
type URLs struct {
	OCSP              string `yaml:"ocsp"`
	CRLBase           string `yaml:"crl_base"`
	CPSSignature      string `yaml:"cps_signature"`
	CPSAuthentication string `yaml:"cps_authentication"`
}

// Issuance holds the tunable issuance rules.
type Issuance struct {
	RenewalWindowMonths int `yaml:"renewal_window_months"`
	// SignatureExtKeyUsage lists extKeyUsage OIDs for the signature
	// certificate; JPKI's own choice is unconfirmed, so the default is none.
	SignatureExtKeyUsage []string `yaml:"signature_ext_key_usage"`
	// IssuerValidityYears is the lifetime of a new issuer generation.
	IssuerValidityYears int `yaml:"issuer_validity_years"`
	// ResponderValidity is the lifetime of a delegated OCSP responder certificate.
	ResponderValidity time.Duration `yaml:"responder_validity"`
	// ResponderRenewBefore is how long before its expiry the ca role
	// renews a delegated OCSP responder.
	ResponderRenewBefore time.Duration `yaml:"responder_renew_before"`
	// ResponderKey is the delegated OCSP responder key algorithm:
	// "rsa2048" as JPKI, or "ecdsa-p256", far cheaper to sign.
	ResponderKey string `yaml:"responder_key"`
	// ClientValidity is the lifetime of a terminal client certificate.
	ClientValidity time.Duration `yaml:"client_validity"`
}

// Profile chooses the form of three extensions of the card certificates.
// Each is true in the embedded defaults: the form of the real J-LIS
// certificate. False sets it back to the shorter form jpkica wrote before.
type Profile struct {
	// IssuerAltName writes J-LIS's Japanese directory name of the issuer
	// as issuerAltName (O=公的個人認証サービス, ...).
	IssuerAltName bool `yaml:"issuer_alt_name"`
	// CRLDirectoryName names the CRL distribution point by J-LIS's
	// directory name of the municipality's partition (..., OU=CRL
	// Distribution Points, OU=<prefecture>, CN=<municipality> CRLDP) as
	// well as by its HTTP URL.
	CRLDirectoryName bool `yaml:"crl_directory_name"`
	// AKIIssuerSerial writes the issuer certificate's name and serial into
	// the authorityKeyIdentifier, beside its key identifier.
	AKIIssuerSerial bool `yaml:"aki_issuer_serial"`
}

// CRL is the CRL schedule and publication.
type CRL struct {
	// Dir is where CRLs are published (under data_dir unless absolute).
	Dir string `yaml:"dir"`
	// Interval between complete CRLs; nextUpdate is thisUpdate + Interval +
	// Overlap.
	Interval time.Duration `yaml:"interval"`
	Overlap  time.Duration `yaml:"overlap"`
	// DeltaInterval between delta CRLs (0: no deltas, no freshestCRL), and
	// DeltaDelay, how soon deltas follow a revocation.
	DeltaInterval time.Duration `yaml:"delta_interval"`
	DeltaDelay    time.Duration `yaml:"delta_delay"`
	// KeepExpired keeps expired certificates on the CRL, with the
	// expiredCertsOnCRL extension.
	KeepExpired bool `yaml:"keep_expired"`
}

// OCSP is the responder's configuration.
type OCSP struct {
	// Validity is nextUpdate - thisUpdate of a response; responses are
	// re-signed between half and three quarters of it.
	Validity time.Duration `yaml:"validity"`
	// MaxAge caps the Cache-Control max-age of a response.
	MaxAge time.Duration `yaml:"max_age"`
	// Nonce is "ignore" (cacheable responses, the default) or "echo" (a
	// freshly signed response carrying the request's nonce, RFC 8954).
	Nonce string `yaml:"nonce"`
	// Workers is how many pre-signings run at once (0: one per CPU).
	Workers int `yaml:"workers"`
}

// Municipality names a local government in the romaji that the signature
// certificate's subject and the CRL directory name carry.
type Municipality struct {
	Prefecture string `yaml:"prefecture"`
	Name       string `yaml:"name"`
}

//go:embed defaults.yaml
var defaultsYAML []byte

// Default is the embedded development configuration: SQLite and a software
// key store under ./jpkica-data, listening on 127.0.0.1.
func Default() (*Config, error) {
	c, err := parse(defaultsYAML)
	if err != nil {
		return nil, fmt.Errorf("embedded defaults: %w", err)
	}
	c.embedded = true
	return c, nil
}

// Load reads a YAML file over the embedded defaults and validates the result.
// Unknown keys are an error.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := parse(defaultsYAML, b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Embedded reports whether c is the embedded development default.
func (c *Config) Embedded() bool { return c.embedded }

// packageDefaults is the configuration before any YAML: the values whose
// default belongs to the package that uses them, by that package's name for
// it. The documents are decoded over it, so a key they leave out keeps the
// package's default, and a key they give, zero included, is validated as
// given.
func packageDefaults() Config {
	return Config{
		Keys:     Keys{PKCS11: PKCS11{MaxSessions: hsm.DefaultMaxSessions, AcquireTimeout: hsm.DefaultAcquireTimeout}},
		Issuance: Issuance{RenewalWindowMonths: ca.DefaultRenewalWindowMonths},
		CRL:      CRL{Interval: crl.DefaultInterval, Overlap: crl.DefaultOverlap, DeltaDelay: crl.DefaultDeltaDelay},
		OCSP:     OCSP{Validity: ocsp.DefaultValidity, MaxAge: ocsp.DefaultMaxAge},
	}
}

// parse decodes docs in order over packageDefaults, each over the ones
// before it, and validates the result. A later document that lists
// municipalities replaces the earlier list rather than adding to it (YAML
// decoding merges maps): a deployment serves the municipalities its own
// file names, not those of the embedded defaults too.
func parse(docs ...[]byte) (*Config, error) {
	c := packageDefaults()
	for _, doc := range docs {
		var top map[string]yaml.Node
		if err := yaml.Unmarshal(doc, &top); err == nil {
			if _, ok := top["municipalities"]; ok {
				c.Municipalities = nil
			}
		}
		dec := yaml.NewDecoder(bytes.NewReader(doc))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, errEOF) {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, yamlProblems(err))
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

var (
	errEOF           = io.EOF
	municipalityCode = regexp.MustCompile(`^[0-9]{6}$`)
	dnsName          = regexp.MustCompile(`^(?i)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...))
	}
	if c.DataDir == "" {
		bad("data_dir is empty")
	}
	switch {
	case strings.HasPrefix(c.Store.DSN, "sqlite:"), strings.HasPrefix(c.Store.DSN, "postgres://"), strings.HasPrefix(c.Store.DSN, "postgresql://"):
	default:
		bad("store.dsn must start with sqlite: or postgres://")
	}
	if st := c.Store; st.MaxOpenConns < 1 || st.MaxIdleConns < 1 || st.MaxIdleConns > st.MaxOpenConns ||
		st.ConnMaxLifetime < time.Minute || st.ConnMaxIdleTime < time.Minute || st.MaxLag <= 0 {
		bad("store needs max_open_conns and max_idle_conns of at least 1 (idle no more than open), " +
			"conn_max_lifetime and conn_max_idle_time of at least 1m, and a positive max_lag")
	}
	switch c.Keys.Backend {
	case "software":
		if c.Keys.SoftwareDir == "" {
			bad("keys.software_dir is empty")
		}
	case "pkcs11":
		p := c.Keys.PKCS11
		if p.Module == "" || p.TokenLabel == "" {
			bad("keys.pkcs11 needs module and token_label")
		}
		if (p.PINFile == "") == (p.PINEnv == "") {
			bad("keys.pkcs11 needs exactly one of pin_file and pin_env")
		}
		if p.MaxSessions < 1 {
			bad("keys.pkcs11.max_sessions must be at least 1")
		}
	default:
		bad("keys.backend must be software or pkcs11, not %q", c.Keys.Backend)
	}
	for _, n := range c.Listen.APINames {
		if net.ParseIP(n) == nil && !dnsName.MatchString(n) {
			bad("listen.api_names: %q is neither an IP address nor a DNS name", n)
		}
	}
	var err error
	if c.statusClients, err = netacl.Parse(c.Listen.StatusClients); err != nil {
		bad("listen.status_clients: %v", err)
	}
	if c.Listen.StatusStack != StackFastHTTP && c.Listen.StatusStack != StackNetHTTP {
		bad("listen.status_stack must be %s or %s, not %q", StackFastHTTP, StackNetHTTP, c.Listen.StatusStack)
	}
	if c.Listen.OCSP != "" {
		if _, _, err := net.SplitHostPort(c.Listen.OCSP); err != nil {
			bad("listen.ocsp %q: %v", c.Listen.OCSP, err)
		}
	}
	if c.OCSP.Validity < time.Hour || c.OCSP.MaxAge < 0 || c.OCSP.MaxAge > c.OCSP.Validity || c.OCSP.Workers < 0 {
		bad("ocsp needs a validity of at least 1h and a max_age within it")
	}
	if c.OCSP.Nonce != "ignore" && c.OCSP.Nonce != "echo" {
		bad("ocsp.nonce must be ignore or echo, not %q", c.OCSP.Nonce)
	}
	for name, addr := range map[string]string{"listen.api": c.Listen.API, "listen.status": c.Listen.Status} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s %q: %v", name, addr, err)
		}
	}
	for name, u := range map[string]string{"urls.ocsp": c.URLs.OCSP, "urls.crl_base": c.URLs.CRLBase, "urls.cps_signature": c.URLs.CPSSignature, "urls.cps_authentication": c.URLs.CPSAuthentication} {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad("%s %q is not an http(s) URL", name, u)
		}
	}
	if w := c.Issuance.RenewalWindowMonths; w < 1 || w > 12 {
		bad("issuance.renewal_window_months %d out of 1..12", w)
	}
	if c.Issuance.IssuerValidityYears < 1 {
		bad("issuance.issuer_validity_years must be positive")
	}
	if c.Issuance.ResponderValidity < time.Hour {
		bad("issuance.responder_validity must be at least 1h")
	}
	// At most half the validity: a responder lives at least that long before
	// it is renewed, so renewals (each a new key in the HSM) stay rare.
	if r := c.Issuance.ResponderRenewBefore; r > c.Issuance.ResponderValidity/2 || r < 2*c.OCSP.Validity {
		bad("issuance.responder_renew_before (%v) must be at most half of responder_validity (%v) and at least twice ocsp.validity (%v)",
			r, c.Issuance.ResponderValidity, c.OCSP.Validity)
	}
	if c.Issuance.ResponderKey != "rsa2048" && c.Issuance.ResponderKey != "ecdsa-p256" {
		bad("issuance.responder_key must be rsa2048 or ecdsa-p256, not %q", c.Issuance.ResponderKey)
	}
	if c.Issuance.ClientValidity < time.Hour {
		bad("issuance.client_validity must be at least 1h")
	}
	if c.CRL.Dir == "" || c.CRL.Interval < time.Minute || c.CRL.Overlap < 0 || c.CRL.DeltaInterval < 0 || c.CRL.DeltaDelay < 0 {
		bad("crl needs a dir, an interval of at least 1m, and no negative durations")
	}
	if c.CRL.DeltaInterval > 0 && c.CRL.DeltaInterval >= c.CRL.Interval {
		bad("crl.delta_interval must be shorter than crl.interval")
	}
	for code, m := range c.Municipalities {
		if !municipalityCode.MatchString(code) {
			bad("municipality code %q is not six digits", code)
		}
		if m.Prefecture == "" || m.Name == "" {
			bad("municipality %s needs prefecture and name", code)
		}
	}
	return errors.Join(errs...)
}

// PIN reads the HSM user PIN from the file or environment variable the
// configuration names. A PIN file that group or others may read or write
// (any of mode 0077) is refused with ErrInvalid, and the error says how to
// fix it. The error never contains the PIN.
func (c *Config) PIN() (string, error) {
	p := c.Keys.PKCS11
	switch {
	case p.PINFile != "":
		b, err := readPrivateFile(p.PINFile)
		if err != nil {
			return "", err
		}
		pin := strings.TrimRight(string(b), "\r\n")
		if pin == "" {
			return "", fmt.Errorf("%w: HSM PIN file %s is empty", ErrInvalid, p.PINFile)
		}
		return pin, nil
	case p.PINEnv != "":
		pin, ok := os.LookupEnv(p.PINEnv)
		if !ok || pin == "" {
			return "", fmt.Errorf("%w: environment variable %s (HSM PIN) is not set", ErrInvalid, p.PINEnv)
		}
		return pin, nil
	}
	return "", fmt.Errorf("%w: no HSM PIN source configured", ErrInvalid)
}

// readPrivateFile reads the PIN file at path, after checking on the open
// file that only its owner has access to it.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading HSM PIN file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading HSM PIN file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: keys.pkcs11.pin_file %s is open to group or others (mode %04o): chmod 600 %s",
			ErrInvalid, path, perm, path)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading HSM PIN file: %w", err)
	}
	return b, nil
}

// Path resolves p relative to the data directory.
func (c *Config) Path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.DataDir, p)
}
