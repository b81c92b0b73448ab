// Package pgtest gives tests a private PostgreSQL schema.
//
// The server comes from JPKICA_TEST_POSTGRES_DSN (scripts/test sets it to
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable). Without it, DSN
// skips the test with a loud message, so a run without PostgreSQL says what it
// did not test. Each call makes a new schema and drops it when the test ends,
// so tests may run in parallel and repeatedly against one database.
package pgtest

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver
)

// Env names the environment variable with the PostgreSQL DSN.
const Env = "JPKICA_TEST_POSTGRES_DSN"

// DSN returns a DSN whose search_path is a fresh, empty schema.
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(Env)
	if base == "" {
		t.Skipf("!!! %s is not set: SKIPPING this PostgreSQL test. Set it, e.g. %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' !!!", Env, Env)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := fmt.Sprintf("jpkica_test_%x", b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		t.Fatalf("creating test schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("dropping test schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("options", "-csearch_path="+schema)
	u.RawQuery = q.Encode()
	return u.String()
}
