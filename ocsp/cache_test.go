package ocsp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

func testKey(i uint64) key {
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], i|1<<63)
	return makeKey(uint8(i%3), int(i%2), s[:])
}

func testBody(i uint64, gen int) []byte {
	return fmt.Appendf(nil, "response %d generation %d %s", i, gen, bytes.Repeat([]byte{byte(i)}, int(i%300)))
}

// TestCacheModel checks the cache against a map through inserts,
// replacements (which make chunks compact), refusals of older items and
// removals (backward shift).
func TestCacheModel(t *testing.T) {
	c := NewCache()
	type want struct {
		seq  int64
		body []byte
	}
	model := map[uint64]want{}
	rng := rand.New(rand.NewPCG(1, 2))
	const keys = 20000
	for step := range 300000 {
		i := rng.Uint64N(keys)
		k := testKey(i)
		switch op := rng.IntN(10); {
		case op < 7:
			seq := int64(rng.IntN(5))
			body := testBody(i, step)
			stored := c.put(k.bytes(), Item{Seq: seq, ProducedAt: uint32(step), Body: body, Status: StatusRevoked, Reason: 6})
			old, had := model[i]
			if shouldStore := !had || seq >= old.seq; stored != shouldStore {
				t.Fatalf("step %d: put stored=%v, want %v", step, stored, shouldStore)
			}
			if stored {
				model[i] = want{seq, body}
			}
		case op < 9:
			it, ok := c.get(k.bytes())
			w, had := model[i]
			if ok != had || (ok && (it.Seq != w.seq || !bytes.Equal(it.Body, w.body) || it.Reason != 6)) {
				t.Fatalf("step %d: get %v %v, want %v %v", step, ok, it.Seq, had, w.seq)
			}
		default:
			if removed := c.remove(k.bytes()); removed != (model[i].body != nil) {
				t.Fatalf("step %d: remove %v", step, removed)
			}
			delete(model, i)
		}
	}
	if c.Len() != len(model) {
		t.Fatalf("Len %d, model %d", c.Len(), len(model))
	}
	for i, w := range model {
		k := testKey(i)
		it, ok := c.get(k.bytes())
		if !ok || !bytes.Equal(it.Body, w.body) {
			t.Fatalf("key %d lost", i)
		}
	}
	arena, _ := c.Footprint()
	live := 0
	for _, w := range model {
		live += len(w.body) + recFixed + 9
	}
	// Compaction keeps dead space bounded (chunks are at most half dead).
	if arena > 3*live+numShards*maxChunk/4 {
		t.Fatalf("arena %d for %d live bytes", arena, live)
	}
}

// TestCacheMemory fills the cache with 1,000,000 entries the size of real
// responses' signed parts (what the cache keeps; the responder certificate is
// added when writing) and reports the bytes each entry costs, measured with
// runtime.ReadMemStats after GC: 250 octets with an ECDSA P-256 responder
// key, 440 with RSA-2048 (sizes seen in the load-test server's responses).
func TestCacheMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 1,000,000 entries")
	}
	for _, tc := range []struct {
		name string
		size int
	}{{"ECDSA-P256", 250}, {"RSA-2048", 440}} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 1_000_000
			body := bytes.Repeat([]byte{0x5a}, tc.size)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			c := NewCache()
			var serial [16]byte
			for i := range uint64(n) {
				binary.BigEndian.PutUint64(serial[:], i|1<<62)
				binary.BigEndian.PutUint64(serial[8:], i*0x9e3779b97f4a7c15)
				k := makeKey(1, 0, serial[:])
				c.put(k.bytes(), Item{Seq: int64(i), ProducedAt: 1, NextUpdate: 2, Body: body})
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			arena, index := c.Footprint()
			perEntry := float64(heap) / n
			t.Logf("1,000,000 entries, %d-octet signed part, 16-octet serial: heap %.1f MiB, %.0f bytes/entry (arena %.0f, index %.0f; record header and key %d)",
				tc.size, float64(heap)/(1<<20), perEntry, float64(arena)/n, float64(index)/n, recFixed+17)
			if perEntry > 1024 {
				t.Fatalf("%.0f bytes per entry", perEntry)
			}
			runtime.KeepAlive(c)
		})
	}
}

func BenchmarkCacheGet(b *testing.B) {
	c := NewCache()
	const n = 1 << 20
	body := bytes.Repeat([]byte{1}, 260)
	for i := range uint64(n) {
		k := testKey(i)
		c.put(k.bytes(), Item{Body: body})
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := uint64(rand.Uint32())
		for pb.Next() {
			i++
			k := testKey(i % n)
			if _, ok := c.get(k.bytes()); !ok {
				b.Fatal("miss")
			}
		}
	})
}
