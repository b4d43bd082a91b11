package processor

import (
	"sort"
	"sync"
	"time"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// finished is what became of one offset, for the partition's counts.
type finished struct {
	tenant  string
	outcome string
	records int
	at      time.Time
}

// offsetTracker follows one partition's fetched offsets and says how far it
// is safe to commit: up to, not past, the lowest offset whose output has not
// been acknowledged. Completions arrive out of order (different keys run in
// parallel); commits never do.
//
// It also keeps the partition's per-tenant counts exactly in step with the
// commit point: an outcome is counted when the commit point passes it, and
// only from the offset the tenant's last status record covered, so a
// redelivery after a crash is never counted twice.
type offsetTracker struct {
	mu        sync.Mutex
	partition int32
	pending   map[int64]*finished // fetched offset -> outcome once done
	order     []int64             // fetched offsets in ascending order, done or not
	next      int64               // next offset to commit: everything below it is done
	committed int64               // last offset handed to a successful commit
	counts    map[string]*schemas.Status
	dirty     map[string]bool
}

// newOffsetTracker starts at the group's committed offset, with the counts
// the status topic holds for this partition.
func newOffsetTracker(partition int32, start int64, counts map[string]schemas.Status) *offsetTracker {
	t := &offsetTracker{partition: partition, pending: map[int64]*finished{}, next: start, committed: start,
		counts: map[string]*schemas.Status{}, dirty: map[string]bool{}}
	for tenant, s := range counts {
		s := s
		t.counts[tenant] = &s
	}
	return t
}

// fetched records that an offset entered the pipeline. Offsets arrive in
// ascending order from one partition reader.
func (t *offsetTracker) fetched(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.order) == 0 && offset > t.next {
		// Gaps (compacted or transactional offsets) below the first fetched
		// offset are nothing we own; skipping them is safe.
		t.next = offset
	}
	t.pending[offset] = nil
	t.order = append(t.order, offset)
}

// done marks an offset's output acknowledged and advances the commit point
// over every contiguous finished offset.
func (t *offsetTracker) done(offset int64, f finished) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.pending[offset]; !ok {
		return
	}
	t.pending[offset] = &f
	i := 0
	for ; i < len(t.order) && t.pending[t.order[i]] != nil; i++ {
		o := t.order[i]
		t.count(o, t.pending[o])
		delete(t.pending, o)
		t.next = o + 1
	}
	t.order = t.order[i:]
}

// count folds one outcome into its tenant's counts.
func (t *offsetTracker) count(offset int64, f *finished) {
	if f.tenant == "" || f.outcome == outIgnored || f.outcome == outTombstone {
		return
	}
	s := t.counts[f.tenant]
	if s == nil {
		s = &schemas.Status{TenantID: f.tenant, Partition: t.partition}
		t.counts[f.tenant] = s
	}
	if offset < s.CommittedOffset {
		return // counted before the last restart
	}
	s.Profiles++
	switch f.outcome {
	case outEnriched:
		s.Enriched++
	case outNotMatched:
		s.NotMatched++
	case outSkipped:
		s.Skipped++
	case outDead:
		s.Failed++
	}
	s.CreditsSpent += int64(f.records)
	if f.outcome == outEnriched || f.outcome == outNotMatched {
		s.LastEnrichedAt = f.at
	}
	t.dirty[f.tenant] = true
}

// commitPoint is the offset to commit (the next one to consume) and whether
// it moved since the last successful commit.
func (t *offsetTracker) commitPoint() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next, t.next > t.committed
}

// statusAt takes the status records of tenants whose counts changed, as of
// commit point next. They are written before the commit; if that fails, the
// caller hands them back with redo.
func (t *offsetTracker) statusAt(next int64) []schemas.Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []schemas.Status
	for tenant := range t.dirty {
		s := *t.counts[tenant]
		s.CommittedOffset = next
		out = append(out, s)
	}
	clear(t.dirty)
	return out
}

// redo marks tenants whose status write or commit failed for the next round.
func (t *offsetTracker) redo(written []schemas.Status) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range written {
		t.dirty[s.TenantID] = true
	}
}

// committedTo records a successful commit.
func (t *offsetTracker) committedTo(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if offset > t.committed {
		t.committed = offset
	}
}

// inFlight is the number of fetched offsets not yet done.
func (t *offsetTracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.order)
}

// unfinished lists offsets still open, lowest first (for shutdown logs).
func (t *offsetTracker) unfinished() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]int64(nil), t.order...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
