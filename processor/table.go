package processor

import (
	"hash/maphash"
	"sync"
	"time"
)

// table is one input partition's memory of every key it holds an outcome
// for: the answer standing on enriched-company (to skip unchanged inputs and
// spend no credit twice), the source offset and profile version of the
// latest input applied (so a redelivered or older input never moves a key
// backwards), and the per-tenant counts the status topic shows.
//
// It is restored from the partition's enriched-company and dead letter
// partitions when the partition is assigned (restore.go), so it holds only
// what the instance owns: memory and ready time grow with the owned
// partitions, not with the topic. Entries are compact (a 64-bit key hash and
// a 48-byte state); a second 32-bit hash guards against hash collisions.
type table struct {
	mu      sync.Mutex
	entries map[uint64]tableEntry
	tenants map[uint32]*tenantCounts
	names   *interner
}

// Standing outcomes of a key, as on enriched-company.
const (
	outcomeNone uint8 = iota
	outcomeEnriched
	outcomeNotMatched
	outcomeSkipped
)

// tableEntry is what the table keeps per key.
type tableEntry struct {
	fingerprint uint64 // first 8 bytes of the standing answer's input fingerprint; 0 = none
	offset      int64  // source offset of the latest input applied
	version     int64  // profile version of that input (0 = unknown)
	answeredAt  int64  // unix ms of the standing answer
	check       uint32 // second hash of the key: a collision of both is ~2^-96
	tenant      uint32 // interned tenant id
	reason      uint32 // interned skip reason of a SKIPPED answer
	outcome     uint8  // outcome* of the standing answer
	failed      bool   // the latest input went to the dead letter topic
}

// tenantCounts are one tenant's distinct current profiles on the partition.
type tenantCounts struct {
	profiles, enriched, notMatched, failed int64
	skipped                                map[uint32]int64
	lastEnrichedAt                         int64
	dirty                                  bool
}

var (
	keySeed   = maphash.MakeSeed()
	checkSeed = maphash.MakeSeed()
)

// keyOf hashes a record key for the table.
func keyOf(key string) (uint64, uint32) {
	return maphash.String(keySeed, key), uint32(maphash.String(checkSeed, key))
}

func newTable(names *interner, sizeHint int) *table {
	return &table{entries: make(map[uint64]tableEntry, sizeHint), tenants: map[uint32]*tenantCounts{}, names: names}
}

// get returns a key's state, if the table holds one.
func (t *table) get(key string) (tableEntry, bool) {
	h, c := keyOf(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.entries[h]
	if !ok || s.check != c {
		return tableEntry{}, false
	}
	return s, true
}

// put sets a key's state and moves its tenant's counts along.
func (t *table) put(key string, s tableEntry) {
	h, c := keyOf(key)
	s.check = c
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.entries[h]; ok {
		t.count(old, -1)
	}
	t.entries[h] = s
	t.count(s, +1)
}

// remove forgets a key (its profile was deleted).
func (t *table) remove(key string) {
	h, c := keyOf(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.entries[h]; ok && old.check == c {
		t.count(old, -1)
		delete(t.entries, h)
	}
}

// count adds (sign +1) or takes away (-1) one key's contribution.
func (t *table) count(s tableEntry, sign int64) {
	tc := t.tenants[s.tenant]
	if tc == nil {
		tc = &tenantCounts{skipped: map[uint32]int64{}}
		t.tenants[s.tenant] = tc
	}
	tc.dirty = true
	tc.profiles += sign
	switch {
	case s.failed:
		tc.failed += sign
	case s.outcome == outcomeEnriched:
		tc.enriched += sign
	case s.outcome == outcomeNotMatched:
		tc.notMatched += sign
	case s.outcome == outcomeSkipped:
		tc.skipped[s.reason] += sign
		if tc.skipped[s.reason] == 0 {
			delete(tc.skipped, s.reason)
		}
	}
	if sign > 0 && !s.failed && (s.outcome == outcomeEnriched || s.outcome == outcomeNotMatched) && s.answeredAt > tc.lastEnrichedAt {
		tc.lastEnrichedAt = s.answeredAt
	}
}

// len is the number of keys held.
func (t *table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// tenantView is a tenant's counts as status shows them.
type tenantView struct {
	tenant                                 string
	profiles, enriched, notMatched, failed int64
	skipped                                int64
	skippedReasons                         map[string]int64
	lastEnrichedAt                         time.Time
}

// takeDirty returns the counts of tenants that changed since the last call
// (all of them with all=true) and marks them clean.
func (t *table) takeDirty(all bool) []tenantView {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []tenantView
	for id, tc := range t.tenants {
		if !tc.dirty && !all {
			continue
		}
		tc.dirty = false
		v := tenantView{tenant: t.names.name(id), profiles: tc.profiles, enriched: tc.enriched,
			notMatched: tc.notMatched, failed: tc.failed, skippedReasons: map[string]int64{}}
		for r, n := range tc.skipped {
			v.skipped += n
			v.skippedReasons[t.names.name(r)] = n
		}
		if tc.lastEnrichedAt > 0 {
			v.lastEnrichedAt = time.UnixMilli(tc.lastEnrichedAt).UTC()
		}
		out = append(out, v)
	}
	return out
}

// markDirty makes the next takeDirty report a tenant (e.g. its credits moved).
func (t *table) markDirty(tenant string) {
	id := t.names.id(tenant)
	t.mu.Lock()
	defer t.mu.Unlock()
	tc := t.tenants[id]
	if tc == nil {
		tc = &tenantCounts{skipped: map[uint32]int64{}}
		t.tenants[id] = tc
	}
	tc.dirty = true
}

// interner gives tenants and reason codes small, stable numbers for the
// life of the process, so table entries stay compact.
type interner struct {
	mu    sync.RWMutex
	ids   map[string]uint32
	names []string
}

func newInterner() *interner { return &interner{ids: map[string]uint32{"": 0}, names: []string{""}} }

func (in *interner) id(s string) uint32 {
	in.mu.RLock()
	id, ok := in.ids[s]
	in.mu.RUnlock()
	if ok {
		return id
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if id, ok := in.ids[s]; ok {
		return id
	}
	id = uint32(len(in.names))
	in.ids[s] = id
	in.names = append(in.names, s)
	return id
}

func (in *interner) name(id uint32) string {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if int(id) < len(in.names) {
		return in.names[id]
	}
	return ""
}
