package crl

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the updater. Labels are issuer and kind (full, partition,
// delta), never the municipality: there are about 1,700 of them.
type metrics struct {
	generated  *prometheus.CounterVec   // issuer, kind, result (published, failed)
	failures   *prometheus.CounterVec   // issuer, kind, check
	duration   *prometheus.HistogramVec // kind
	entries    *prometheus.GaugeVec     // issuer, kind: entries of the last published CRL
	progress   *prometheus.GaugeVec     // issuer: entries encoded so far in the running CRL
	lastOK     *prometheus.GaugeVec     // issuer, kind: unix time of the last publication
	bytes      *prometheus.GaugeVec     // issuer, kind: size of the last published CRL
	nextUpdate *prometheus.GaugeVec     // issuer, kind: the earliest nextUpdate published in the last run
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
			Name: "jpkica_crl_entries", Help: "Entries of the last published CRL of that kind.",
		}, []string{"issuer", "kind"}),
		progress: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jpkica_crl_progress_entries", Help: "Entries encoded so far in the CRL being generated (0 when idle).",
		}, []string{"issuer"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jpkica_crl_last_published_timestamp_seconds", Help: "When a CRL of that kind was last published.",
		}, []string{"issuer", "kind"}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jpkica_crl_bytes", Help: "Size of the last published CRL of that kind.",
		}, []string{"issuer", "kind"}),
		nextUpdate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jpkica_crl_next_update_timestamp_seconds", Help: "nextUpdate of the last published CRL of that kind.",
		}, []string{"issuer", "kind"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.generated, m.failures, m.duration, m.entries, m.progress, m.lastOK, m.bytes, m.nextUpdate} {
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
