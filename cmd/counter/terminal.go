package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/counter"
)

// defaultAPI is the API's address when neither --api nor the config file
// names one.
const defaultAPI = "https://127.0.0.1:8443"

// apiFlagSet is the flag set of a command that calls the API, every
// command but fee: the flags that reach the API, and --json.
func apiFlagSet(cmd string) (*flag.FlagSet, *bool) {
	fs := newFlagSet(cmd)
	fs.String("api", defaultAPI, "API base URL")
	fs.String("cert", "", "this terminal's certificate (PEM), as jpkica clients issue wrote it")
	fs.String("key", "", "this terminal's private key (PEM)")
	fs.String("ca", "", "the CA that certifies the API's server certificate (PEM)")
	return fs, fs.Bool("json", false, "print the API's full answer as JSON")
}

// addCardFlags adds the flags that reach the card: issue and renew take
// them.
func addCardFlags(fs *flag.FlagSet) {
	fs.String("module", "", "the card reader's PKCS#11 module (a path, or a library name)")
	fs.String("sig-token", "", "token label of the card's signature area")
	fs.String("auth-token", "", "token label of the card's user-authentication area")
}

// terminal is this counter terminal as its connection settings describe
// it: the API client and the terminal's certificate.
type terminal struct {
	client *counter.Client
	cert   *x509.Certificate
}

// terminal checks the connection settings, reads the terminal's files and
// makes the API client; it does not connect. now is the terminal's clock,
// against which its certificate's expiry is checked.
func (s *settings) terminal(now time.Time) (terminal, problems) {
	var errs problems
	api := s.get("api")
	if u, err := url.Parse(api); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, s.wrong("api", "%q is not the API's address: write https://host:port", api))
	}
	certPEM, cert, err := s.readCertificate("cert", "this terminal's certificate (PEM)")
	if err != nil {
		errs = append(errs, err)
	}
	var keyPEM []byte
	if s.get("key") == "" {
		errs = append(errs, s.unset("key", "this terminal's private key (PEM)"))
	} else if keyPEM, err = os.ReadFile(s.get("key")); err != nil {
		errs = append(errs, s.wrong("key", "%v: name this terminal's private key (PEM)", err))
	}
	var pair tls.Certificate
	if cert != nil && keyPEM != nil {
		if pair, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
			errs = append(errs, s.wrong("key", "not the private key of the certificate that --cert names: %v", err))
		}
	}
	if cert != nil && now.After(cert.NotAfter) {
		errs = append(errs, s.wrong("cert", "this terminal's certificate expired on %s: ask the PKI administrators for a new one",
			cert.NotAfter.Format(time.RFC3339)))
	}
	roots := x509.NewCertPool()
	if _, serverCA, err := s.readCertificate("ca", "the CA that certifies the API's server certificate (PEM)"); err != nil {
		errs = append(errs, err)
	} else {
		roots.AddCert(serverCA)
	}
	if len(errs) > 0 {
		return terminal{}, errs
	}
	c, err := counter.NewClient(counter.ClientConfig{BaseURL: api, Certificate: pair, ServerCAs: roots})
	if err != nil {
		return terminal{}, problems{s.wrong("api", "%v", err)}
	}
	return terminal{client: c, cert: cert}, nil
}

// readCertificate reads the PEM certificate that the flag name names.
func (s *settings) readCertificate(name, what string) ([]byte, *x509.Certificate, error) {
	path := s.get(name)
	if path == "" {
		return nil, nil, s.unset(name, what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, s.wrong(name, "%v: name %s", err, what)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, s.wrong(name, "%s holds no PEM certificate: name %s", path, what)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, s.wrong(name, "%s: %v", path, err)
	}
	return b, cert, nil
}

// reach names the setting that an error of a call to the API points at,
// with what to do: --api when no answer came, --ca for a server
// certificate it does not certify, --cert for a terminal that the API
// refuses, and the visit's flag that a refusal points at (refusedFlags).
// Other errors are returned as they are.
func (s *settings) reach(err error) error {
	var (
		host   x509.HostnameError
		verify *tls.CertificateVerificationError
		alert  tls.AlertError
		ae     *counter.APIError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &host):
		return &reachError{"--api", fmt.Errorf("%w: the API's server certificate is not for this address", err)}
	case errors.As(err, &verify):
		return &reachError{"--ca", fmt.Errorf("%w: the API's server certificate is not certified by %s: name the CA that certifies it", err, s.get("ca"))}
	case errors.As(err, &alert):
		return &reachError{"--cert", fmt.Errorf("%w: the API refused this terminal's certificate: check --cert and --key", err)}
	case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Code == wire.CodeRoleForbidden):
		return &reachError{"--cert", fmt.Errorf("%w: the API refused this terminal's certificate: ask the PKI administrators", err)}
	case errors.Is(err, counter.ErrNoAnswer):
		return &reachError{"--api", fmt.Errorf("%w: check the address %s and the network", err, s.get("api"))}
	case errors.As(err, &ae) && refusedFlags[ae.Code] != "":
		return &reachError{refusedFlags[ae.Code], err}
	}
	return err
}

