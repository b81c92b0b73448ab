// Package store is jpkica's system of record: certificates, issuers, OCSP
// responders and responses, CRL numbers, idempotency keys and the hash-chained
// audit log, in SQLite (the embedded default) or PostgreSQL (for more than one
// node), through sqlx. A *Store satisfies the small interfaces its users
// define for what they read and write: ca.Store and ca.LifecycleStore,
// crl.Store, ocsp.Source, ocsp.ResponseStore and ocsp.Auditor, api.Store
// and responderwatch.Lister.
//
// # Compatibility with cfssl
//
// The certificates and ocsp_responses tables keep the column names and
// meanings of cfssl's certdb, so cfssl's certdb/sql accessor reads a jpkica
// store: serial_number is the decimal serial, authority_key_identifier the
// lower-case hex of the issuer's subject key identifier, ca_label the issuer
// ID, status "good" or "revoked" with the RFC 5280 CRLReason in reason (a hold
// is "revoked" with reason certificateHold), expiry the notAfter, and
// ocsp_responses.body the DER response. jpkica's own columns follow them:
// serial_hex (zero-padded to 40 hex digits, so it sorts as the number),
// cert_type, card_id, resident_id, municipality, facts_hash, der, synthetic and
// change_seq.
//
// # Transactions, the audit chain and change_seq
//
// Every write that changes certificate state (issuance, superseding, status
// changes, issuers, responders, standalone audit events) is one transaction
// that first takes the head of the audit chain (a one-row table, locked FOR
// UPDATE on PostgreSQL; SQLite write transactions begin IMMEDIATE), appends its
// audit entries with audit.Seal and commits them with the change. Writers on
// several nodes therefore produce one unbroken chain, and change_seq (a
// sequence on PostgreSQL, max+1 on SQLite) increases in commit order, so a
// follower that polls "change_seq > last seen" misses nothing.
//
// # Errors
//
// Errors wrap the ca sentinels: ca.ErrNotFound for a missing row,
// ca.ErrConflict for a unique violation (a serial already stored, a reused
// idempotency key, a duplicate issuer), ca.ErrInvalid for input the store
// refuses, and ca.ErrUnavailable when the database cannot be reached or is
// closed, or a transaction lost a deadlock or serialization race (safe to
// retry). Match them with errors.Is. The text of a missing row or a
// violated constraint is the sentinel's and the step's, never the
// driver's: no SQL reaches an API answer or a command's output (errors.As
// still finds the driver's error).
//
// # Concurrency
//
// A *Store is safe for concurrent use by many goroutines, and several
// processes may open the same database (PostgreSQL: any number of nodes;
// SQLite: processes on one machine, serialized by SQLite's write lock and a
// five-second busy timeout). Migrations run on Open, each in its own
// transaction, under an advisory lock on PostgreSQL.
//
// The store never reads the process clock for what it stores: the times
// come from its caller (only crl_numbers.updated_at and
// schema_migrations.applied_at are the database's CURRENT_TIMESTAMP). The
// SQLite WAL checkpoints run on a timer of their own.
package store
