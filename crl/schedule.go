package crl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jpkica/jpkica/ca"
)

// RunDue publishes what is due now: each complete CRL (full and per
// partition) that is missing or older than Interval, and, with deltas
// configured, each delta CRL that is missing, older than DeltaInterval (half
// its validity), or behind a revocation or hold in its scope that RunDue
// first saw DeltaDelay ago. A delta with nothing new in its scope is not
// issued again before DeltaInterval. It goes on after a failure and returns
// every failure joined.
func (u *Updater) RunDue(ctx context.Context) error {
	u.runMu.Lock()
	defer u.runMu.Unlock()
	r := &dueRun{u: u, ctx: ctx, now: u.clock()}
	if r.wentBack() {
		u.resync = true
	}
	r.force = u.resync
	defer func() {
		if r.force && len(r.errs) == 0 && ctx.Err() == nil {
			u.resync = false
		}
	}()
	issuers := r.issuers()
	for _, is := range issuers {
		if err := r.generate(is.scopes(false), r.completeDue); err != nil {
			return err
		}
	}
	if u.cfg.DeltaInterval <= 0 {
		return r.err()
	}
	mark, _, err := u.store.CRLChangeMark(ctx)
	if err != nil {
		r.fail(err)
		return r.err()
	}
	for _, is := range issuers {
		deltas := is.scopes(true)
		if err := r.generate(deltas, r.deltaDue(deltas, mark)); err != nil {
			return err
		}
	}
	return r.err()
}

// dueRun is one RunDue: when it runs, whether it makes every CRL again
// (force), and the failures it went on after.
type dueRun struct {
	u     *Updater
	ctx   context.Context
	now   time.Time
	force bool
	errs  []error
}

func (r *dueRun) fail(err error) { r.errs = append(r.errs, err) }
func (r *dueRun) err() error     { return errors.Join(r.errs...) }

// issuerPartitions is an issuer with its partitions.
type issuerPartitions struct {
	id    string
	parts []string
}

func (is issuerPartitions) scopes(delta bool) []Scope { return issuerScopes(is.id, is.parts, delta) }

// issuers lists the issuers with their partitions; an issuer whose
// partitions cannot be listed is left out of this run. Stray partitions
// are reported.
func (r *dueRun) issuers() []issuerPartitions {
	var out []issuerPartitions
	for _, id := range r.u.order {
		parts, err := r.u.Partitions(r.ctx, id)
		if err != nil {
			r.fail(err)
			continue
		}
		out = append(out, issuerPartitions{id: id, parts: parts})
		r.reportStrays(id, parts)
	}
	return out
}

// reportStrays logs, once per process, each published partition of an
// issuer that is not among parts, and sets their count.
func (r *dueRun) reportStrays(issuer string, parts []string) {
	stray, err := r.u.StrayPartitions(issuer, parts)
	if err != nil {
		r.fail(err)
		return
	}
	r.u.m.stray.WithLabelValues(issuer).Set(float64(len(stray)))
	for _, p := range stray {
		s := Scope{Issuer: issuer, Partition: p}
		if !r.u.strays[s] {
			r.u.strays[s] = true
			r.u.log.Warn("stray CRL partition: neither a configured municipality nor named by a revoked certificate; left as it is, not extended",
				"crl", s.File())
		}
	}
}

// generate generates each of scopes that due says is due, one after the
// other, until ctx ends.
func (r *dueRun) generate(scopes []Scope, due func(Scope) bool) error {
	for _, s := range scopes {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if !due(s) {
			continue
		}
		if _, err := r.u.Generate(r.ctx, s); err != nil && !errors.Is(err, ErrNoBase) {
			r.fail(err)
		}
	}
	return nil
}

// completeDue: a complete CRL is due when none was published or the last
// is Interval old.
func (r *dueRun) completeDue(s Scope) bool {
	last, ok, err := r.u.dir.Last(s)
	if err != nil {
		r.fail(err)
		return false
	}
	return r.force || !ok || !r.now.Before(last.ThisUpdate.Add(r.u.cfg.Interval))
}

