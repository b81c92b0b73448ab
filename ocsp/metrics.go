package ocsp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the responder's Prometheus metrics.
type metrics struct {
	requests       *prometheus.CounterVec // by outcome
	hits           prometheus.Counter
	misses         prometheus.Counter
	stale          prometheus.Counter
	busy           prometheus.Counter
	fresh          prometheus.Counter
	signed         prometheus.Counter
	signErrors     prometheus.Counter
	dropped        prometheus.Counter
	persistDropped prometheus.Counter
	queued         prometheus.Gauge
	signSeconds    prometheus.Histogram
	// withdrawn counts responses taken out because their certificate's
	// status changed and could not be signed; withdrawnAnswers the
	// tryLater answers given for them.
	withdrawn        prometheus.Counter
	withdrawnAnswers prometheus.Counter
	// resyncs counts the times the store's change feed went back (a lossy
	// failover) and every status was loaded again.
	resyncs prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, p *Presigner) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jpkica_ocsp_requests_total",
			Help: "OCSP requests by outcome: good, revoked, unknown, or the OCSP error status."}, []string{"status"}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_cache_hits_total",
			Help: "Requests answered from a pre-signed response."}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_cache_misses_total",
			Help: "Requests whose certificate had no cached response."}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_cache_stale_total",
			Help: "Requests whose cached response was past nextUpdate."}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_signing_busy_total",
			Help: "On-demand signings refused because too many were in flight."}),
		fresh: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_fresh_responses_total",
			Help: "Responses signed for one request (nonce, several CertIDs, unknown serial)."}),
		signed: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_presigned_total",
			Help: "Responses signed and cached."}),
		signErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_sign_errors_total",
			Help: "Failed OCSP signings."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_notifications_dropped_total",
			Help: "Status-change notifications dropped on a full queue (the follower catches them)."}),
		persistDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_persist_dropped_total",
			Help: "Signed responses not stored (full queue or store error); the next re-signing stores them."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "jpkica_ocsp_signing_queue",
			Help: "Pre-signing jobs waiting."}),
		signSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "jpkica_ocsp_sign_seconds",
			Help: "Latency of one OCSP response signing.", Buckets: prometheus.ExponentialBuckets(0.00002, 2.5, 12)}),
		withdrawn: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_withdrawn_total",
			Help: "Cached responses withdrawn because their certificate's status changed and the new one could not be signed."}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_resyncs_total",
			Help: "Times the store's change feed went back (a failover that lost transactions) and every status was loaded again."}),
		withdrawnAnswers: prometheus.NewCounter(prometheus.CounterOpts{Name: "jpkica_ocsp_withdrawn_answers_total",
			Help: "tryLater answers to requests for a certificate whose response was withdrawn and not yet signed again."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.hits, m.misses, m.stale, m.busy, m.fresh, m.signed,
		m.signErrors, m.dropped, m.persistDropped, m.queued, m.signSeconds, m.withdrawn, m.withdrawnAnswers, m.resyncs,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jpkica_ocsp_cached_responses",
			Help: "Signed responses held in memory."}, func() float64 { return float64(p.cache.Len()) }),
		responderExpiry{p},
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("%w: registering OCSP metrics: %v", ErrInvalid, err)
		}
	}
	return m, nil
}

// responderExpiry exports when each issuer's signing responder certificate
// expires: responses signed after that fail at every relying party, so an
// alert belongs on it (the ca role renews responders well before).
type responderExpiry struct{ p *Presigner }

var responderExpiryDesc = prometheus.NewDesc("jpkica_ocsp_responder_not_after_seconds",
	"When the certificate of the responder that signs an issuer's OCSP responses expires (Unix time).",
	[]string{"issuer"}, nil)

func (r responderExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- responderExpiryDesc }

func (r responderExpiry) Collect(ch chan<- prometheus.Metric) {
	for _, a := range r.p.auths {
		ch <- prometheus.MustNewConstMetric(responderExpiryDesc, prometheus.GaugeValue,
			float64(a.key().notAfter.Unix()), a.id)
	}
}
