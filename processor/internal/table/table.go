// Package table is a partition's memory of its keys: each key's standing
// answer (outcome, input fingerprint, offset, time) in a compact entry, the
// tenants' counts of current profiles, and the enricher.state header that
// carries an answer's state on enriched-company and the DLQ, from which the
// table is restored.
package table

import (
	"hash/maphash"
	"sync"
	"time"
)

// Table is one input partition's memory of every key it holds an outcome
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
type Table struct {
	mu      sync.Mutex
	entries map[uint64]Entry
	tenants map[uint32]*tenantCounts
	names   *Interner
}

// Standing outcomes of a key, as on enriched-company.
const (
	OutcomeNone uint8 = iota
	OutcomeEnriched
	OutcomeNotMatched
	OutcomeSkipped
)

// Entry is what the table keeps per key.
type Entry struct {
	Fingerprint uint64 // first 8 bytes of the standing answer's input fingerprint; 0 = none
	Offset      int64  // source offset of the latest input applied
	Version     int64  // profile version of that input (0 = unknown)
	AnsweredAt  int64  // unix ms of the standing answer
	check       uint32 // second hash of the key: a collision of both is ~2^-96
	Tenant      uint32 // interned tenant id
	Reason      uint32 // interned skip reason of a SKIPPED answer
	Outcome     uint8  // outcome* of the standing answer
	Failed      bool   // the latest input went to the dead letter topic
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

// KeyOf hashes a record key for the table.
func KeyOf(key string) (uint64, uint32) {
	return maphash.String(keySeed, key), uint32(maphash.String(checkSeed, key))
}

func New(names *Interner, sizeHint int) *Table {
	return &Table{entries: make(map[uint64]Entry, sizeHint), tenants: map[uint32]*tenantCounts{}, names: names}
}

// Get returns a key's state, if the table holds one.
func (t *Table) Get(key string) (Entry, bool) {
	h, c := KeyOf(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.entries[h]
	if !ok || s.check != c {
		return Entry{}, false
	}
	return s, true
}

// Put sets a key's state and moves its tenant's counts along.
func (t *Table) Put(key string, s Entry) {
	h, c := KeyOf(key)
	s.check = c
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.entries[h]; ok {
		t.count(old, -1)
	}
	t.entries[h] = s
	t.count(s, +1)
}

// Remove forgets a key (its profile was deleted).
func (t *Table) Remove(key string) {
	h, c := KeyOf(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.entries[h]; ok && old.check == c {
		t.count(old, -1)
		delete(t.entries, h)
	}
}

// count adds (sign +1) or takes away (-1) one key's contribution.
func (t *Table) count(s Entry, sign int64) {
	tc := t.tenants[s.Tenant]
	if tc == nil {
		tc = &tenantCounts{skipped: map[uint32]int64{}}
		t.tenants[s.Tenant] = tc
	}
	tc.dirty = true
	tc.profiles += sign
	switch {
	case s.Failed:
		tc.failed += sign
	case s.Outcome == OutcomeEnriched:
		tc.enriched += sign
	case s.Outcome == OutcomeNotMatched:
		tc.notMatched += sign
	case s.Outcome == OutcomeSkipped:
		tc.skipped[s.Reason] += sign
		if tc.skipped[s.Reason] == 0 {
			delete(tc.skipped, s.Reason)
		}
	}
	if sign > 0 && !s.Failed && (s.Outcome == OutcomeEnriched || s.Outcome == OutcomeNotMatched) && s.AnsweredAt > tc.lastEnrichedAt {
		tc.lastEnrichedAt = s.AnsweredAt
	}
}

// Len is the number of keys held.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// TenantCounts is a tenant's counts as status shows them.
type TenantCounts struct {
	Tenant                                 string
	Profiles, Enriched, NotMatched, Failed int64
	Skipped                                int64
	SkippedReasons                         map[string]int64
	LastEnrichedAt                         time.Time
}

// TakeDirty returns the counts of tenants that changed since the last call
// (all of them with all=true) and marks them clean.
func (t *Table) TakeDirty(all bool) []TenantCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []TenantCounts
	for id, tc := range t.tenants {
		if !tc.dirty && !all {
			continue
		}
		tc.dirty = false
		v := TenantCounts{Tenant: t.names.Name(id), Profiles: tc.profiles, Enriched: tc.enriched,
			NotMatched: tc.notMatched, Failed: tc.failed, SkippedReasons: map[string]int64{}}
		for r, n := range tc.skipped {
			v.Skipped += n
			v.SkippedReasons[t.names.Name(r)] = n
		}
		if tc.lastEnrichedAt > 0 {
			v.LastEnrichedAt = time.UnixMilli(tc.lastEnrichedAt).UTC()
		}
		out = append(out, v)
	}
	return out
}

// MarkDirty makes the next takeDirty report a tenant (e.g. its credits moved).
func (t *Table) MarkDirty(tenant string) {
	id := t.names.ID(tenant)
	t.mu.Lock()
	defer t.mu.Unlock()
	tc := t.tenants[id]
	if tc == nil {
		tc = &tenantCounts{skipped: map[uint32]int64{}}
		t.tenants[id] = tc
	}
	tc.dirty = true
}

// Interner gives tenants and reason codes small, stable numbers for the
// life of the process, so table entries stay compact.
type Interner struct {
	mu    sync.RWMutex
	ids   map[string]uint32
	names []string
}

func NewInterner() *Interner { return &Interner{ids: map[string]uint32{"": 0}, names: []string{""}} }

func (in *Interner) ID(s string) uint32 {
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

func (in *Interner) Name(id uint32) string {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if int(id) < len(in.names) {
		return in.names[id]
	}
	return ""
}
