package ceremony

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/lint"
)

// ClientRequest enrols a counter terminal or an operator.
type ClientRequest struct {
	Role         string // counter, register, lossline, admin
	Municipality string // six digits; required for a counter
	Name         string // the terminal's name, the subject CN
	Validity     time.Duration
	Actor        string
}

// Client is an enrolled terminal's certificate and key, PEM-encoded, and the
// client CA that clients use to recognise each other.
type Client struct {
	Serial   ca.Serial
	CertPEM  []byte
	KeyPEM   []byte
	ChainPEM []byte
}

// certInserter is the one store call IssueClient needs.
type certInserter interface {
	InsertCertificate(ctx context.Context, in ca.Issuance) ([]ca.Serial, error)
}

// IssueClient makes a terminal key pair (ECDSA P-256), signs its certificate
// with the client CA and records it (type terminal) so it can be revoked. The
// key is handed to the terminal; the CA keeps no copy.
func IssueClient(ctx context.Context, st certInserter, kr *Keyring, req ClientRequest, now time.Time, rand io.Reader) (Client, error) {
	if req.Validity <= 0 {
		return Client{}, fmt.Errorf("%w: client certificate validity must be positive", ca.ErrInvalid)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return Client{}, fmt.Errorf("terminal key: %w", err)
	}
	serial, err := ca.NewSerial(rand)
	if err != nil {
		return Client{}, err
	}
	now = now.UTC().Truncate(time.Second)
	cca := kr.ClientCA
	tmpl, err := ca.ClientTemplate(ca.ClientTemplateRequest{Serial: serial, NotBefore: now, NotAfter: now.Add(req.Validity),
		PublicKey: key.Public(), Role: req.Role, Municipality: req.Municipality, Name: req.Name, IssuerCert: cca.Cert})
	if err != nil {
		return Client{}, err
	}
	der, err := ca.SignCertificate(rand, lint.Linter{}, tmpl, cca.Cert, cca.Signer)
	if err != nil {
		return Client{}, fmt.Errorf("signing terminal certificate: %w", err)
	}
	detail := fmt.Appendf(nil, `{"role":%q,"municipality":%q,"name":%q}`, req.Role, req.Municipality, req.Name)
	_, err = st.InsertCertificate(ctx, ca.Issuance{
		Record: ca.Record{Serial: serial, IssuerID: cca.Issuer.ID, AKI: cca.Cert.SubjectKeyId, Type: ca.Terminal,
			Municipality: req.Municipality, NotBefore: now, NotAfter: tmpl.NotAfter, IssuedAt: now, Status: ca.Good, DER: der},
		Audit: audit.Entry{Time: now, Actor: req.Actor, Action: audit.ActionClientIssue, Subject: serial.Hex(), Detail: detail},
	})
	if err != nil {
		return Client{}, fmt.Errorf("recording terminal certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Client{}, fmt.Errorf("encoding terminal key: %w", err)
	}
	return Client{
		Serial:   serial,
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cca.Cert.Raw}),
	}, nil
}
