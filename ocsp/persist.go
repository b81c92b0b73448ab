package ocsp

import (
	"bytes"
	"context"
	"crypto"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/jpkica/jpkica/ca"
)

// ResponseStore keeps signed responses across restarts; *store.Store
// satisfies it (its ocsp_responses table, which cfssl's responder also
// reads). It is optional: without it a start re-signs every response.
type ResponseStore interface {
	// UpsertOCSP stores DER OCSPResponses, all or none.
	UpsertOCSP(ctx context.Context, rs ...ca.OCSPResponse) error
	// OCSPResponses streams the stored responses of unexpired certificates
	// with each certificate's current status and change_seq.
	OCSPResponses(ctx context.Context, now time.Time, fn func(seq int64, r ca.Record, body []byte) error) error
}

// persistBatch is the most responses stored in one transaction.
const persistBatch = 256

// persist queues a SHA-1 CertID response for storing; a full queue drops it
// (it is a cache: the next re-signing stores it again).
func (p *Presigner) persist(a *authority, serial ca.Serial, it *Item) {
	if p.responses == nil {
		return
	}
	ans := p.answer(a, it)
	r := ca.OCSPResponse{Serial: serial, AKI: a.ski, Body: ans.AppendDER(nil), Expiry: ans.NextUpdate}
	p.pending.Add(1)
	select {
	case p.persistQ <- r:
	default:
		p.pending.Add(-1)
		p.m.persistDropped.Inc()
	}
}

