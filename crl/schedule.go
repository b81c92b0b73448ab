package crl

import (
	"context"
	"errors"
	"time"
)

// RunDue publishes what is due now: each complete CRL (full and per
// partition) that is missing or older than Interval, and, with deltas
// configured, each delta CRL that is missing, older than DeltaInterval, or
// behind a revocation in its scope seen DeltaDelay ago. It goes on after a
// failure and returns every failure joined.
func (u *Updater) RunDue(ctx context.Context) error {
	u.runMu.Lock()
	defer u.runMu.Unlock()
	r := &dueRun{u: u, ctx: ctx, now: u.clock()}
	issuers := r.issuers()
	for _, is := range issuers {
		if err := r.generate(is.scopes(false), r.completeDue); err != nil {
			return err
		}
	}
	if u.cfg.DeltaInterval <= 0 {
		return r.err()
	}
	mark, err := u.store.CRLChangeMark(ctx)
	if err != nil {
		r.fail(err)
		return r.err()
	}
	settled := u.settled(mark, r.now)
	for _, is := range issuers {
		deltas := is.scopes(true)
		if err := r.generate(deltas, r.deltaDue(deltas, mark, settled)); err != nil {
			return err
		}
	}
	return r.err()
}

// dueRun is one RunDue: when it runs, and the failures it went on after.
type dueRun struct {
	u    *Updater
	ctx  context.Context
	now  time.Time
	errs []error
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
// partitions cannot be listed is left out of this run.
func (r *dueRun) issuers() []issuerPartitions {
	var out []issuerPartitions
	for _, id := range r.u.order {
		parts, err := r.u.Partitions(r.ctx, id)
		if err != nil {
			r.fail(err)
			continue
		}
		out = append(out, issuerPartitions{id: id, parts: parts})
	}
	return out
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
	return !ok || !r.now.Before(last.ThisUpdate.Add(r.u.cfg.Interval))
}

// deltaDue says which of an issuer's delta CRLs are due: none published, the
// last DeltaInterval old, or, once the change mark has settled, a
// revocation in its scope after the last one's mark. It reads what was last
// published now, before any of them is generated.
func (r *dueRun) deltaDue(deltas []Scope, mark int64, settled bool) func(Scope) bool {
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
	if settled && oldest < mark {
		revoked = r.revokedSince(oldest)
	}
	return func(d Scope) bool {
		last, read := lasts[d]
		return read && (!last.ok || !r.now.Before(last.p.ThisUpdate.Add(r.u.cfg.DeltaInterval)) ||
			revoked[d] > last.p.ChangeMark)
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

// settled records the store's change mark and says whether DeltaDelay has
// passed since it was first seen: the revocations of a busy minute go into
// one round of delta CRLs, not one round each.
func (u *Updater) settled(mark int64, now time.Time) bool {
	if mark != u.markSeen {
		u.markSeen, u.markSince = mark, now
	}
	return !now.Before(u.markSince.Add(u.cfg.DeltaDelay))
}

// Run calls RunDue every Tick until ctx ends. Failures are logged (and
// counted) and retried on the next tick.
func (u *Updater) Run(ctx context.Context) error {
	t := time.NewTicker(u.cfg.Tick)
	defer t.Stop()
	for {
		if err := u.RunDue(ctx); err != nil && ctx.Err() == nil {
			u.log.Error("CRL run failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
