package api_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jpkica/jpkica/api"
	"github.com/jpkica/jpkica/api/apitest"
)

// switchSigner fails while off is set.
type switchSigner struct {
	crypto.Signer
	off atomic.Bool
}

func (s *switchSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	if s.off.Load() {
		return nil, errors.New("key store down")
	}
	return s.Signer.Sign(r, d, o)
}

// TestServerCertsRenew: through real TLS handshakes, the API server
// certificate names the configured host, is kept for two thirds of its
// validity, and is then renewed in a handshake. While the client CA's key
// cannot sign, handshakes go on getting the current certificate, and the
// renewal is tried again a minute later.
func TestServerCertsRenew(t *testing.T) {
	s := apitest.New(t, apitest.Options{})
	start := time.Now().Truncate(time.Second)
	var now atomic.Int64
	now.Store(start.Unix())
	clock := func() time.Time { return time.Unix(now.Load(), 0) }
	at := func(d time.Duration) { now.Store(start.Add(d).Unix()) }
	cca := s.Keyring.ClientCA
	signer := &switchSigner{Signer: cca.Signer}
	cca.Signer = signer
	var logs bytes.Buffer
	certs, err := api.NewServerCerts(api.ServerCertRequest{ClientCA: cca, Hosts: []string{"127.0.0.1", "ca.jpkica.test"},
		Validity: 30 * 24 * time.Hour, Rand: rand.Reader}, clock, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", certs.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	// handshake connects as a counter would, verifying the server by the
	// client CA and the name, at the test's clock.
	handshake := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: s.ServerCA, ServerName: "ca.jpkica.test", Time: clock})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	first := handshake()
	at(19 * 24 * time.Hour)
	if got := handshake(); !got.Equal(first) {
		t.Fatalf("renewed after 19 of 30 days")
	}
	signer.off.Store(true)
	at(21 * 24 * time.Hour)
	if got := handshake(); !got.Equal(first) {
		t.Fatal("a certificate changed while the client CA could not sign")
	}
	if !strings.Contains(logs.String(), "renewing the API server certificate") {
		t.Fatalf("the failed renewal is not logged:\n%s", logs.String())
	}
	signer.off.Store(false)
	at(21*24*time.Hour + 30*time.Second)
	if got := handshake(); !got.Equal(first) {
		t.Fatal("renewal tried again within a minute of a failure")
	}
	at(21*24*time.Hour + 2*time.Minute)
	renewed := handshake()
	if renewed.Equal(first) {
		t.Fatal("not renewed after two thirds of its validity")
	}
	if want := clock().Add(30 * 24 * time.Hour); !renewed.NotAfter.Equal(want) {
		t.Fatalf("renewed certificate until %v, want %v", renewed.NotAfter, want)
	}
	if got := handshake(); !got.Equal(renewed) {
		t.Fatal("renewed again at once")
	}
}
