package main

import (
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/internal/config"
)

//go:embed cps.html
var cpsHTML string

var cpsTemplate = template.Must(template.New("cps").Parse(cpsHTML))

// cpsPage is the certification practice statement the certificates' policy
// qualifiers name (urls.cps_signature, urls.cps_authentication), as this
// CA's configuration has it: the policies, the certificates' lifetimes,
// the revocation reasons and where status is published.
type cpsPage struct {
	paths []string // the URL paths it is served at
	body  []byte
}

// newCPSPage renders the page for cfg. It is served at the paths of the CPS
// URLs, on the status listener: a deployment whose CPS URLs name another
// host publishes the page there, and this copy is what the daemon knows.
func newCPSPage(cfg *config.Config) (*cpsPage, error) {
	var b strings.Builder
	if err := cpsTemplate.Execute(&b, struct {
		SignaturePolicy, AuthenticationPolicy string
		RenewalWindowMonths                   int
		OCSP, CRLBase                         string
		Reasons                               []cpsReason
	}{
		SignaturePolicy: ca.OIDPolicySignature.String(), AuthenticationPolicy: ca.OIDPolicyAuthentication.String(),
		RenewalWindowMonths: cfg.Issuance.RenewalWindowMonths, OCSP: cfg.URLs.OCSP, CRLBase: cfg.URLs.CRLBase,
		Reasons: cpsReasons,
	}); err != nil {
		return nil, fmt.Errorf("rendering the CPS page: %w", err)
	}
	p := &cpsPage{body: []byte(b.String())}
	for _, raw := range []string{cfg.URLs.CPSSignature, cfg.URLs.CPSAuthentication} {
		u, err := url.Parse(raw)
		if err != nil || u.Path == "" || u.Path == "/" {
			continue
		}
		if !slices.Contains(p.paths, u.Path) {
			p.paths = append(p.paths, u.Path)
		}
	}
	return p, nil
}

func (p *cpsPage) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Write(p.body)
}

// cpsReason is a lifecycle event and what it does (DOMAIN.md).
type cpsReason struct {
	Event, Signature, Authentication string
	Reason                           ca.Reason
}

var cpsReasons = []cpsReason{
	{"card lost (the 24-hour line)", "on hold", "on hold", ca.CertificateHold},
	{"one of the 4 facts changes (name, date of birth, sex, address)", "revoked", "kept", ca.AffiliationChanged},
	{"renewal or re-issue", "revoked", "revoked", ca.Superseded},
	{"death, removal from the register, card returned or expired", "revoked", "revoked", ca.CessationOfOperation},
	{"key compromise reported", "revoked", "revoked", ca.KeyCompromise},
	{"certificate discarded before delivery", "revoked", "revoked", ca.Unspecified},
	{"CA key compromise", "revoked", "revoked", ca.CACompromise},
}
