package api

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ServerCerts keeps the API server certificate current for a listener that
// runs for months: it makes one at start (ServerCertificate) and a new one
// once two thirds of its validity have passed, in the handshake that finds
// it due; handshakes meanwhile get the current one. A renewal that fails
// (the client CA's key store down) is logged and tried again a minute
// later, while the current certificate, a third of its life still ahead,
// goes on being served. It is safe for concurrent use.
type ServerCerts struct {
	req   ServerCertRequest // Now unused: clock gives the time
	clock func() time.Time
	log   *slog.Logger

	cur atomic.Pointer[tls.Certificate]
	// renewing is held by the handshake that renews; nextTry is the
	// earliest time of the next attempt after a failure.
	renewing sync.Mutex
	nextTry  atomic.Int64 // Unix nanoseconds
}

// renewRetry is how long a failed renewal waits before the next attempt.
const renewRetry = time.Minute

// NewServerCerts makes the first certificate for req (at clock's time).
func NewServerCerts(req ServerCertRequest, clock func() time.Time, logger *slog.Logger) (*ServerCerts, error) {
	if clock == nil {
		return nil, fmt.Errorf("server certificates: no clock")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &ServerCerts{req: req, clock: clock, log: logger}
	c, err := s.make()
	if err != nil {
		return nil, err
	}
	s.cur.Store(c)
	return s, nil
}

func (s *ServerCerts) make() (*tls.Certificate, error) {
	req := s.req
	req.Now = s.clock()
	c, err := ServerCertificate(req)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// Current is the certificate handshakes get now.
func (s *ServerCerts) Current() *tls.Certificate { return s.cur.Load() }

// GetCertificate is tls.Config.GetCertificate: the current certificate,
// renewed first when it is due.
func (s *ServerCerts) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cur.Load()
	now := s.clock()
	leaf := c.Leaf
	due := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
	if now.Before(due) || now.UnixNano() < s.nextTry.Load() || !s.renewing.TryLock() {
		return c, nil
	}
	defer s.renewing.Unlock()
	if c != s.cur.Load() { // renewed while this handshake looked
		return s.cur.Load(), nil
	}
	next, err := s.make()
	if err != nil {
		s.nextTry.Store(now.Add(renewRetry).UnixNano())
		s.log.Error("renewing the API server certificate; serving the current one", "not_after", leaf.NotAfter, "err", err)
		return c, nil
	}
	s.cur.Store(next)
	s.log.Info("API server certificate renewed", "serial", next.Leaf.SerialNumber.Text(16), "not_after", next.Leaf.NotAfter)
	return next, nil
}

// TLSConfig is TLSConfig's configuration with these certificates.
func (s *ServerCerts) TLSConfig() *tls.Config {
	cfg := baseTLSConfig()
	cfg.GetCertificate = s.GetCertificate
	return cfg
}
