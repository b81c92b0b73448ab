package ocsp

import (
	"math"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// PresignState is what a Presigner holds and does, for an operator's page.
type PresignState struct {
	// Held is the number of signed responses in memory.
	Held int
	// Queued is the number of signing jobs waiting.
	Queued int
	// SignErrors counts the failed signings since start.
	SignErrors uint64
	// Oldest is the oldest producedAt the last refresh scan saw, and
	// Measured when that scan ran; both zero before the first scan (one
	// per Config.RefreshInterval), Oldest also when the cache was empty.
	Oldest, Measured time.Time
}

// State reports the pre-signer's state. It reads counters and what the
// last refresh scan recorded: it never walks the cache, so it is cheap to
// call on every page load. It is safe for concurrent use.
func (p *Presigner) State() PresignState {
	st := PresignState{Held: p.cache.Len(), Queued: len(p.urgent) + len(p.bulk)}
	var m dto.Metric
	if err := p.m.signErrors.Write(&m); err == nil && m.Counter != nil {
		st.SignErrors = uint64(m.Counter.GetValue())
	}
	if v := p.oldest.Load(); v != 0 {
		st.Measured = time.Unix(int64(v>>32), 0).UTC()
		if o := uint32(v); o != math.MaxUint32 {
			st.Oldest = time.Unix(int64(o), 0).UTC()
		}
	}
	return st
}
