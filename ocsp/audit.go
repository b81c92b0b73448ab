package ocsp

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jpkica/jpkica/audit"
)

// Auditor appends to the audit log; store.Store is one.
type Auditor interface {
	AppendAudit(ctx context.Context, e audit.Entry) error
}

// auditLoop writes the signatures made to the audit log every
// AuditInterval, and once more when ctx ends.
func (p *Presigner) auditLoop(ctx context.Context) {
	p.auditSince = p.clock()
	tick := time.NewTicker(p.cfg.AuditInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			p.flushAudit(ctx)
		case <-ctx.Done():
			p.flushAudit(context.WithoutCancel(ctx))
			return
		}
	}
}

// flushAudit writes one "ocsp.sign" entry per responder key that signed
// since the last one. A count that cannot be written is kept for the next
// entry. Then it drops the responder keys that were replaced, have expired
// and have no count left to write.
func (p *Presigner) flushAudit(ctx context.Context) {
	now := p.clock()
	for _, a := range p.auths {
		for _, k := range *a.keys.Load() {
			n := k.signed.Swap(0)
			if n == 0 {
				continue
			}
			detail, _ := json.Marshal(struct {
				Responses uint64 `json:"responses"`
				Since     string `json:"since"`
				Until     string `json:"until"`
				Signer    string `json:"signer"`
			}{n, p.auditSince.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), k.desc})
			err := p.audit.AppendAudit(ctx, audit.Entry{Time: now, Actor: "system:ocsp", Action: audit.ActionOCSPSign, Subject: a.id, Detail: detail})
			if err != nil {
				k.signed.Add(n)
				p.log.Warn("ocsp: writing the signatures to the audit log; will retry", "issuer", a.id, "err", err)
			}
		}
		p.pruneKeys(a, now)
	}
	p.auditSince = now
}
