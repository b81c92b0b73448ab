package crl

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the updater. The counters and the histogram are labelled by
// issuer and kind (full, partition, delta). The gauges of the last
// published CRL are labelled by issuer and crl, the CRL's file name without
// ".crl" (full, full-delta, 302015, 302015-delta): one series per CRL,
// about 3,500 per issuer generation at 1,741 municipalities, so that each
// CRL's nextUpdate can be watched, and none overwrites another's.
type metrics struct {
	generated  *prometheus.CounterVec   // issuer, kind, result (published, failed)
	failures   *prometheus.CounterVec   // issuer, kind, check
	duration   *prometheus.HistogramVec // kind
	progress   *prometheus.GaugeVec     // issuer: entries encoded so far in the running CRL
	entries    *prometheus.GaugeVec     // issuer, crl: entries of the last published CRL
	lastOK     *prometheus.GaugeVec     // issuer, crl: unix time of its thisUpdate
	bytes      *prometheus.GaugeVec     // issuer, crl: its size
	nextUpdate *prometheus.GaugeVec     // issuer, crl: its nextUpdate
	stray      *prometheus.GaugeVec     // issuer: published partitions that are no longer kept up
	resyncs    prometheus.Counter       // the store's marks went back (a lossy failover)
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		generated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jpkica_crl_generations_total", Help: "CRLs generated, by issuer, kind and result (published or failed).",
		}, []string{"issuer", "kind", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jpkica_crl_check_failures_total", Help: "CRLs refused before publication, by the check that failed.",
		}, []string{"issuer", "kind", "check"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jpkica_crl_generation_seconds", Help: "Time to generate, check and publish one CRL.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"kind"}),
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jpkica_crl_entries", Help: "Entries of the CRL last published.",
		}, []string{"issuer", "crl"}),
		progress: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jpkica_crl_progress_entries", Help: "Entries encoded so far in the CRL being generated (0 when idle).",
		}, []string{"issuer"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jpkica_crl_last_published_timestamp_seconds", Help: "thisUpdate of the CRL last published.",
		}, []string{"issuer", "crl"}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jpkica_crl_bytes", Help: "Size of the CRL last published.",
		}, []string{"issuer", "crl"}),
		nextUpdate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jpkica_crl_next_update_timestamp_seconds", Help: "nextUpdate of the CRL last published.",
		}, []string{"issuer", "crl"}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jpkica_crl_resyncs_total", Help: "Times the store no longer held the newest revocation a published CRL marks (a failover that lost transactions), and every CRL was made again.",
		}),
		stray: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jpkica_crl_stray_partitions", Help: "Published partitions that are neither configured nor named by a revoked certificate: left as they are, not extended.",
		}, []string{"issuer"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.generated, m.failures, m.duration, m.entries, m.progress, m.lastOK, m.bytes, m.nextUpdate, m.stray, m.resyncs} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func kindOf(s Scope) string {
	switch {
	case s.Delta:
		return "delta"
	case s.Partition == "":
		return "full"
	}
	return "partition"
}

// published sets the gauges of a CRL from what was published.
func (m *metrics) published(p Published) {
	issuer, crl := p.Scope.Issuer, p.Scope.base()
	m.entries.WithLabelValues(issuer, crl).Set(float64(p.Entries))
	m.bytes.WithLabelValues(issuer, crl).Set(float64(p.Size))
	m.lastOK.WithLabelValues(issuer, crl).Set(float64(p.ThisUpdate.Unix()))
	m.nextUpdate.WithLabelValues(issuer, crl).Set(float64(p.NextUpdate.Unix()))
}
