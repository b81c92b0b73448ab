package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"

	"github.com/jpkica/jpkica/audit"
	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/internal/pgtest"
)

// t0 is the tests' fixed clock.
var t0 = time.Date(2026, 5, 1, 10, 0, 0, 123456000, time.UTC)

// newDSN makes a fresh, empty database and returns its DSN.
type newDSN func(t testing.TB) string

func sqliteDSNs(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "jpkica.db")
}

// postgresDSNs gives each test its own schema (see internal/pgtest).
func postgresDSNs(t testing.TB) string { return pgtest.DSN(t) }

// noDriverText fails the test if err's text carries the text of a database
// driver error in its chain: no SQL may reach an API answer or a command's
// output. It reports whether the chain holds a driver error at all.
func noDriverText(t testing.TB, err error) bool {
	t.Helper()
	var causes []error
	if errors.Is(err, sql.ErrNoRows) {
		causes = append(causes, sql.ErrNoRows)
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		causes = append(causes, se)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		causes = append(causes, pe)
	}
	for _, c := range causes {
		if strings.Contains(err.Error(), c.Error()) {
			t.Errorf("the error shows the driver's text %q: %v", c.Error(), err)
		}
	}
	return len(causes) > 0
}

func mustOpen(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fixtures are one issuer certificate and one leaf certificate, made once.
type fixtures struct {
	issuer  ca.Issuer
	ski     []byte
	leafDER []byte
}

var (
	fixOnce sync.Once
	fix     fixtures
)

func testFixtures(t testing.TB) fixtures {
	fixOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		ski := sha256.Sum256(elliptic.MarshalCompressed(elliptic.P256(), key.X, key.Y))
		root := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{Country: []string{"JP"}, Organization: []string{"JPKI"}, OrganizationalUnit: []string{"JPKI for user authentication"}},
			NotBefore:             t0.Add(-time.Hour),
			NotAfter:              t0.AddDate(10, 0, 0),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			SubjectKeyId:          ski[:20],
		}
		rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		leaf := &x509.Certificate{
			SerialNumber: big.NewInt(2),
			Subject:      pkix.Name{Country: []string{"JP"}, CommonName: "ABCDEFGHIJKLMNOPQRSTUVW"},
			NotBefore:    t0,
			NotAfter:     t0.AddDate(5, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		leafDER, err := x509.CreateCertificate(rand.Reader, leaf, root, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		fix = fixtures{
			issuer: ca.Issuer{
				ID: "authentication-g1", Type: ca.Authentication, Generation: 1,
				KeyRef: "jpkica-authentication-g1", CertDER: rootDER, CreatedAt: t0.Add(-time.Hour),
			},
			ski:     ski[:20],
			leafDER: leafDER,
		}
	})
	return fix
}

// record is a good authentication certificate with serial n on a card.
func record(t testing.TB, n *big.Int, card string) ca.Record {
	f := testFixtures(t)
	return ca.Record{
		Serial:       ca.SerialFromBig(n),
		IssuerID:     f.issuer.ID,
		AKI:          f.ski,
		Type:         ca.Authentication,
		CardID:       card,
		ResidentID:   "resident-" + card,
		Municipality: "302015",
		NotBefore:    t0,
		NotAfter:     t0.AddDate(5, 0, 0),
		IssuedAt:     t0,
		Status:       ca.Good,
		DER:          f.leafDER,
	}
}

func issuance(r ca.Record) ca.Issuance {
	return ca.Issuance{
		Record:    r,
		Supersede: true,
		Audit: audit.Entry{
			Time:   r.IssuedAt,
			Actor:  "counter:302015:terminal-7",
			Action: audit.ActionCertificateIssue,
		},
	}
}

func mustInsert(t testing.TB, s *Store, in ca.Issuance) []ca.Serial {
	t.Helper()
	sup, err := s.InsertCertificate(context.Background(), in)
	if err != nil {
		t.Fatalf("InsertCertificate(%s): %v", in.Record.Serial, err)
	}
	return sup
}

// verifyChain checks the audit log with VerifyAudit and returns how many
// entries the store's callers added.
func verifyChain(t testing.TB, s *Store) int64 {
	t.Helper()
	if _, err := s.VerifyAudit(context.Background(), nil); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	return int64(len(auditEntries(t, s)))
}

// auditEntries returns the entries the store's callers added, in ID order:
// the chains' own open and anchor entries are left out.
func auditEntries(t testing.TB, s *Store) []audit.Entry {
	t.Helper()
	var es []audit.Entry
	if err := s.AuditEntries(context.Background(), func(e audit.Entry) error {
		if e.Action != audit.ActionAuditOpen && e.Action != audit.ActionAuditAnchor {
			es = append(es, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return es
}

func serials(ss []ca.Serial) string {
	var b strings.Builder
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.Hex())
	}
	return b.String()
}

func big1(n int64) *big.Int { return big.NewInt(n) }
