// Package audit is jpkica's tamper-evident audit log.
//
// Every entry carries the SHA-256 hash of the entry before it in its chain,
// so a chain of entries can be verified from the first: an entry that was
// edited, removed or moved breaks the chain at that point, and the Verifier
// names it with an error wrapping ErrBroken. The log records what an auditor
// needs (who did what to which certificate, when, and why, named by an
// Action constant); it never records PINs or key material, and personal data
// only as identifiers.
//
// # Chains and anchors
//
// The log is a set of chains, one per writer, so that writers never wait on
// one another. The chain MainChain is the log as it was before there were
// several (and SQLite's only chain); its entries hash as they always did. A
// writer's chain opens with an ActionAuditOpen entry, and writers append
// ActionAuditAnchor entries from time to time; both name the current head
// (chain, seq, hash) of other chains in their Detail (AnchorDetail). A chain
// cut short at its end is still a valid chain, but an anchor written later
// in another chain names an entry that is no longer there, and the Verifier
// reports it. The newest entries of the newest chains are named by no anchor
// yet: a head kept outside the database (Expect) covers them.
//
// Entries are appended by the store inside the same database transaction as
// the state change they describe; this package only defines the entry, its
// canonical encoding and the chain rules. Seal is safe for concurrent use; a
// Verifier is one reader's and is not.
package audit

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Entry is one audit record.
type Entry struct {
	ID      int64           // the store's position in the whole log, for paging; not hashed
	Chain   string          // the writer's chain ("" is MainChain)
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
	ActionAuditOpen            Action = "audit.open"            // a writer's chain begun; names other chains' heads
	ActionAuditAnchor          Action = "audit.anchor"          // a cross-anchor: names other chains' heads
)

// MainChain is the chain of a log written before it had several, and the
// only chain of a SQLite store. Its entries' hashes do not cover the chain's
// name, so logs written before chains existed still verify.
const MainChain = "main"

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
	if e.Chain != "" && e.Chain != MainChain {
		// Only after every other field: an encoding with the chain is
		// longer than any without, so the two never coincide.
		field([]byte(e.Chain))
	}
	return h.Sum(nil)
}

// Anchor names one entry of a chain by its position and hash: a head the
// store recorded, a head kept outside the database, or a claim in an
// ActionAuditOpen or ActionAuditAnchor entry.
type Anchor struct {
	Chain string `json:"chain"`
	Seq   int64  `json:"seq"`
	Hash  []byte `json:"hash"` // base64 in JSON
}

// String is CHAIN:SEQ:HASH in hex, as `jpkica audit verify` prints heads.
func (a Anchor) String() string { return fmt.Sprintf("%s:%d:%x", chainName(a.Chain), a.Seq, a.Hash) }

// AnchorDetail is the Detail of an ActionAuditOpen or ActionAuditAnchor
// entry.
type AnchorDetail struct {
	Writer string   `json:"writer,omitempty"` // who writes the chain (host and process), in the open entry
	Heads  []Anchor `json:"heads"`            // other chains' heads when the entry was written
}

// Anchors returns the heads that e names: nil for an entry that is neither
// an ActionAuditOpen nor an ActionAuditAnchor.
func Anchors(e Entry) ([]Anchor, error) {
	if e.Action != ActionAuditOpen && e.Action != ActionAuditAnchor {
		return nil, nil
	}
	var d AnchorDetail
	if err := json.Unmarshal(e.Detail, &d); err != nil {
		return nil, fmt.Errorf("%w: anchor entry %s:%d: %v", ErrBroken, chainName(e.Chain), e.Seq, err)
	}
	return d.Heads, nil
}

func chainName(c string) string {
	if c == "" {
		return MainChain
	}
	return c
}

// Verifier checks entries one at a time. Each chain's entries must come in
// seq order; the chains may be interleaved (the store's ID order is fine).
// Heads to check (the store's recorded heads, the anchors in the log, heads
// kept outside it) are given to Expect before the walk, and Finish reports
// any that the walk did not meet: entries removed from a chain's end.
type Verifier struct {
	chains map[string]*Entry // the last entry of each chain
	expect map[position]expectation
	n      int64
}

