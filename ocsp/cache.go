package ocsp

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"sync"
)

// Cache holds signed responses for tens of millions of certificates with
// little garbage-collector work and few bytes per entry. It is split into
// 256 shards, each with its own lock; a shard keeps
//
//   - an arena: a list of large []byte chunks that records are appended to
//     and never modified in place (so a reader may keep a slice of one after
//     the lock is released), and
//   - an open-addressing index (linear probing) of 16-byte slots holding the
//     key's 64-bit hash and the record's location, with no pointers.
//
// A record is: u16 record length, u8 key length, the key, u64 change_seq,
// u32 producedAt, u32 nextUpdate, u32 revocation time, u32 the
// certificate's notAfter (Unix seconds), u8
// CertStatus, u8 reason, then the signed part of the BasicOCSPResponse
// (tbsResponseData, signatureAlgorithm, signature). Replaced records are
// counted as dead, and a chunk more than half dead is compacted: its live
// records move to the newest chunk and the chunk is dropped.
//
// A Cache is safe for concurrent use.
type Cache struct {
	seed   maphash.Seed
	shards [numShards]shard
}

const (
	numShards    = 256
	maxKey       = 1 + 20 // kind octet and serial
	recFixed     = 2 + 1 + 8 + 4 + 4 + 4 + 4 + 1 + 1
	minChunk     = 16 << 10
	maxChunk     = 256 << 10
	maxRecord    = 0xffff
	maxLoadNum   = 3 // grow past 3/4 full
	maxLoadDenom = 4
)

type slot struct {
	hash uint64
	loc  uint64 // (chunk index + 1) << 32 | offset; 0 is an empty slot
}

type shard struct {
	mu     sync.RWMutex
	slots  []slot
	n      int
	chunks [][]byte // a chunk's len is its used part; nil when freed
	dead   []int
	cur    int
	next   int // size of the next chunk
	seed   maphash.Seed
}

// Item is a cached response with what the responder and the pre-signer need
// to know about it. Body aliases the cache's memory and must not be modified.
type Item struct {
	Seq        int64 // the store's change_seq of the status it reflects
	ProducedAt uint32
	NextUpdate uint32
	RevokedAt  uint32
	Expires    uint32 // the certificate's notAfter
	Status     CertStatus
	Reason     uint8
	Body       []byte
}

// NewCache makes an empty cache.
func NewCache() *Cache {
	c := &Cache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].seed = c.seed
	}
	return c
}

// key is a cache key: one octet for the issuer and CertID hash
// (index<<1 | hashIndex), then the serial's magnitude.
type key struct {
	b [maxKey]byte
	n uint8
}

func makeKey(issuer uint8, hashIdx int, serial []byte) key {
	var k key
	k.b[0] = issuer<<1 | uint8(hashIdx)
	k.n = uint8(1 + copy(k.b[1:], serial))
	return k
}

func (k *key) bytes() []byte { return k.b[:k.n] }

func (c *Cache) hash(k []byte) uint64 { return maphash.Bytes(c.seed, k) }

func (c *Cache) shardOf(h uint64) *shard { return &c.shards[h>>56] }

// find returns the slot index of k, or -1 with the index of the empty slot
// where it would go. s.slots must not be empty.
func (s *shard) find(h uint64, k []byte) (int, bool) {
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.loc == 0 {
			return int(i), false
		}
		if sl.hash == h && bytes.Equal(s.recKey(sl.loc), k) {
			return int(i), true
		}
	}
}

func (s *shard) rec(loc uint64) []byte {
	ch := s.chunks[loc>>32-1]
	off := uint32(loc)
	n := binary.LittleEndian.Uint16(ch[off:])
	return ch[off : off+uint32(n) : off+uint32(n)]
}

func (s *shard) recKey(loc uint64) []byte {
	r := s.rec(loc)
	return r[3 : 3+r[2]]
}

func decode(r []byte) Item {
	kl := int(r[2])
	m := r[3+kl:]
	return Item{
		Seq:        int64(binary.LittleEndian.Uint64(m)),
		ProducedAt: binary.LittleEndian.Uint32(m[8:]),
		NextUpdate: binary.LittleEndian.Uint32(m[12:]),
		RevokedAt:  binary.LittleEndian.Uint32(m[16:]),
		Expires:    binary.LittleEndian.Uint32(m[20:]),
		Status:     CertStatus(m[24]),
		Reason:     m[25],
		Body:       m[26:],
	}
}

// Get returns the item under k.
func (c *Cache) get(k []byte) (Item, bool) {
	h := c.hash(k)
	s := c.shardOf(h)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.slots) == 0 {
		return Item{}, false
	}
	i, ok := s.find(h, k)
	if !ok {
		return Item{}, false
	}
	return decode(s.rec(s.slots[i].loc)), true
}

// newer reports whether it should replace old: a later status, or the same
// status signed no earlier.
func newer(it, old *Item) bool {
	return it.Seq > old.Seq || (it.Seq == old.Seq && it.ProducedAt >= old.ProducedAt)
}

// put stores it under k unless the cache holds a newer one; it reports
// whether it stored.
func (c *Cache) put(k []byte, it Item) bool {
	size := recFixed + len(k) + len(it.Body)
	if size > maxRecord || len(k) > maxKey {
		return false
	}
	h := c.hash(k)
	s := c.shardOf(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.slots) == 0 {
		s.slots = make([]slot, 16)
	}
	i, found := s.find(h, k)
	if found {
		old := decode(s.rec(s.slots[i].loc))
		if !newer(&it, &old) {
			return false
		}
		oldLoc := s.slots[i].loc
		s.slots[i].loc = s.append(k, &it, size)
		s.kill(oldLoc)
		return true
	}
	s.slots[i] = slot{hash: h, loc: s.append(k, &it, size)}
	s.n++
	if s.n*maxLoadDenom > len(s.slots)*maxLoadNum {
		s.grow()
	}
	return true
}

