package ocsp

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"
)

// SetResponder makes cert, whose key is signer, the delegated responder
// that signs the issuer's responses from now on: a responder certificate
// renewed before the current one expires (RFC 6960 4.2.2.2). The responses
// the replaced responder signed are served as they are, each with the
// certificate that signed it, until they are re-signed on their usual
// schedule (at half to three quarters of ocsp validity), so the replaced
// responder must stay valid that long. Setting the current responder again
// changes nothing. It is safe to call while the Presigner runs.
func (p *Presigner) SetResponder(issuerID string, cert *x509.Certificate, signer crypto.Signer) error {
	a := p.byID[issuerID]
	if a == nil {
		return fmt.Errorf("%w: no issuer %q", ErrInvalid, issuerID)
	}
	if cert == nil || signer == nil {
		return fmt.Errorf("%w: issuer %s: a responder needs a certificate and a signer", ErrInvalid, issuerID)
	}
	k, err := newResponderKey(issuerID, a.cert, cert, signer)
	if err != nil {
		return err
	}
	p.keysMu.Lock()
	defer p.keysMu.Unlock()
	old := *a.keys.Load()
	keys := []*responderKey{k}
	for _, o := range old {
		if bytes.Equal(o.responder, k.responder) {
			if o == old[0] {
				return nil // the current one
			}
			continue // an earlier one, back: the new entry replaces it
		}
		keys = append(keys, o)
	}
	a.keys.Store(&keys)
	p.log.Info("ocsp: new delegated responder", "issuer", issuerID, "responder", k.desc,
		"not_after", k.notAfter.UTC().Format(time.RFC3339), "replaced", old[0].desc)
	return nil
}

// pruneKeys drops the replaced responder keys of a that have expired and
// have no signatures left to write to the audit log: no response they
// signed is served any more.
func (p *Presigner) pruneKeys(a *authority, now time.Time) {
	p.keysMu.Lock()
	defer p.keysMu.Unlock()
	old := *a.keys.Load()
	keys := old[:1:1]
	for _, k := range old[1:] {
		if k.notAfter.After(now) || k.signed.Load() != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) != len(old) {
		a.keys.Store(&keys)
	}
}

// ResponderNotAfter is when the certificate of the responder that signs
// the issuer's responses expires (the issuer's own, if it signs them).
func (p *Presigner) ResponderNotAfter(issuerID string) (time.Time, bool) {
	a := p.byID[issuerID]
	if a == nil {
		return time.Time{}, false
	}
	return a.key().notAfter, true
}
