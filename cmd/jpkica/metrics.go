package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/hsm"
)

// statser is a key store that counts what it does (hsm.PKCS11).
type statser interface{ Stats() hsm.Stats }

// keyStoreCollector exports a PKCS #11 store's counters, read once per
// scrape.
type keyStoreCollector struct {
	stats                          func() hsm.Stats
	calls, errs, reinits, attempts *prometheus.Desc
	sessionsOpen, sessionsInUse    *prometheus.Desc
	loginRefused                   *prometheus.Desc
}

// registerKeyStoreMetrics adds the key store's metrics to reg, if it has
// any (the software store has none).
func registerKeyStoreMetrics(reg prometheus.Registerer, keys any) error {
	s, ok := keys.(statser)
	if !ok {
		return nil
	}
	return reg.Register(&keyStoreCollector{
		stats: s.Stats,
		calls: prometheus.NewDesc("jpkica_hsm_signing_calls_total",
			"PKCS #11 signing calls (C_SignInit and C_Sign), by where they ran: direct on the signing goroutine's thread, or thread on one of the store's signing threads while the Go scheduler was saturated.",
			[]string{"path"}, nil),
		errs: prometheus.NewDesc("jpkica_hsm_signature_errors_total",
			"Signatures that failed in the session pool or the token, after any retry.", nil, nil),
		reinits: prometheus.NewDesc("jpkica_hsm_reinitialisations_total",
			"Re-initialisations of the PKCS #11 module that succeeded.", nil, nil),
		attempts: prometheus.NewDesc("jpkica_hsm_reinit_attempts_total",
			"Attempts to re-initialise the PKCS #11 module.", nil, nil),
		sessionsOpen: prometheus.NewDesc("jpkica_hsm_sessions_open",
			"Sessions open on the token.", nil, nil),
		sessionsInUse: prometheus.NewDesc("jpkica_hsm_sessions_in_use",
			"Sessions lent out to a signature or another call now.", nil, nil),
		loginRefused: prometheus.NewDesc("jpkica_hsm_login_refused",
			"1 while the token has refused the PIN and the key store has stopped trying (so as not to lock the token): nothing signs until an operator fixes the PIN or the token and restarts jpkica; else 0.", nil, nil),
	})
}

func (c *keyStoreCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.calls, c.errs, c.reinits, c.attempts, c.sessionsOpen, c.sessionsInUse, c.loginRefused} {
		ch <- d
	}
}

func (c *keyStoreCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.calls, s.DirectSignatures, "direct")
	counter(c.calls, s.ThreadSignatures, "thread")
	counter(c.errs, s.SignatureErrors)
	counter(c.reinits, s.Reinitialisations)
	counter(c.attempts, s.ReinitAttempts)
	ch <- prometheus.MustNewConstMetric(c.sessionsOpen, prometheus.GaugeValue, float64(s.SessionsOpen))
	ch <- prometheus.MustNewConstMetric(c.sessionsInUse, prometheus.GaugeValue, float64(s.SessionsInUse))
	refused := 0.0
	if s.LoginRefused {
		refused = 1
	}
	ch <- prometheus.MustNewConstMetric(c.loginRefused, prometheus.GaugeValue, refused)
}

// registerIssuerExpiry exports when the issuer generations a ca node
// issues from (current) expire: a certificate may run 5 years and 3
// months, and one that would outlive its issuer is refused
// (ca.ErrIssuerExpiring), so a new generation is due well before.
func registerIssuerExpiry(reg prometheus.Registerer, current []ca.IssuerKey) error {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jpkica_ca_issuer_not_after_seconds",
		Help: "When the issuer generation a ca node issues from expires (Unix time)."}, []string{"issuer"})
	for _, ik := range current {
		g.WithLabelValues(ik.Issuer.ID).Set(float64(ik.Cert.NotAfter.Unix()))
	}
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("registering issuer metrics: %w", err)
	}
	return nil
}