// deltaDue says which of an issuer's delta CRLs are due: none published, the
// last DeltaInterval old, or a revocation in its scope after the last one's
// mark that has waited DeltaDelay since RunDue first saw it (pending): the
// revocations of a busy minute go into one round of delta CRLs, not one
// round each, and a steady stream of them still gets a round every
// DeltaDelay. It reads what was last published now, before any of them is
// generated.
func (r *dueRun) deltaDue(deltas []Scope, mark int64) func(Scope) bool {
	type lastDelta struct {
		p  Published
		ok bool
	}
	lasts := map[Scope]lastDelta{} // a scope whose last CRL cannot be read is not due
	oldest := mark
	for _, d := range deltas {
		last, ok, err := r.u.dir.Last(d)
		if err != nil {
			r.fail(err)
			continue
		}
		lasts[d] = lastDelta{last, ok}
		if ok {
			oldest = min(oldest, last.ChangeMark)
		}
	}
	var revoked map[Scope]int64
	if oldest < mark {
		revoked = r.revokedSince(oldest)
	}
	return func(d Scope) bool {
		last, read := lasts[d]
		if !read {
			return false
		}
		behind := last.ok && revoked[d] > last.p.ChangeMark
		waited := r.u.pending(d, behind, r.now)
		return r.force || !last.ok || !r.now.Before(last.p.ThisUpdate.Add(r.u.cfg.DeltaInterval)) || waited
	}
}

// revokedSince maps each delta CRL scope to the sequence number of the last
// revocation or hold in it after afterSeq: a partition's delta for the
// changes in the partition, the full delta for those of the whole issuer.
func (r *dueRun) revokedSince(afterSeq int64) map[Scope]int64 {
	changes, err := r.u.store.CRLChanges(r.ctx, afterSeq)
	if err != nil {
		r.fail(err)
	}
	out := map[Scope]int64{}
	for _, c := range changes {
		for _, d := range []Scope{{Issuer: c.Issuer, Partition: c.Partition, Delta: true}, {Issuer: c.Issuer, Delta: true}} {
			out[d] = max(out[d], c.Seq)
		}
	}
	return out
}

// wentBack reports whether the store no longer holds the newest revocation
// a published CRL marks, at that sequence number or a later one: a
// failover to a standby that lacked the newest transactions, after which
// the store's sequence numbers start again below the published marks and
// deltas based on them would miss the new revocations. Every CRL is then
// made again (force), complete ones first, so that the deltas take new
// bases.
func (r *dueRun) wentBack() bool {
	m := r.u.newestMark()
	if m.ChangeMarkSerial == "" {
		return false
	}
	sn, err := ca.ParseSerial(m.ChangeMarkSerial)
	if err != nil {
		r.fail(fmt.Errorf("%s: change mark serial: %w", m.Scope, err))
		return false
	}
	seq, err := r.u.store.ChangeSeqOf(r.ctx, sn)
	switch {
	case errors.Is(err, ca.ErrNotFound):
	case err != nil:
		r.fail(err)
		return false
	case seq >= m.ChangeMark:
		return false
	}
	r.u.log.Error("the store no longer holds the newest revocation a published CRL marks (a failover lost transactions): making every CRL again",
		"crl", m.Scope.File(), "mark", m.ChangeMark)
	r.u.m.resyncs.Inc()
	r.u.markMu.Lock()
	r.u.mark = Published{}
	r.u.markMu.Unlock()
	return true
}

// observe records a published CRL: its gauges, and its change mark if it is
// the newest.
func (u *Updater) observe(p Published) {
	u.m.published(p)
	u.markMu.Lock()
	defer u.markMu.Unlock()
	if p.ChangeMarkSerial != "" && p.ChangeMark >= u.mark.ChangeMark {
		u.mark = p
	}
}

func (u *Updater) newestMark() Published {
	u.markMu.Lock()
	defer u.markMu.Unlock()
	return u.mark
}

// pending records when RunDue first saw a delta scope behind a revocation,
// and says whether DeltaDelay has passed since. A scope that is not behind
// (or was just published) starts again.
func (u *Updater) pending(d Scope, behind bool, now time.Time) bool {
	if !behind {
		delete(u.behindSince, d)
		return false
	}
	since, ok := u.behindSince[d]
	if !ok {
		since = now
		u.behindSince[d] = now
	}
	return !now.Before(since.Add(u.cfg.DeltaDelay))
}

// Run calls RunDue every Tick until ctx ends, and also when a pending
// delta scope's DeltaDelay runs out between ticks: a revocation reaches its
// delta CRLs within DeltaDelay and one Tick. Failures are logged (and
// counted) and retried on the next tick.
func (u *Updater) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		if err := u.RunDue(ctx); err != nil && ctx.Err() == nil {
			u.log.Error("CRL run failed", "err", err)
		}
		timer.Reset(u.nextRun(u.clock()))
	}
}

// nextRun is how long Run waits before the next RunDue: a Tick, or less
// when a pending delta scope's DeltaDelay runs out sooner (but at least a
// second, so that a failing scope is not retried in a loop).
func (u *Updater) nextRun(now time.Time) time.Duration {
	u.runMu.Lock()
	defer u.runMu.Unlock()
	wait := u.cfg.Tick
	for _, since := range u.behindSince {
		wait = min(wait, max(since.Add(u.cfg.DeltaDelay).Sub(now), time.Second))
	}
	return wait
}
