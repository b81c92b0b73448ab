package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// replication is what the store says of its database's replication
// (store.Store).
type replication interface {
	ReplicationLag(ctx context.Context) (time.Duration, error)
	SynchronousStandbys(ctx context.Context) (int, error)
}

// replicationQueryTimeout bounds each replication query of a scrape or a
// /readyz check.
const replicationQueryTimeout = time.Second

// lagging is the replication lag over the configured maximum.
type lagging struct{ lag, max time.Duration }

func (e *lagging) Error() string {
	return fmt.Sprintf("replication lag %s over the %s maximum (store.max_lag)", e.lag.Round(100*time.Millisecond), e.max)
}

// lagCheck is /readyz's check of the replication lag: a node that reads a
// hot standby answers stale statuses when the standby lags, so past max it
// is not ready, and a load balancer takes it out.
type lagCheck struct {
	st  replication
	max time.Duration
}

func (l lagCheck) Ping(ctx context.Context) error {
	lag, err := l.st.ReplicationLag(ctx)
	if err != nil {
		return err
	}
	if lag > l.max {
		return &lagging{lag: lag, max: l.max}
	}
	return nil
}

// replicationCollector exports the replication lag, and, for a ca node in
// production on PostgreSQL (durability), how many synchronous standbys its
// primary has, read from the database at each scrape. A query that fails
// leaves its metric out of that scrape.
type replicationCollector struct {
	st         replication
	durability bool
	lag, sync  *prometheus.Desc
}

func newReplicationCollector(st replication, durability bool) *replicationCollector {
	return &replicationCollector{st: st, durability: durability,
		lag: prometheus.NewDesc("jpkica_store_replication_lag_seconds",
			"How far the database this node reads lags behind its primary: 0 on a primary, on SQLite, and on a hot standby with nothing left to replay.", nil, nil),
		sync: prometheus.NewDesc("jpkica_store_synchronous_standbys",
			"Standbys that confirm the ca role's primary's commits before they are acknowledged (sync or quorum). 0: a failover can lose acknowledged issuances.", nil, nil),
	}
}

func (c *replicationCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	if c.durability {
		ch <- c.sync
	}
}

func (c *replicationCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*replicationQueryTimeout)
	defer cancel()
	if lag, err := c.st.ReplicationLag(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, lag.Seconds())
	}
	if !c.durability {
		return
	}
	if n, err := c.st.SynchronousStandbys(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.sync, prometheus.GaugeValue, float64(n))
	}
}

// warnUnsynchronised logs a warning when the ca role's primary has no
// synchronous standby: then a failover may lose issuances that were
// answered 201 (docs/operations.md).
func warnUnsynchronised(ctx context.Context, st replication, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, replicationQueryTimeout)
	defer cancel()
	n, err := st.SynchronousStandbys(ctx)
	switch {
	case err != nil:
		log.Warn("could not count the primary's synchronous standbys", "err", err)
	case n == 0:
		log.Warn("NO SYNCHRONOUS STANDBY: the ca role's primary acknowledges issuances that a failover can lose; " +
			"set synchronous_standby_names and synchronous_commit on the primary, and grant the database role pg_monitor " +
			"so that jpkica can see the standby (docs/operations.md)")
	}
}

// isLagging reports whether err is a lag over the maximum, and which.
func isLagging(err error) (*lagging, bool) {
	var l *lagging
	ok := errors.As(err, &l)
	return l, ok
}