// refusedFlags are the flags that the API's refusals of a visit point at,
// by error code.
var refusedFlags = map[string]string{
	wire.CodeCardExpiryMismatch:  "--card-expires",
	wire.CodeCardInUse:           "--card-id",
	wire.CodeProxyAnswerUsed:     "--proxy-app",
	wire.CodeInvalidFacts:        "--resident",
	wire.CodeInvalidMunicipality: "--resident",
	wire.CodeWrongMunicipality:   "--resident",
}

// municipality is the municipality of a counter terminal's certificate
// (its OrganizationalUnit), or "" for another role, which may act for any.
func (t terminal) municipality() string {
	if sub := t.cert.Subject; len(sub.Organization) == 1 && sub.Organization[0] == "counter" && len(sub.OrganizationalUnit) == 1 {
		return sub.OrganizationalUnit[0]
	}
	return ""
}

// checkMunicipality refuses a municipality that is not the terminal's:
// a counter acts only for the residents of its own municipality. flag is
// the flag that gave it.
func (s *settings) checkMunicipality(t terminal, flag, code string) error {
	if own := t.municipality(); own != "" && code != own {
		return s.wrong(flag, "municipality %s: this terminal (--cert) is a counter of %s, which acts only for its own residents", code, own)
	}
	return nil
}

// warnExpiry tells the clerk, on stderr, that the terminal's certificate
// expires soon, if the API said so in this command's calls.
func (t terminal) warnExpiry(stderr io.Writer) {
	if t.client == nil {
		return
	}
	if at, soon := t.client.TerminalExpires(); soon {
		fmt.Fprintf(stderr, "counter: this terminal's certificate expires on %s: ask the PKI administrators for a new one before then\n",
			at.Format(time.RFC3339))
	}
}

// cardConfig checks the card settings; it does not open the card.
func (s *settings) cardConfig() (counter.CardConfig, problems) {
	cfg := counter.CardConfig{Module: s.get("module"), SignatureToken: s.get("sig-token"), AuthenticationToken: s.get("auth-token")}
	var errs problems
	switch {
	case cfg.Module == "":
		errs = append(errs, s.unset("module", "the card reader's PKCS#11 module"))
	case strings.ContainsRune(cfg.Module, '/'):
		if st, err := os.Stat(cfg.Module); err != nil {
			errs = append(errs, s.wrong("module", "%v: install the card reader's PKCS#11 module, or correct the path", err))
		} else if st.IsDir() {
			errs = append(errs, s.wrong("module", "%s is a folder, not a PKCS#11 module", cfg.Module))
		}
	}
	if cfg.SignatureToken == "" {
		errs = append(errs, s.unset("sig-token", "the token label of the card's signature area"))
	}
	if cfg.AuthenticationToken == "" {
		errs = append(errs, s.unset("auth-token", "the token label of the card's user-authentication area"))
	}
	if cfg.SignatureToken != "" && cfg.SignatureToken == cfg.AuthenticationToken {
		errs = append(errs, s.wrong("auth-token", "%q is --sig-token's label too: the card's two areas are two tokens, each with its own label",
			cfg.AuthenticationToken))
	}
	return cfg, errs
}

// cardTypes reads --types: signature, authentication or both, each once,
// comma-separated.
func (s *settings) cardTypes() ([]ca.CertType, error) {
	var ts []ca.CertType
	for _, f := range strings.Split(s.get("types"), ",") {
		t, err := ca.ParseCertType(strings.TrimSpace(f))
		if err != nil || t != ca.Signature && t != ca.Authentication {
			return nil, s.wrong("types", "%q is no certificate of a card: write signature, authentication or both, comma-separated", f)
		}
		for _, seen := range ts {
			if seen == t {
				return nil, s.wrong("types", "%v is named twice", t)
			}
		}
		ts = append(ts, t)
	}
	return ts, nil
}