type position struct {
	chain string
	seq   int64
}

type expectation struct {
	hash []byte
	by   string
}

// Expect records that the chain a.Chain must hold entry a.Seq with hash
// a.Hash; by names who says so, for the error. Call it before Next meets
// that entry. Two expectations that disagree on one entry are an error
// (a forged anchor, or a forged head).
func (v *Verifier) Expect(a Anchor, by string) error {
	p := position{chainName(a.Chain), a.Seq}
	if last := v.chains[p.chain]; last != nil && last.Seq >= p.seq {
		return fmt.Errorf("audit: expectation for entry %s:%d given after the walk passed it", p.chain, p.seq)
	}
	if v.expect == nil {
		v.expect = make(map[position]expectation)
	}
	if old, ok := v.expect[p]; ok {
		if !bytes.Equal(old.hash, a.Hash) {
			return fmt.Errorf("%w: %s and %s disagree on entry %s:%d", ErrBroken, old.by, by, p.chain, p.seq)
		}
		return nil
	}
	v.expect[p] = expectation{hash: a.Hash, by: by}
	return nil
}

// Next checks e against the entries of its chain seen so far, and against
// what was expected of it. The first error names the first entry that was
// changed, removed or reordered.
func (v *Verifier) Next(e Entry) error {
	name := chainName(e.Chain)
	last := v.chains[name]
	want := int64(1)
	wantPrev := Genesis
	if last != nil {
		want = last.Seq + 1
		wantPrev = last.Hash
	}
	switch {
	case e.Seq != want:
		return fmt.Errorf("%w: entry %s:%d found where entry %d belongs (removed or reordered)", ErrBroken, name, e.Seq, want)
	case !bytes.Equal(e.Prev, wantPrev):
		return fmt.Errorf("%w: entry %s:%d does not follow entry %d (removed, reordered or edited)", ErrBroken, name, e.Seq, want-1)
	case !bytes.Equal(e.Hash, hash(&e)):
		return fmt.Errorf("%w: entry %s:%d was changed after it was written", ErrBroken, name, e.Seq)
	case e.Seq == 1 && name != MainChain && e.Action != ActionAuditOpen:
		return fmt.Errorf("%w: chain %s does not begin with %s", ErrBroken, name, ActionAuditOpen)
	}
	p := position{name, e.Seq}
	if x, ok := v.expect[p]; ok {
		if !bytes.Equal(x.hash, e.Hash) {
			return fmt.Errorf("%w: entry %s:%d differs from the one %s names", ErrBroken, name, e.Seq, x.by)
		}
		delete(v.expect, p)
	}
	if v.chains == nil {
		v.chains = make(map[string]*Entry)
	}
	c := e
	v.chains[name] = &c
	v.n++
	return nil
}

// Finish reports the first expected entry that the walk did not meet: a
// chain that ends before an entry its recorded head, an anchor in another
// chain, or a head kept outside the database names.
func (v *Verifier) Finish() error {
	missing := make([]position, 0, len(v.expect))
	for p := range v.expect {
		missing = append(missing, p)
	}
	if len(missing) == 0 {
		return nil
	}
	slices.SortFunc(missing, func(a, b position) int {
		return cmp.Or(strings.Compare(a.chain, b.chain), cmp.Compare(a.seq, b.seq))
	})
	p := missing[0]
	var end int64
	if last := v.chains[p.chain]; last != nil {
		end = last.Seq
	}
	return fmt.Errorf("%w: chain %s ends at entry %d, but %s names entry %d (entries removed from the end, or the head rewritten)",
		ErrBroken, p.chain, end, v.expect[p].by, p.seq)
}

// Count is the number of entries verified so far, in all chains.
func (v *Verifier) Count() int64 { return v.n }

// Chains is the number of chains seen so far.
func (v *Verifier) Chains() int { return len(v.chains) }
