package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jpkica/jpkica/ca"
)

// TLSConfig is the API listener's TLS configuration: TLS 1.2 or later, the
// server certificate, and client certificates requested from every caller.
// The certificates are verified by the API itself (chain to the client CA,
// status in the store, at the API's clock), so that a missing, unknown,
// expired or revoked one gets a JSON 401 rather than a failed handshake.
func TLSConfig(serverCert tls.Certificate) *tls.Config {
	cfg := baseTLSConfig()
	cfg.Certificates = []tls.Certificate{serverCert}
	return cfg
}

func baseTLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}
}

// NewServer wraps the API in an http.Server with timeouts and a header size
// limit, ready for ServeTLS or Serve on a tls.Listener.
func NewServer(h http.Handler, tlsConfig *tls.Config, logger *slog.Logger) *http.Server {
	var errLog *slog.Logger = logger
	if errLog == nil {
		errLog = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(errLog.Handler(), slog.LevelWarn),
	}
}

// ServerCertRequest asks for an API server certificate signed by the
// client CA (which counters already trust to talk to the API).
type ServerCertRequest struct {
	ClientCA ca.IssuerKey
	// Hosts are DNS names or IP addresses (127.0.0.1, localhost).
	Hosts    []string
	Now      time.Time
	Validity time.Duration
	Rand     io.Reader
}

// ServerCertificate makes an ECDSA P-256 server key in memory and a
// certificate for it signed by the client CA. The key never leaves the
// process; a new one is made at every start.
func ServerCertificate(req ServerCertRequest) (tls.Certificate, error) {
	if req.ClientCA.Cert == nil || req.ClientCA.Signer == nil || len(req.Hosts) == 0 || req.Validity <= 0 || req.Rand == nil {
		return tls.Certificate{}, fmt.Errorf("%w: server certificate needs the client CA, hosts, a validity and randomness", ca.ErrInvalid)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), req.Rand)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server key: %w", err)
	}
	serial, err := ca.NewSerial(req.Rand)
	if err != nil {
		return tls.Certificate{}, err
	}
	ski, err := ca.SubjectKeyID(key.Public())
	if err != nil {
		return tls.Certificate{}, err
	}
	now := req.Now.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:   serial.Big(),
		Subject:        pkix.Name{Country: []string{"JP"}, Organization: []string{"jpkica"}, CommonName: "jpkica API"},
		NotBefore:      now.Add(-time.Minute),
		NotAfter:       now.Add(req.Validity),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SubjectKeyId:   ski,
		AuthorityKeyId: req.ClientCA.Cert.SubjectKeyId,
	}
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(req.Rand, tmpl, req.ClientCA.Cert, key.Public(), req.ClientCA.Signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("signing server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
