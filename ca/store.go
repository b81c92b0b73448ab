package ca

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jpkica/jpkica/audit"
)

// Issuance is one certificate to be stored atomically: the record, the
// superseding of the certificates it replaces, the audit
// entry and the idempotency key all commit together or not at all.
type Issuance struct {
	Record Record
	// Supersede makes the issuance a card's: the store reads the
	// IssuanceState of the record in its transaction and applies Plan to
	// it, which refuses the issuance or names the certificates it
	// supersedes (revoked, reason superseded, at Record.IssuedAt).
	Supersede bool
	// CallerMunicipality is the calling counter's municipality: the
	// issuance supersedes only certificates that municipality issued.
	// Empty for an administrator, who may supersede any.
	CallerMunicipality string
	// IdempotencyKey, when set, is remembered with RequestHash and the serial
	// for the client that sent it (ClientID).
	IdempotencyKey string
	ClientID       string
	RequestHash    []byte
	Audit          audit.Entry
}

// StatusChange revokes or holds certificates, with one audit entry per
// certificate, in one transaction.
type StatusChange struct {
	Serials []Serial
	Status  Status // Revoked or OnHold
	Reason  Reason
	At      time.Time
	Audit   audit.Entry // template: Subject is set per serial
}

// IssuanceState is what the system of record holds, at one moment, about
// the card, the resident and the key of a card issuance: the input of
// Plan. The store reads it in the issuance's own transaction, and the
// Authority reads it before the issuer key signs, to refuse early.
type IssuanceState struct {
	// Card is the card's certificates of both card types that are live
	// (Record.Live) at the issuance time.
	Card []Record
	// Resident is the resident's live certificates of the issuance's type,
	// on any card.
	Resident []Record
	// SameKey is every certificate, in any status, that certifies the same
	// public key (Record.KeyHash).
	SameKey []Record
}

// IssuanceQuery names what an IssuanceState is read for.
type IssuanceQuery struct {
	Type       CertType
	CardID     string
	ResidentID string
	KeyHash    []byte // nil: SameKey is not read
	At         time.Time
}

// Query is the IssuanceQuery of an issuance's record.
func (in Issuance) Query() IssuanceQuery {
	r := in.Record
	return IssuanceQuery{Type: r.Type, CardID: r.CardID, ResidentID: r.ResidentID, KeyHash: r.KeyHash, At: r.IssuedAt}
}

// Plan applies the rules that keep a card one resident's, and a key one
// card's, to the state the store read (DOMAIN.md, "Who talks to the CA"):
//
//   - a card holding another resident's live certificate is ErrCardInUse;
//   - a card whose live certificates were issued with another card expiry
//     is ErrCardExpiry (a card with no live certificate is new, and takes
//     any expiry);
//   - a key certified for another card or another resident, in any status,
//     is ErrKeyReused;
//   - the certificates superseded are the live ones of the type on the
//     card, and the resident's held ones of the type on other (lost) cards:
//     a hold is never released. A counter supersedes only what its own
//     municipality issued: on the card, anything else is ErrCardInUse; on
//     a lost card, it stays on hold for that municipality or an
//     administrator.
//
// The errors never name another certificate: the caller may not see it.
// The serials come back in serial order.
func (in Issuance) Plan(st IssuanceState) ([]Serial, error) {
	r := in.Record
	var sup []Serial
	for _, c := range st.Card {
		switch {
		case c.ResidentID != r.ResidentID:
			return nil, fmt.Errorf("card %s: %w", r.CardID, ErrCardInUse)
		case !c.CardExpires.IsZero() && !r.CardExpires.IsZero() && c.CardExpires != r.CardExpires:
			return nil, fmt.Errorf("card %s, expiring %v: %w", r.CardID, r.CardExpires, ErrCardExpiry)
		case c.Type != r.Type:
		case in.CallerMunicipality != "" && c.Municipality != in.CallerMunicipality:
			return nil, fmt.Errorf("card %s: %w: it was issued by another municipality", r.CardID, ErrCardInUse)
		default:
			sup = append(sup, c.Serial)
		}
	}
	for _, c := range st.SameKey {
		if c.CardID != r.CardID || c.ResidentID != r.ResidentID {
			return nil, fmt.Errorf("card %s: %w", r.CardID, ErrKeyReused)
		}
	}
	for _, c := range st.Resident {
		if c.CardID != r.CardID && c.Status == OnHold && c.Type == r.Type &&
			(in.CallerMunicipality == "" || c.Municipality == in.CallerMunicipality) {
			sup = append(sup, c.Serial)
		}
	}
	slices.SortFunc(sup, func(a, b Serial) int { return a.Compare(b) })
	return slices.CompactFunc(sup, func(a, b Serial) bool { return a == b }), nil
}

// Store is the part of the system of record that issuance and the lifecycle
// rules use. store.Store satisfies it for SQLite and PostgreSQL.
type Store interface {
	// InsertCertificate stores an issuance. It returns the serials it
	// superseded. A serial already used by the issuer is ErrConflict.
	InsertCertificate(ctx context.Context, in Issuance) (superseded []Serial, err error)
	// Idempotent looks up a remembered idempotency key of a client:
	// ErrNotFound if there is none.
	Idempotent(ctx context.Context, clientID, key string) (requestHash []byte, serial Serial, err error)
	// Certificate finds one certificate by serial: ErrNotFound if none.
	Certificate(ctx context.Context, serial Serial) (Record, error)
	// CertificatesByCard and CertificatesByResident list records, newest first.
	CertificatesByCard(ctx context.Context, cardID string) ([]Record, error)
	CertificatesByResident(ctx context.Context, residentID string) ([]Record, error)
	// IssuanceState reads the state Plan decides a card issuance on,
	// outside any transaction.
	IssuanceState(ctx context.Context, q IssuanceQuery) (IssuanceState, error)
	// ChangeStatus applies a status change; a serial that is not good (or
	// held, for a revocation) is left as it is and not returned. An unknown
	// serial fails the whole change with ErrNotFound and changes nothing.
	ChangeStatus(ctx context.Context, ch StatusChange) (changed []Serial, err error)
}
