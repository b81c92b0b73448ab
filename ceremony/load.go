package ceremony

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
	"github.com/jpkica/jpkica/store"
)

// ResponderKey is a delegated OCSP responder with its certificate and signer.
type ResponderKey struct {
	Responder store.Responder
	Cert      *x509.Certificate
	Signer    crypto.Signer
}

// Keyring is every issuer generation, responder and the client CA, with their
// signers, as loaded at start.
type Keyring struct {
	// Issuers holds every card issuer generation, oldest first.
	Issuers []ca.IssuerKey
	// Current holds the newest generation of each card type: the ones that
	// issue new certificates.
	Current []ca.IssuerKey
	// Responders holds the newest responder of each issuer, by issuer ID.
	Responders map[string]ResponderKey
	// Replaced holds the certificates of each issuer's older responders,
	// newest first, by issuer ID: responses they signed may still be
	// stored, and valid while they are.
	Replaced map[string][]*x509.Certificate
	ClientCA ca.IssuerKey
}

// Load finds the signers of every issuer, responder and the client CA
// recorded in the store. A store without issuers wraps ca.ErrNotFound.
func Load(ctx context.Context, st *store.Store, keys hsm.KeyStore) (*Keyring, error) {
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing issuers: %w", err)
	}
	kr := &Keyring{Responders: map[string]ResponderKey{}, Replaced: map[string][]*x509.Certificate{}}
	current := map[ca.CertType]ca.IssuerKey{}
	for _, is := range issuers {
		cert, key, err := loadIssuerKey(ctx, keys, is)
		if err != nil {
			return nil, err
		}
		ik := ca.IssuerKey{Issuer: is, Cert: cert, Signer: key}
		if is.Type == ca.Terminal {
			if kr.ClientCA.Signer == nil || is.Generation > kr.ClientCA.Issuer.Generation {
				kr.ClientCA = ik
			}
			continue
		}
		kr.Issuers = append(kr.Issuers, ik)
		if cur, ok := current[is.Type]; !ok || is.Generation > cur.Issuer.Generation {
			current[is.Type] = ik
		}
	}
	for _, t := range cardTypes {
		if ik, ok := current[t]; ok {
			kr.Current = append(kr.Current, ik)
		}
	}
	if len(kr.Current) != len(cardTypes) || kr.ClientCA.Signer == nil {
		return nil, fmt.Errorf("%w: the store lacks issuers or the client CA: run `jpkica init`", ca.ErrNotFound)
	}
	responders, err := st.Responders(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing responders: %w", err)
	}
	for _, r := range responders { // newest first
		cert, err := x509.ParseCertificate(r.CertDER)
		if err != nil {
			return nil, fmt.Errorf("responder %s certificate: %w", r.ID, err)
		}
		if _, seen := kr.Responders[r.IssuerID]; seen {
			kr.Replaced[r.IssuerID] = append(kr.Replaced[r.IssuerID], cert)
			continue
		}
		key, err := keys.Signer(ctx, r.KeyRef)
		if err != nil {
			return nil, fmt.Errorf("responder %s key: %w", r.ID, err)
		}
		if !samePublicKey(cert.PublicKey, key.Public()) {
			return nil, fmt.Errorf("%w: responder %s: key does not match its certificate", ca.ErrInvalid, r.ID)
		}
		kr.Responders[r.IssuerID] = ResponderKey{Responder: r, Cert: cert, Signer: key}
	}
	return kr, nil
}
