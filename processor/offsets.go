package processor

import (
	"sort"
	"sync"
)

// offsetTracker follows one partition's fetched offsets and says how far it
// is safe to commit: up to, not past, the lowest offset whose output has not
// been acknowledged. Completions arrive out of order (different keys run in
// parallel); commits never do.
type offsetTracker struct {
	mu        sync.Mutex
	pending   map[int64]bool // fetched offset -> done
	order     []int64        // fetched offsets in ascending order, done or not
	next      int64          // next offset to commit: everything below it is done
	committed int64          // last offset handed to a successful commit
}

func newOffsetTracker(start int64) *offsetTracker {
	return &offsetTracker{pending: map[int64]bool{}, next: start, committed: start}
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
	t.pending[offset] = false
	t.order = append(t.order, offset)
}

// done marks an offset's output acknowledged and advances the commit point
// over every contiguous finished offset.
func (t *offsetTracker) done(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.pending[offset]; !ok {
		return
	}
	t.pending[offset] = true
	i := 0
	for ; i < len(t.order) && t.pending[t.order[i]]; i++ {
		delete(t.pending, t.order[i])
		t.next = t.order[i] + 1
	}
	t.order = t.order[i:]
}

// commitPoint is the offset to commit (the next one to consume) and whether
// it moved since the last successful commit.
func (t *offsetTracker) commitPoint() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next, t.next > t.committed
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
