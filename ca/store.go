package ca

import (
	"context"
	"time"

	"github.com/jpkica/jpkica/audit"
)

// Issuance is one certificate to be stored atomically: the record, the
// superseding of the certificates it replaces, the audit
// entry and the idempotency key all commit together or not at all.
type Issuance struct {
	Record Record
	// Supersede revokes (reason superseded, at Record.IssuedAt) every good or
	// held certificate of Record.Type on Record.CardID, and every held one of
	// Record.ResidentID of that type on other (lost) cards: a hold is never
	// released.
	Supersede bool
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
	// ChangeStatus applies a status change; a serial that is not good (or
	// held, for a revocation) is left as it is and not returned. An unknown
	// serial fails the whole change with ErrNotFound and changes nothing.
	ChangeStatus(ctx context.Context, ch StatusChange) (changed []Serial, err error)
}