// append writes a record to the current chunk, starting a new one when it
// is full, and returns its location.
func (s *shard) append(k []byte, it *Item, size int) uint64 {
	if len(s.chunks) == 0 || cap(s.chunks[s.cur])-len(s.chunks[s.cur]) < size {
		s.newChunk(size)
	}
	ch := s.chunks[s.cur]
	off := len(ch)
	ch = binary.LittleEndian.AppendUint16(ch, uint16(size))
	ch = append(ch, byte(len(k)))
	ch = append(ch, k...)
	ch = binary.LittleEndian.AppendUint64(ch, uint64(it.Seq))
	ch = binary.LittleEndian.AppendUint32(ch, it.ProducedAt)
	ch = binary.LittleEndian.AppendUint32(ch, it.NextUpdate)
	ch = binary.LittleEndian.AppendUint32(ch, it.RevokedAt)
	ch = binary.LittleEndian.AppendUint32(ch, it.Expires)
	ch = append(ch, byte(it.Status), it.Reason)
	ch = append(ch, it.Body...)
	s.chunks[s.cur] = ch
	return uint64(s.cur+1)<<32 | uint64(off)
}

func (s *shard) newChunk(size int) {
	if s.next == 0 {
		s.next = minChunk
	}
	n := max(s.next, size)
	if s.next < maxChunk {
		s.next *= 2
	}
	ch := make([]byte, 0, n)
	for i := range s.chunks {
		if s.chunks[i] == nil {
			s.chunks[i], s.dead[i], s.cur = ch, 0, i
			return
		}
	}
	s.chunks = append(s.chunks, ch)
	s.dead = append(s.dead, 0)
	s.cur = len(s.chunks) - 1
}

// kill counts a replaced or deleted record as dead, and compacts its chunk
// once more than half of it is.
func (s *shard) kill(loc uint64) {
	ci := int(loc>>32 - 1)
	s.dead[ci] += len(s.rec(loc))
	if ci != s.cur && s.dead[ci]*2 > cap(s.chunks[ci]) {
		s.compact(ci)
	}
}

// compact moves the live records of chunk ci to the current chunk and frees
// ci. Readers holding slices of ci keep it alive until they are done.
func (s *shard) compact(ci int) {
	ch := s.chunks[ci]
	for off := 0; off < len(ch); {
		n := int(binary.LittleEndian.Uint16(ch[off:]))
		loc := uint64(ci+1)<<32 | uint64(off)
		r := ch[off : off+n]
		k := r[3 : 3+r[2]]
		off += n
		i, ok := s.find(maphash.Bytes(s.seed, k), k)
		if !ok || s.slots[i].loc != loc {
			continue
		}
		it := decode(r)
		s.slots[i].loc = s.append(k, &it, n)
	}
	s.chunks[ci] = nil
	s.dead[ci] = 0
}

func (s *shard) grow() {
	old := s.slots
	s.slots = make([]slot, len(old)*2)
	mask := uint64(len(s.slots) - 1)
	for _, sl := range old {
		if sl.loc == 0 {
			continue
		}
		i := sl.hash & mask
		for s.slots[i].loc != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = sl
	}
}

// remove deletes k.
func (c *Cache) remove(k []byte) bool {
	return c.removeIf(k, func(*Item) bool { return true })
}

// removeBefore deletes k if its response reflects a change older than seq:
// a response that a newer one has not replaced meanwhile.
func (c *Cache) removeBefore(k []byte, seq int64) bool {
	return c.removeIf(k, func(it *Item) bool { return it.Seq < seq })
}

// removeIf deletes k if ok says so of its item (backward-shift deletion
// keeps probe chains intact).
func (c *Cache) removeIf(k []byte, ok func(*Item) bool) bool {
	h := c.hash(k)
	s := c.shardOf(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.slots) == 0 {
		return false
	}
	i, found := s.find(h, k)
	if !found {
		return false
	}
	loc := s.slots[i].loc
	if it := decode(s.rec(loc)); !ok(&it) {
		return false
	}
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j].loc != 0; j = (j + 1) & mask {
		home := int(s.slots[j].hash) & mask
		// Move j back to i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = slot{}
	s.n--
	s.kill(loc)
	return true
}

// clear empties the cache, shard by shard.
func (c *Cache) clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.slots, s.n, s.chunks, s.dead, s.cur, s.next = nil, 0, nil, nil, 0, 0
		s.mu.Unlock()
	}
}

// Len is the number of cached responses.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += s.n
		s.mu.RUnlock()
	}
	return n
}

// Footprint is the memory the cache holds: arena chunks (capacity) and
// index slots, in bytes.
func (c *Cache) Footprint() (arena, index int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		for _, ch := range s.chunks {
			arena += cap(ch)
		}
		index += len(s.slots) * 16
		s.mu.RUnlock()
	}
	return arena, index
}

// scan calls fn for every item of one shard under its read lock; fn must be
// quick and must not keep key.
func (c *Cache) scan(shard int, fn func(key []byte, it *Item)) {
	s := &c.shards[shard]
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sl := range s.slots {
		if sl.loc == 0 {
			continue
		}
		r := s.rec(sl.loc)
		it := decode(r)
		fn(r[3:3+r[2]], &it)
	}
}