// writeResponses stores queued responses until ctx ends: what is queued,
// up to persistBatch, in one transaction.
func (p *Presigner) writeResponses(ctx context.Context) {
	batch := make([]ca.OCSPResponse, 0, persistBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-p.persistQ:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < persistBatch {
			select {
			case r := <-p.persistQ:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		p.store(ctx, batch)
		p.pending.Add(-int64(len(batch)))
		clear(batch) // the bodies are garbage now
	}
}

// store writes a batch. If the transaction fails, each response is tried
// on its own, so that one the store refuses does not take the others with
// it.
func (p *Presigner) store(ctx context.Context, batch []ca.OCSPResponse) {
	err := p.responses.UpsertOCSP(ctx, batch...)
	if err == nil || ctx.Err() != nil {
		return
	}
	if len(batch) > 1 {
		for _, r := range batch {
			p.store(ctx, []ca.OCSPResponse{r})
		}
		return
	}
	p.m.persistDropped.Inc()
	p.log.Debug("ocsp: storing a response", "serial", batch[0].Serial.Hex(), "err", err)
}

// warmFromStore fills the cache with the stored responses that are still
// valid, were signed by the current responder of their issuer, and say what
// the store says now. It returns how many it kept.
func (p *Presigner) warmFromStore(ctx context.Context) (int, error) {
	now := p.clock()
	kept := 0
	err := p.responses.OCSPResponses(ctx, now, func(seq int64, r ca.Record, der []byte) error {
		a := p.byID[r.IssuerID]
		if a == nil {
			return nil
		}
		it, ok := parseStored(der, a, &r)
		if !ok || int64(it.NextUpdate) <= now.Unix() {
			return nil
		}
		it.Seq = seq
		it.Expires = uint32(clampUnix(r.NotAfter))
		k := makeKey(a.idx, 0, r.Serial.Bytes())
		if p.cache.put(k.bytes(), it) {
			kept++
		}
		return nil
	})
	return kept, err
}

// parseStored checks a stored DER OCSPResponse against the authority and
// the certificate's current status, and returns it as a cache item (Body
// copied, Seq and Expires unset).
func parseStored(der []byte, a *authority, r *ca.Record) (Item, bool) {
	var it Item
	in := cryptobyte.String(der)
	var resp, rb, octets, basic, status cryptobyte.String
	var oid cryptobyte.String
	if !in.ReadASN1(&resp, cbasn1.SEQUENCE) || !resp.ReadASN1(&status, cbasn1.ENUM) || len(status) != 1 || status[0] != 0 ||
		!resp.ReadASN1(&rb, cbasn1.Tag(0).ContextSpecific().Constructed()) || !rb.ReadASN1(&rb, cbasn1.SEQUENCE) ||
		!rb.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) || !bytes.Equal(oid, oidBasicDER[2:]) ||
		!rb.ReadASN1(&octets, cbasn1.OCTET_STRING) || !octets.ReadASN1(&basic, cbasn1.SEQUENCE) {
		return it, false
	}
	signed := []byte(basic)
	var tbsFull, tbs, alg, sig cryptobyte.String
	if !basic.ReadASN1Element(&tbsFull, cbasn1.SEQUENCE) || !basic.ReadASN1Element(&alg, cbasn1.SEQUENCE) ||
		!basic.ReadASN1Element(&sig, cbasn1.BIT_STRING) {
		return it, false
	}
	body := signed[:len(signed)-len(basic)] // tbsResponseData, signatureAlgorithm, signature
	k := a.keyOf(body)
	if k == nil || !bytes.Equal(alg, k.sigAlg) {
		return it, false
	}
	tbs = tbsFull
	var responderID, produced, list, one, certID cryptobyte.String
	if !tbs.ReadASN1(&tbs, cbasn1.SEQUENCE) || !tbs.ReadASN1Element(&responderID, cbasn1.Tag(2).ContextSpecific().Constructed()) ||
		!bytes.Equal(responderID, k.responder) || !tbs.ReadASN1(&produced, cbasn1.GeneralizedTime) ||
		!tbs.ReadASN1(&list, cbasn1.SEQUENCE) || !list.ReadASN1(&one, cbasn1.SEQUENCE) || !list.Empty() ||
		!one.ReadASN1(&certID, cbasn1.SEQUENCE) {
		return it, false
	}
	id, err := parseCertID(certID)
	if err != nil || id.Hash != crypto.SHA1 || !bytes.Equal(id.KeyHash, a.keyHash[0]) {
		return it, false
	}
	if sn, ok := id.Serial(); !ok || sn != r.Serial {
		return it, false
	}
	var thisUpdate, nextUpdate time.Time
	var tag cbasn1.Tag
	var st cryptobyte.String
	if !one.ReadAnyASN1(&st, &tag) {
		return it, false
	}
	switch tag {
	case cbasn1.Tag(0).ContextSpecific():
		it.Status = StatusGood
	case cbasn1.Tag(1).ContextSpecific().Constructed():
		it.Status = StatusRevoked
		var revokedAt time.Time
		var reasonField, reason cryptobyte.String
		if !st.ReadASN1GeneralizedTime(&revokedAt) || !st.ReadASN1(&reasonField, cbasn1.Tag(0).ContextSpecific().Constructed()) ||
			!reasonField.ReadASN1(&reason, cbasn1.ENUM) || len(reason) != 1 {
			return it, false
		}
		it.RevokedAt, it.Reason = uint32(clampUnix(revokedAt)), reason[0]
	default:
		return it, false
	}
	var next cryptobyte.String
	if !one.ReadASN1GeneralizedTime(&thisUpdate) || !one.ReadASN1(&next, cbasn1.Tag(0).ContextSpecific().Constructed()) ||
		!next.ReadASN1GeneralizedTime(&nextUpdate) {
		return it, false
	}
	// It must say what the store says now.
	want := StatusGood
	var wantReason ca.Reason
	switch r.Status {
	case ca.Revoked:
		want, wantReason = StatusRevoked, r.Reason
	case ca.OnHold:
		want, wantReason = StatusRevoked, ca.CertificateHold
	}
	if it.Status != want || (want == StatusRevoked && (ca.Reason(it.Reason) != wantReason || int64(it.RevokedAt) != clampUnix(r.RevokedAt))) {
		return it, false
	}
	it.ProducedAt, it.NextUpdate = uint32(clampUnix(thisUpdate)), uint32(clampUnix(nextUpdate))
	it.Body = bytes.Clone(body)
	return it, true
}
