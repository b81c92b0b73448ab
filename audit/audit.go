// Package audit is jpkica's tamper-evident audit log.
//
// Every entry carries the SHA-256 hash of the entry before it (Seal sets
// it), so a chain of entries can be verified from the first: an entry that
// was edited, removed or moved breaks the chain at that point, and a
// Verifier, given the entries in order, names it with an error wrapping
// ErrBroken; CheckHead catches entries removed from the end. The log records
// what an auditor needs (who did what to which certificate, when, and why,
// named by an Action constant); it never records PINs or key material, and
// personal data only as identifiers.
//
// Entries are appended by the store inside the same database transaction as
// the state change they describe; this package only defines the entry, its
// canonical encoding and the chain rules. Seal is safe for concurrent use; a
// Verifier is one reader's and is not.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Entry is one audit record.
type Entry struct {
	Seq     int64           // position in the chain, from 1
	Time    time.Time       // when the change was made (UTC, microseconds)
	Actor   string          // who: "counter:302015:terminal-7", "admin:alice", "system"
	Action  Action          // what: ActionCertificateIssue, ...
	Subject string          // on what: a serial in hex, an issuer ID, a card ID
	Detail  json.RawMessage // structured detail; never secrets
	Prev    []byte          // hash of entry Seq-1 (32 zero bytes for the first)
	Hash    []byte          // hash of this entry, over all fields above
}

// Action names what an entry records. Every writer uses the constants
// below; the names are stable, since auditors search the log by them.
type Action string

// The actions jpkica records.
const (
	ActionCertificateIssue     Action = "certificate.issue"     // a card certificate stored, with its issuance
	ActionCertificateDiscard   Action = "certificate.discard"   // signed, refused by the store: on record, revoked, never handed out
	ActionCertificateSupersede Action = "certificate.supersede" // revoked by a newer issuance (superseded)
	ActionCertificateRevoke    Action = "certificate.revoke"    // revoked by a call or a register event
	ActionCertificateHold      Action = "certificate.hold"      // put on hold (a lost card)
	ActionResidentDeceased     Action = "resident.deceased"     // the register reported the resident dead
	ActionResidentRemoved      Action = "resident.removed"      // the register removed the resident
	ActionResidentRegistered   Action = "resident.registered"   // the resident is in the register again
	ActionProxyOpen            Action = "proxy.open"            // a proxy application opened
	ActionProxyUse             Action = "proxy.use"             // a proxy answer used for an issuance
	ActionProxyRelease         Action = "proxy.release"         // a proxy answer given back after a failed issuance
	ActionClientIssue          Action = "client.issue"          // a terminal certificate issued
	ActionIssuerCreate         Action = "issuer.create"         // an issuer generation made in the key ceremony
	ActionClientCACreate       Action = "client_ca.create"      // the client CA made in the key ceremony
	ActionResponderCreate      Action = "ocsp_responder.create" // a delegated OCSP responder made
	ActionResponderRenew       Action = "ocsp_responder.renew"  // a delegated OCSP responder replaced by a new one
	ActionCRLPublish           Action = "crl.publish"           // a CRL signed and published
	ActionOCSPSign             Action = "ocsp.sign"             // OCSP responses signed, counted per responder key
)

// Genesis is the Prev of the first entry.
var Genesis = make([]byte, sha256.Size)

// ErrBroken reports a chain that does not verify.
var ErrBroken = errors.New("audit chain broken")

// Seal sets e's Seq, Prev and Hash so that it follows prev (nil for the first
// entry). Time is truncated to microseconds, the precision both databases keep.
func Seal(e *Entry, prev *Entry) {
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	if prev == nil {
		e.Seq = 1
		e.Prev = Genesis
	} else {
		e.Seq = prev.Seq + 1
		e.Prev = prev.Hash
	}
	e.Hash = hash(e)
}

// hash is SHA-256 over a length-prefixed encoding of every field but Hash, so
// no two different entries share an encoding.
func hash(e *Entry) []byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.Time.UnixMicro()))
	h.Write(n[:])
	field([]byte(e.Actor))
	field([]byte(e.Action))
	field([]byte(e.Subject))
	field(e.Detail)
	field(e.Prev)
	return h.Sum(nil)
}

// Verifier checks entries one at a time, in the order they were stored.
type Verifier struct {
	last *Entry
	n    int64
}

// Next checks e against the entries seen so far. The first error names the
// first entry that was changed, removed or reordered.
func (v *Verifier) Next(e Entry) error {
	want := int64(1)
	wantPrev := Genesis
	if v.last != nil {
		want = v.last.Seq + 1
		wantPrev = v.last.Hash
	}
	switch {
	case e.Seq != want:
		return fmt.Errorf("%w: entry %d found where entry %d belongs (removed or reordered)", ErrBroken, e.Seq, want)
	case !bytes.Equal(e.Prev, wantPrev):
		return fmt.Errorf("%w: entry %d does not follow entry %d (removed, reordered or edited)", ErrBroken, e.Seq, want-1)
	case !bytes.Equal(e.Hash, hash(&e)):
		return fmt.Errorf("%w: entry %d was changed after it was written", ErrBroken, e.Seq)
	}
	c := e
	v.last = &c
	v.n++
	return nil
}

// Count is the number of entries verified so far.
func (v *Verifier) Count() int64 { return v.n }

// Last is the last entry verified, or nil before the first.
func (v *Verifier) Last() *Entry { return v.last }

// CheckHead checks that the chain ends at the head the store recorded with
// its last write (seq 0 and no hash for an empty log). A chain alone cannot
// show that its last entries were deleted; the recorded head can.
func (v *Verifier) CheckHead(seq int64, hash []byte) error {
	var lastSeq int64
	var lastHash []byte
	if v.last != nil {
		lastSeq, lastHash = v.last.Seq, v.last.Hash
	}
	if lastSeq != seq || !bytes.Equal(lastHash, hash) {
		return fmt.Errorf("%w: the log ends at entry %d but its recorded head is entry %d (entries removed from the end, or the head rewritten)", ErrBroken, lastSeq, seq)
	}
	return nil
}
