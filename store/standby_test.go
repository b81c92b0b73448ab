package store

import (
	"context"
	"errors"
	"math/big"
	"testing"

	"github.com/jpkica/jpkica/ca"
	"github.com/jpkica/jpkica/internal/pgcluster"
)

// TestHotStandby: a store opens on a hot standby once the primary's store
// has migrated it, checking the migrations instead of running them, and
// reads what the primary committed; a standby whose primary was never
// migrated is refused as unavailable, with what to do.
func TestHotStandby(t *testing.T) {
	c := pgcluster.Start(t, pgcluster.Options{Standbys: 1})
	ctx := context.Background()
	if _, err := Open(ctx, c.Standbys[0].DSN()); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("Open on the standby of an empty primary = %v, want ErrUnavailable", err)
	}
	primary := mustOpen(t, c.Primary.DSN())
	r := record(t, big.NewInt(7), "card-standby")
	mustInsert(t, primary, issuance(r))
	c.CatchUp()
	standby := mustOpen(t, c.Standbys[0].DSN())
	got, err := standby.Certificate(ctx, r.Serial)
	if err != nil || got.Serial != r.Serial {
		t.Fatalf("reading on the standby: %v, %v", got.Serial, err)
	}
	seq, serial, err := standby.NewestChange(ctx)
	if err != nil || serial != r.Serial || seq == 0 {
		t.Fatalf("NewestChange on the standby: %d %v %v", seq, serial, err)
	}
	if _, err := standby.InsertCertificate(ctx, issuance(record(t, big.NewInt(8), "card-standby-2"))); !errors.Is(err, ca.ErrUnavailable) {
		t.Fatalf("a write on the standby = %v, want ErrUnavailable", err)
	}
}
