package crl

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// ErrNoBase: a delta CRL was asked for a scope without a published complete
// CRL.
var ErrNoBase = errors.New("no complete CRL to base a delta on")

// GenerateIssuer publishes an issuer's full CRL and one CRL per partition
// (complete CRLs, or with delta the delta CRLs of each). only, when not
// empty, restricts it to those partitions ("full" for the full CRL); a
// partition that is not one of Partitions is ErrInvalid, and nothing is
// published. It goes on after a failed CRL and returns every failure
// joined.
func (u *Updater) GenerateIssuer(ctx context.Context, issuerID string, delta bool, only ...string) ([]Published, error) {
	if _, ok := u.issuers[issuerID]; !ok {
		return nil, fmt.Errorf("%w: unknown issuer %q", ErrInvalid, issuerID)
	}
	parts, err := u.Partitions(ctx, issuerID)
	if err != nil {
		return nil, err
	}
	scopes := issuerScopes(issuerID, parts, delta)
	if len(only) > 0 {
		if scopes, err = onlyScopes(issuerID, parts, delta, only); err != nil {
			return nil, err
		}
	}
	var (
		out  []Published
		errs []error
	)
	for _, s := range scopes {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		p, err := u.Generate(ctx, s)
		if errors.Is(err, ErrNoBase) {
			u.log.Info("no delta CRL: no complete CRL published yet", "crl", s.File())
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// onlyScopes are the scopes of an issuer with partitions parts that only
// names (a partition, or "full"). A name that is neither is ErrInvalid: a
// CRL published for it would be kept up for no certificate.
func onlyScopes(issuer string, parts []string, delta bool, only []string) ([]Scope, error) {
	for _, o := range only {
		if o != fullName && !slices.Contains(parts, o) {
			return nil, fmt.Errorf("%w: partition %q of %s: not a configured municipality, and no certificate of the issuer names it",
				ErrInvalid, o, issuer)
		}
	}
	var keep []Scope
	for _, s := range issuerScopes(issuer, parts, delta) {
		name := s.Partition
		if name == "" {
			name = fullName
		}
		if slices.Contains(only, name) {
			keep = append(keep, s)
		}
	}
	return keep, nil
}

// Generate builds, checks and publishes one CRL. A CRL that fails a check
// is not published: the error wraps a *CheckError (find it with errors.As;
// errors.Is matches ErrCheck), is logged at error level and counted in
// jpkica_crl_check_failures_total under the name of the check.
func (u *Updater) Generate(ctx context.Context, scope Scope) (Published, error) {
	if err := scope.validate(); err != nil {
		return Published{}, err
	}
	ik, ok := u.issuers[scope.Issuer]
	if !ok {
		return Published{}, fmt.Errorf("%w: unknown issuer %q", ErrInvalid, scope.Issuer)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	start := time.Now() // duration metric only; CRL times come from the clock
	kind := kindOf(scope)
	p, err := u.generate(ctx, scope, ik)
	u.m.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	u.m.progress.WithLabelValues(scope.Issuer).Set(0)
	if errors.Is(err, ErrNoBase) || ctx.Err() != nil {
		return Published{}, fmt.Errorf("CRL %s: %w", scope, err)
	}
	if err != nil {
		u.m.generated.WithLabelValues(scope.Issuer, kind, "failed").Inc()
		var ce *CheckError
		if errors.As(err, &ce) {
			u.m.failures.WithLabelValues(scope.Issuer, kind, string(ce.Check)).Inc()
			u.log.Error("CRL REFUSED: not published", "crl", scope.File(), "check", string(ce.Check), "err", err)
		} else {
			u.log.Error("CRL generation failed", "crl", scope.File(), "err", err)
		}
		return Published{}, fmt.Errorf("CRL %s: %w", scope, err)
	}
	u.m.generated.WithLabelValues(scope.Issuer, kind, "published").Inc()
	u.observe(p)
	u.log.Info("CRL published", "crl", scope.File(), "number", p.Number, "entries", p.Entries, "bytes", p.Size,
		"seconds", time.Since(start).Seconds())
	return p, nil
}

// generate builds, checks and publishes one CRL; a CRL refused by a check
// is a *CheckError.
func (u *Updater) generate(ctx context.Context, scope Scope, ik ca.IssuerKey) (Published, error) {
	pl, err := u.plan(ctx, scope, ik)
	if err != nil {
		return Published{}, err
	}
	f, err := u.dir.create(scope)
	if err != nil {
		return Published{}, err
	}
	published := false
	defer func() {
		f.Close()
		if !published {
			os.Remove(f.Name())
		}
	}()
	started := time.Now()
	info, err := u.encode(ctx, pl, ik.Signer, f, started)
	if err != nil {
		return Published{}, err
	}
	encoded := time.Now()
	if err := f.Sync(); err != nil {
		return Published{}, fmt.Errorf("syncing CRL file: %w", err)
	}
	synced := time.Now()
	if err := u.check(f, scope, pl.spec, info); err != nil {
		return Published{}, err
	}
	u.log.Debug("CRL timings", "crl", scope.File(), "encode_s", encoded.Sub(started).Seconds(),
		"fsync_s", synced.Sub(encoded).Seconds(), "check_s", time.Since(synced).Seconds())
	p := pl.published(info)
	if err := f.Close(); err != nil {
		return Published{}, fmt.Errorf("closing CRL file: %w", err)
	}
	if err := u.dir.publish(f.Name(), p); err != nil {
		return Published{}, err
	}
	published = true
	if u.progress != nil {
		u.progress(Progress{Scope: scope, Entries: info.Entries, Elapsed: time.Since(started), Done: true})
	}
	u.audit(ctx, p)
	return p, nil
}

// crlPlan is one CRL before it is encoded: what it says, where its entries
// come from, and the store's change mark taken before they are read.
type crlPlan struct {
	scope      Scope
	spec       Spec
	src        Source
	mark       int64
	markSerial ca.Serial
}

// plan fixes the CRL of scope as of now: its number (allocated here), times,
// extensions and entries; a delta CRL on the last published complete one.
func (u *Updater) plan(ctx context.Context, scope Scope, ik ca.IssuerKey) (crlPlan, error) {
	now := u.clock().UTC().Truncate(time.Second)
	var base Published
	if scope.Delta {
		if u.cfg.DeltaInterval <= 0 {
			return crlPlan{}, fmt.Errorf("%w: delta CRLs are not configured", ErrInvalid)
		}
		b, ok, err := u.dir.Last(scope.Complete())
		if err != nil {
			return crlPlan{}, err
		}
		if !ok {
			return crlPlan{}, ErrNoBase
		}
		base = b
	}
	// The mark is taken before the entries are read: every change after it
	// is in a later delta, whether or not this CRL saw it.
	mark, markSerial, err := u.store.CRLChangeMark(ctx)
	if err != nil {
		return crlPlan{}, err
	}
	number, err := u.store.NextCRLNumber(ctx, scope.Issuer, scope.Partition)
	if err != nil {
		return crlPlan{}, err
	}
	spec := Spec{Issuer: ik.Cert, Number: number, ThisUpdate: now, NextUpdate: now.Add(u.cfg.Interval + u.cfg.Overlap)}
	if scope.Partition != "" {
		spec.IDP = u.URL(scope.Complete())
	}
	notExpiredAt := now
	if u.cfg.KeepExpired {
		notExpiredAt = ik.Cert.NotBefore.UTC().Truncate(time.Second)
		spec.ExpiredCertsOnCRL = notExpiredAt
	}
	var src Source
	if scope.Delta {
		spec.DeltaBase = base.Number
		spec.NextUpdate = now.Add(2 * u.cfg.DeltaInterval)
		src = changesSource(u.store, scope.Issuer, scope.Partition, base.ChangeMark, notExpiredAt)
	} else {
		if u.cfg.DeltaInterval > 0 {
			spec.FreshestCRL = u.URL(Scope{Issuer: scope.Issuer, Partition: scope.Partition, Delta: true})
		}
		src = ListerSource(u.store, scope.Issuer, scope.Partition, notExpiredAt)
	}
	return crlPlan{scope: scope, spec: spec, src: src, mark: mark, markSerial: markSerial}, nil
}

// encode writes the planned CRL to out, signed by signer, reporting its
// progress to the progress gauge and to Deps.Progress.
func (u *Updater) encode(ctx context.Context, pl crlPlan, signer crypto.Signer, out io.Writer, started time.Time) (Info, error) {
	opt := Options{SpoolDir: u.cfg.SpoolDir, Rand: u.rand, Progress: func(n int64) {
		u.m.progress.WithLabelValues(pl.scope.Issuer).Set(float64(n))
		if u.progress != nil {
			u.progress(Progress{Scope: pl.scope, Entries: n, Elapsed: time.Since(started)})
		}
	}, ProgressEvery: 100000}
	info, err := Encode(ctx, pl.spec, signer, pl.src, out, opt)
	if err != nil {
		return Info{}, fmt.Errorf("encoding: %w", err)
	}
	return info, nil
}

// published is the record of the planned CRL once encoded as info.
func (pl crlPlan) published(info Info) Published {
	return Published{
		Scope: pl.scope, Number: pl.spec.Number, BaseNumber: pl.spec.DeltaBase, ThisUpdate: pl.spec.ThisUpdate,
		NextUpdate: pl.spec.NextUpdate, IDP: pl.spec.IDP, Entries: info.Entries, Size: info.Size, ChangeMark: pl.mark,
		ChangeMarkSerial: hexOrEmpty(pl.markSerial),
	}
}

func hexOrEmpty(s ca.Serial) string {
	if s.IsZero() {
		return ""
	}
	return s.Hex()
}

// audit records a publication in the audit log. The CRL is published
// already and correct: a failure is logged loudly, not returned.
func (u *Updater) audit(ctx context.Context, p Published) {
	detail, _ := json.Marshal(map[string]any{
		"number": p.Number.String(), "base_number": bigString(p.BaseNumber), "entries": p.Entries, "bytes": p.Size,
		"this_update": p.ThisUpdate, "next_update": p.NextUpdate, "url": u.URL(p.Scope),
	})
	if err := u.store.AppendAudit(ctx, audit.Entry{
		Time: p.ThisUpdate, Actor: u.cfg.Actor, Action: audit.ActionCRLPublish, Subject: p.Scope.File(), Detail: detail,
	}); err != nil {
		u.log.Error("CRL published but not audited", "crl", p.Scope.File(), "err", err)
	}
}

func bigString(n *big.Int) string {
	if n == nil {
		return ""
	}
	return n.String()
}
