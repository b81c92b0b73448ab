package crl

import (
	"context"
	"math/big"
	"time"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
)

// Lister streams the revoked (and held) certificates of an issuer whose
// certificates expire after notExpiredAt, in serial order; municipality ""
// means every partition. It must stream: memory must not grow with the
// number of rows (no sorting in the client). store.Store satisfies it.
type Lister interface {
	CRLEntries(ctx context.Context, issuerID, municipality string, notExpiredAt time.Time, fn Yield) error
}

// ChangeFeed finds what changed since a base CRL. Certificate changes carry
// a sequence number that increases in commit order.
type ChangeFeed interface {
	// CRLChangeMark is the sequence number of the last committed
	// revocation or hold, and the certificate it changed (a zero serial
	// when there is none).
	CRLChangeMark(ctx context.Context) (int64, ca.Serial, error)
	// ChangeSeqOf is the sequence number of a certificate's last change:
	// ca.ErrNotFound when the store does not hold it.
	ChangeSeqOf(ctx context.Context, serial ca.Serial) (int64, error)
	// RevokedChangesSince streams, in serial order, the revoked (and held)
	// certificates of an issuer's partition that changed after afterSeq and
	// expire after notExpiredAt.
	RevokedChangesSince(ctx context.Context, issuerID, municipality string, afterSeq int64, notExpiredAt time.Time, fn Yield) error
	// CRLChanges lists, per issuer and municipality, the sequence number of
	// the last revocation or hold after afterSeq.
	CRLChanges(ctx context.Context, afterSeq int64) ([]Change, error)
}

// Change says that an issuer's partition has revocations up to Seq.
type Change struct {
	Issuer    string
	Partition string
	Seq       int64
}

// Numberer allocates CRL numbers, strictly increasing per issuer and
// partition ("" for the full CRL) across processes.
type Numberer interface {
	NextCRLNumber(ctx context.Context, issuerID, partition string) (*big.Int, error)
}

// Partitioner lists the municipalities with revoked certificates of an
// issuer.
type Partitioner interface {
	CRLPartitions(ctx context.Context, issuerID string) ([]string, error)
}

// Auditor records CRL publications in the audit log.
type Auditor interface {
	AppendAudit(ctx context.Context, e audit.Entry) error
}

// Store is everything the Updater reads and writes; store.Store satisfies
// it.
type Store interface {
	Lister
	ChangeFeed
	Numberer
	Partitioner
	Auditor
}

// ListerSource is the Source of one CRL: the revoked certificates of an
// issuer's partition ("" for all) not expired at notExpiredAt.
func ListerSource(l Lister, issuerID, municipality string, notExpiredAt time.Time) Source {
	return func(ctx context.Context, yield Yield) error {
		return l.CRLEntries(ctx, issuerID, municipality, notExpiredAt, yield)
	}
}

// changesSource is the Source of a delta CRL.
func changesSource(f ChangeFeed, issuerID, municipality string, afterSeq int64, notExpiredAt time.Time) Source {
	return func(ctx context.Context, yield Yield) error {
		return f.RevokedChangesSince(ctx, issuerID, municipality, afterSeq, notExpiredAt, yield)
	}
}
