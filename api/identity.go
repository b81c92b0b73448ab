package api

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/jpkica/jpkica/api/wire"
	"github.com/jpkica/jpkica/ca"
)

// Role is what a terminal certificate's subject Organization names.
type Role string

// The roles of API.md's table.
const (
	RoleCounter  Role = "counter"
	RoleRegister Role = "register"
	RoleLossline Role = "lossline"
	RoleAdmin    Role = "admin"
)

// Identity is the caller, from its verified client certificate.
type Identity struct {
	Role Role
	// Municipality is the subject OU: a counter's six-digit code.
	Municipality string
	Name         string // subject CN
	Serial       ca.Serial
	NotAfter     time.Time
}

// ClientID keys idempotency and rate limits: it survives the renewal of the
// terminal's certificate.
func (id Identity) ClientID() string {
	return string(id.Role) + ":" + id.Municipality + ":" + id.Name
}

// Actor names the caller in the audit log.
func (id Identity) Actor() string {
	if id.Municipality == "" {
		return string(id.Role) + ":" + id.Name
	}
	return string(id.Role) + ":" + id.Municipality + ":" + id.Name
}

// action is one thing the API lets somebody do.
type action int

const (
	actIssue action = iota + 1
	actRead
	actRevoke
	actHold
	actEvent
	actProxy
	actNotices
	actAudit
	actConsole
)

// permissions is API.md's role table. Counters are further limited to their
// own municipality by the handlers.
var permissions = map[action]map[Role]bool{
	actIssue:   {RoleCounter: true, RoleAdmin: true},
	actRead:    {RoleCounter: true, RoleAdmin: true},
	actRevoke:  {RoleCounter: true, RoleAdmin: true},
	actHold:    {RoleLossline: true, RoleAdmin: true},
	actEvent:   {RoleRegister: true, RoleAdmin: true},
	actProxy:   {RoleCounter: true, RoleAdmin: true},
	actNotices: {RoleCounter: true, RoleAdmin: true},
	actAudit:   {RoleAdmin: true},
	actConsole: {RoleAdmin: true},
}

// counterReasons are the revocation reasons a counter may give; admin may
// give any. certificateHold is the hold call's, and the CA-wide ones
// (cACompromise, aACompromise, privilegeWithdrawn) are admin's.
var counterReasons = map[ca.Reason]bool{
	ca.Unspecified: true, ca.KeyCompromise: true, ca.AffiliationChanged: true,
	ca.Superseded: true, ca.CessationOfOperation: true,
}

// identities checks client certificates: the chain to the client CA at the
// API's clock, then the certificate's status in the store. Answers are
// cached for ttl per certificate, so a revocation takes effect within ttl
// (at once for revocations made through this API).
type identities struct {
	roots *x509.CertPool
	store interface {
		Certificate(ctx context.Context, serial ca.Serial) (ca.Record, error)
	}
	clock func() time.Time
	ttl   time.Duration

	mu    sync.Mutex
	cache map[[32]byte]cachedIdentity
}

type cachedIdentity struct {
	id      Identity
	err     *apiError
	expires time.Time
}

const maxCachedIdentities = 10000

func (ids *identities) identify(r *http.Request) (Identity, *apiError) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return Identity{}, fail(http.StatusUnauthorized, wire.CodeClientCertRequired, "a client certificate is required")
	}
	leaf := r.TLS.PeerCertificates[0]
	key := sha256.Sum256(leaf.Raw)
	now := ids.clock()
	ids.mu.Lock()
	c, ok := ids.cache[key]
	ids.mu.Unlock()
	if ok && now.Before(c.expires) && (c.err != nil || now.Before(c.id.NotAfter)) {
		return c.id, c.err
	}
	id, aerr := ids.check(r.Context(), leaf, r.TLS.PeerCertificates[1:], now)
	if aerr != nil && aerr.status >= 500 {
		return id, aerr // do not cache a store outage
	}
	ids.mu.Lock()
	if len(ids.cache) >= maxCachedIdentities {
		clear(ids.cache)
	}
	ids.cache[key] = cachedIdentity{id: id, err: aerr, expires: now.Add(ids.ttl)}
	ids.mu.Unlock()
	return id, aerr
}

// forget drops the cached answers for a serial (after revoking it here).
func (ids *identities) forget(serial ca.Serial) {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	for k, c := range ids.cache {
		if c.id.Serial == serial {
			delete(ids.cache, k)
		}
	}
}

func (ids *identities) check(ctx context.Context, leaf *x509.Certificate, rest []*x509.Certificate, now time.Time) (Identity, *apiError) {
	inter := x509.NewCertPool()
	for _, c := range rest {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: ids.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return Identity{}, fail(http.StatusUnauthorized, wire.CodeClientExpired, "the client certificate has expired or is not yet valid")
		}
		return Identity{}, fail(http.StatusUnauthorized, wire.CodeUnknownClient, "the client certificate is not from the client CA: "+err.Error())
	}
	if len(leaf.Subject.Organization) != 1 || len(leaf.Subject.OrganizationalUnit) > 1 {
		return Identity{}, fail(http.StatusUnauthorized, wire.CodeUnknownClient, "the client certificate names no single role")
	}
	id := Identity{Role: Role(leaf.Subject.Organization[0]), Name: leaf.Subject.CommonName,
		Serial: ca.SerialFromBig(leaf.SerialNumber), NotAfter: leaf.NotAfter}
	if len(leaf.Subject.OrganizationalUnit) == 1 {
		id.Municipality = leaf.Subject.OrganizationalUnit[0]
	}
	switch id.Role {
	case RoleCounter:
		if !ca.ValidMunicipalityCode(id.Municipality) {
			return Identity{}, fail(http.StatusUnauthorized, wire.CodeUnknownClient, "a counter certificate without a municipality")
		}
	case RoleRegister, RoleLossline, RoleAdmin:
	default:
		return Identity{}, fail(http.StatusUnauthorized, wire.CodeUnknownClient, "unknown role "+string(id.Role))
	}
	rec, err := ids.store.Certificate(ctx, id.Serial)
	switch {
	case errors.Is(err, ca.ErrNotFound):
		return Identity{}, fail(http.StatusUnauthorized, wire.CodeUnknownClient, "the client certificate is not on record")
	case err != nil:
		return Identity{}, classify(err, wire.CodeConflict)
	case rec.Type != ca.Terminal || string(rec.DER) != string(leaf.Raw):
		return Identity{}, fail(http.StatusUnauthorized, wire.CodeUnknownClient, "the client certificate is not on record")
	case rec.Status != ca.Good:
		return Identity{}, fail(http.StatusUnauthorized, wire.CodeClientRevoked, "the client certificate is "+rec.Status.String())
	}
	return id, nil
}
