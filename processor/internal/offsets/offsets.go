// Package offsets keeps a partition's commit point: up to, not past, the
// lowest offset whose outputs are not acknowledged, with deferred offsets
// holding it like unfinished ones.
package offsets

import (
	"sync"
	"time"
)

// Tracker follows one partition's offsets from the commit point up to
// the highest fetched, one byte each, and says how far it is safe to commit:
// up to, not past, the lowest offset whose output has not been acknowledged.
// Completions arrive out of order (different keys run in parallel); commits
// never do. A deferred offset (its program is stalled, see package window) holds
// the commit point like an unfinished one, so a crash redelivers it.
type Tracker struct {
	mu       sync.Mutex
	base     int64   // next offset to commit: everything below it is done
	states   []uint8 // states[i] is offset base+i
	inFlight int
	deferred int
	parked   int // held in memory behind its program's share (processor/partition.go)
	// committed is the last offset handed to a successful commit.
	committed int64
	// advanced is when base last moved (or the partition was caught up),
	// for the stall metric and the readiness check.
	advanced time.Time
}

// Offset states. A gap (an offset compaction removed, which a fetch skips)
// counts as done.
const (
	stateGap uint8 = iota
	stateInFlight
	stateDone
	stateDeferred
	stateParked
)

// Base is the next offset to commit: everything below it is done.
func (t *Tracker) Base() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.base
}

// NewTracker starts at the group's committed offset.
func NewTracker(start int64) *Tracker {
	return &Tracker{base: start, committed: start, advanced: time.Now()}
}

// slot returns the index of offset, growing states with gaps up to it; -1
// for an offset below the commit point.
func (t *Tracker) slot(offset int64) int {
	i := offset - t.base
	if i < 0 {
		return -1
	}
	for int64(len(t.states)) <= i {
		t.states = append(t.states, stateGap)
	}
	return int(i)
}

// move sets slot i to state s, keeping the counts of the states that hold
// the commit point (in flight, deferred, parked).
func (t *Tracker) move(i int, s uint8) {
	t.count(t.states[i], -1)
	t.states[i] = s
	t.count(s, +1)
}

func (t *Tracker) count(s uint8, by int) {
	switch s {
	case stateInFlight:
		t.inFlight += by
	case stateDeferred:
		t.deferred += by
	case stateParked:
		t.parked += by
	}
}

// Admitted records that an offset entered the pipeline.
func (t *Tracker) Admitted(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := t.slot(offset); i >= 0 {
		t.move(i, stateInFlight)
	}
}

// deferred records that an offset was fetched but left for later.
func (t *Tracker) DeferOffset(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := t.slot(offset); i >= 0 && t.states[i] != stateDeferred {
		t.move(i, stateDeferred)
	}
}

// Park records that an offset was fetched and is held in memory until its
// program has room; like a deferred one it holds the commit point.
func (t *Tracker) Park(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := t.slot(offset); i >= 0 && t.states[i] == stateGap {
		t.move(i, stateParked)
	}
}

// Done marks an offset's output acknowledged and advances the commit point
// over every finished offset in a row.
func (t *Tracker) Done(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.slot(offset)
	if i < 0 || t.states[i] != stateInFlight {
		return
	}
	t.move(i, stateDone)
	n := 0
	for n < len(t.states) && (t.states[n] == stateDone || t.states[n] == stateGap) {
		n++
	}
	if n == 0 {
		return
	}
	t.base += int64(n)
	t.states = t.states[n:]
	if cap(t.states) > 4096 && len(t.states) < cap(t.states)/4 {
		t.states = append([]uint8(nil), t.states...) // let the old array go
	}
	t.advanced = time.Now()
}

// Abandon forgets an in-flight offset that will not finish in this
// generation (a drain ran out of time): it stays below the commit point's
// reach and is redelivered.
func (t *Tracker) Abandon(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := t.slot(offset); i >= 0 && t.states[i] == stateInFlight {
		t.move(i, stateDeferred)
	}
}

// IsDeferred says whether an offset waits to be re-read.
func (t *Tracker) IsDeferred(offset int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := offset - t.base
	return i >= 0 && i < int64(len(t.states)) && t.states[i] == stateDeferred
}

// LowestDeferred is the first deferred offset, if any.
func (t *Tracker) LowestDeferred() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deferred == 0 {
		return 0, false
	}
	for i, s := range t.states {
		if s == stateDeferred {
			return t.base + int64(i), true
		}
	}
	return 0, false
}

// CommitPoint is the offset to commit (the next one to consume) and whether
// it moved since the last successful commit.
func (t *Tracker) CommitPoint() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.base, t.base > t.committed
}

// CommittedTo records a successful commit.
func (t *Tracker) CommittedTo(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.committed = max(t.committed, offset)
}

// Pending is the number of offsets in flight, and of those fetched but
// not yet admitted (deferred or parked).
func (t *Tracker) Pending() (inFlight, deferred int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inFlight, t.deferred + t.parked
}

// CaughtUp marks the partition as advancing although nothing moved: it has
// nothing to do (the stall clock must not run while idle).
func (t *Tracker) CaughtUp() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inFlight == 0 && t.deferred == 0 && t.parked == 0 {
		t.advanced = time.Now()
	}
}

// SinceAdvance is how long the commit point has not moved while work waited.
func (t *Tracker) SinceAdvance(now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inFlight == 0 && t.deferred == 0 && t.parked == 0 {
		return 0
	}
	return now.Sub(t.advanced)
}
