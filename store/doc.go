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
// # Transactions, the audit chains and change_seq
//
// Every write that changes state (issuance, superseding, status changes,
// issuers, responders, standalone audit events) is one transaction that
// appends its audit entries with audit.Seal and commits them with the
// change. The entries go to a chain of the transaction's own (auditlog.go):
// on PostgreSQL each Store keeps a pool of chains, one per concurrent write
// transaction, each with its head row in audit_heads, locked FOR UPDATE by
// the one transaction using it, so writers on one node or many never wait
// on a shared audit head. Chains name one another's heads in open and
// anchor entries, which VerifyAudit checks. On SQLite every write appends
// to the one chain audit.MainChain, under SQLite's write lock.
//
// What orders what:
//
//   - Within a chain, appends are in seq order: the chain's head row is
//     held from the read of the head to commit.
//   - change_seq (a sequence on PostgreSQL, max+1 on SQLite) increases in
//     commit order, so a follower that polls "change_seq > last seen"
//     misses nothing. On SQLite the write lock orders everything. On
//     PostgreSQL the transactions that move change_seq (certificate
//     inserts, superseding, status changes, register events, bulk inserts)
//     take one transaction-scoped advisory lock, the change_seq lock,
//     before they draw a number and hold it to commit; a trigger on
//     certificates takes it before each row's change_seq is drawn and
//     draws the number again after it, so even a path that forgot the lock
//     cannot commit a smaller change_seq after a greater one. Those
//     transactions take it after their resident and card locks and before
//     their first certificate write (chain.orderChanges), so they never
//     hold a certificate row while they wait for it. Writes that move no
//     change_seq (standalone audit entries such as CRL and OCSP signing,
//     CRL numbers, issuers and responders, proxy applications) take no
//     shared lock.
//   - The audit log's ID, the order of GET /v1/audit, is drawn at insert
//     and follows seq within a chain, but not commit order across chains.
//
// # Errors
//
// Errors wrap the ca sentinels: ca.ErrNotFound for a missing row,
// ca.ErrConflict for a unique violation (a serial already stored, a reused
// idempotency key, a duplicate issuer), ca.ErrInvalid for input the store
// refuses, and ca.ErrUnavailable when the database cannot be reached or is
// closed, is read-only (SQLSTATE 25006: a hot standby, or a primary made
// read-only), or a transaction lost a deadlock or serialization race
// (40P01, 40001) as many times as the store runs it (three): all safe to
// retry. Match them with errors.Is. The text of a missing row or a
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
