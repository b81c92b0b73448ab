package crl

import (
	"context"
	"errors"
	"time"
)

// RunDue publishes what is due now: each complete CRL (full and per
// partition) that is missing or older than Interval, and, with deltas
// configured, each delta CRL that is missing, older than DeltaInterval, or
// behind a revocation in its scope seen DeltaDelay ago.
func (u *Updater) RunDue(ctx context.Context) error {
	u.runMu.Lock()
	defer u.runMu.Unlock()
	now := u.clock()
	var errs []error
	type issuerScopes struct {
		id     string
		scopes []Scope
	}
	var all []issuerScopes
	for _, id := range u.order {
		parts, err := u.Partitions(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		is := issuerScopes{id: id, scopes: []Scope{{Issuer: id}}}
		for _, p := range parts {
			is.scopes = append(is.scopes, Scope{Issuer: id, Partition: p})
		}
		all = append(all, is)
	}
	generate := func(s Scope) {
		if _, err := u.Generate(ctx, s); err != nil && !errors.Is(err, ErrNoBase) {
			errs = append(errs, err)
		}
	}
	for _, is := range all {
		for _, s := range is.scopes {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			last, ok, err := u.dir.Last(s)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !ok || !now.Before(last.ThisUpdate.Add(u.cfg.Interval)) {
				generate(s)
			}
		}
	}
	if u.cfg.DeltaInterval <= 0 {
		return errors.Join(errs...)
	}
	mark, err := u.store.CRLChangeMark(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if mark != u.markSeen {
		u.markSeen, u.markSince = mark, now
	}
	settled := !now.Before(u.markSince.Add(u.cfg.DeltaDelay))
	for _, is := range all {
		type pending struct {
			scope Scope
			last  Published
			ok    bool
		}
		var deltas []pending
		oldest := mark
		for _, s := range is.scopes {
			d := Scope{Issuer: s.Issuer, Partition: s.Partition, Delta: true}
			last, ok, err := u.dir.Last(d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			deltas = append(deltas, pending{d, last, ok})
			if ok {
				oldest = min(oldest, last.ChangeMark)
			}
		}
		changed := map[string]int64{} // partition ("" for any) -> last revocation seq
		if settled && oldest < mark {
			changes, err := u.store.CRLChanges(ctx, oldest)
			if err != nil {
				errs = append(errs, err)
			}
			for _, c := range changes {
				if c.Issuer != is.id {
					continue
				}
				changed[c.Partition] = max(changed[c.Partition], c.Seq)
				changed[""] = max(changed[""], c.Seq)
			}
		}
		for _, d := range deltas {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			due := !d.ok || !now.Before(d.last.ThisUpdate.Add(u.cfg.DeltaInterval)) ||
				changed[d.scope.Partition] > d.last.ChangeMark
			if due {
				generate(d.scope)
			}
		}
	}
	return errors.Join(errs...)
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
