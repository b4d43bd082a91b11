package processor

import (
	"context"
	"sync"
	"time"
)

// window bounds the inputs in flight — fetched, not yet finished — in
// three ways:
//
//   - a global memory bound in bytes (MaxInFlightBytes), which is what a
//     backlog would otherwise exhaust;
//   - a global event bound (Window), an upper limit only;
//   - a share per Leadspace program: enough records to keep the program's
//     admitted rate busy with full bulks (Little's law; the program measures
//     it, see leadspace.Program.Capacity), and no more.
//
// The share is what isolates tenants. A fetcher that meets a record of a
// program at its share parks it (holds it in memory, within a budget of
// maxBytes/4, see partition.go) and goes on, so that records of other
// programs behind it in the partition are not delayed by a big tenant's
// backlog (issue 21); with the budget spent it waits while the program
// makes progress (plain backpressure). A program that stopped making
// progress — its breaker is open, its calls hang — is stalled, and its
// further records are deferred (re-read later, see partition.go) so that
// other programs' tenants keep their throughput.
type window struct {
	maxEvents int
	maxBytes  int64
	// stallAfter is how long a program with work in flight may go without
	// finishing anything before it counts as stalled.
	stallAfter time.Duration
	share      func(program string) int

	mu       sync.Mutex
	events   int
	bytes    int64
	parked   int64 // bytes of parked records, within maxBytes/4
	programs map[string]*programLoad
	changed  chan struct{} // closed and replaced whenever room may have appeared
}

// programLoad is one program's part of the window.
type programLoad struct {
	inFlight int
	bytes    int64
	finished time.Time // last time one of its records finished
}

func newWindow(maxEvents int, maxBytes int64, stallAfter time.Duration, share func(string) int) *window {
	return &window{maxEvents: maxEvents, maxBytes: maxBytes, stallAfter: stallAfter, share: share,
		programs: map[string]*programLoad{}, changed: make(chan struct{})}
}

// verdict of an admission attempt.
type verdict int

const (
	admitted verdict = iota
	deferIt          // the program is stalled: leave the record for later
)

// admit takes room for one record of size bytes whose tenant calls program
// ("" for records that will not call Leadspace), waiting while the window
// or a busy program is full. It returns deferIt for a stalled program, and
// ctx's error if ctx ends first.
func (w *window) admit(ctx context.Context, program string, size int) (verdict, error) {
	for {
		w.mu.Lock()
		v, wait := w.tryLocked(program, size)
		changed := w.changed
		w.mu.Unlock()
		if !wait {
			return v, nil
		}
		// Re-check at least every stallAfter/4: a busy program can become
		// stalled without anything else happening.
		t := time.NewTimer(max(w.stallAfter/4, 50*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// tryLocked decides one admission; wait means try again later.
func (w *window) tryLocked(program string, size int) (v verdict, wait bool) {
	if w.events > 0 && (w.events >= w.maxEvents || w.bytes+int64(size) > w.maxBytes) {
		return 0, true
	}
	if program != "" {
		pl := w.programs[program]
		if pl == nil {
			pl = &programLoad{finished: time.Now()}
			w.programs[program] = pl
		}
		if pl.inFlight == 0 {
			pl.finished = time.Now() // the stall clock starts with the first record
		}
		if pl.inFlight >= w.shareOf(program) || (pl.inFlight > 0 && pl.bytes+int64(size) > w.maxBytes/2) {
			if w.stalledLocked(pl) {
				return deferIt, false
			}
			return 0, true
		}
		pl.inFlight++
		pl.bytes += int64(size)
	}
	w.events++
	w.bytes += int64(size)
	return admitted, false
}

// try is admit without the wait: wait says the record must wait, and
// atShare that it waits for its program's share, not for the window.
func (w *window) try(program string, size int) (v verdict, wait, atShare bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, wait = w.tryLocked(program, size)
	full := w.events > 0 && (w.events >= w.maxEvents || w.bytes+int64(size) > w.maxBytes)
	return v, wait, wait && !full
}

// roomChanged is closed at the next release.
func (w *window) roomChanged() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// park takes room for a parked record; false when the parking budget
// (a quarter of the window's bytes) is spent.
func (w *window) park(size int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.parked > 0 && w.parked+int64(size) > w.maxBytes/4 {
		return false
	}
	w.parked += int64(size)
	return true
}

// unpark gives back a parked record's room.
func (w *window) unpark(size int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.parked -= int64(size)
}

// stalled says whether a program has work in flight but finished nothing
// for stallAfter.
func (w *window) stalled(program string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	pl := w.programs[program]
	return pl != nil && w.stalledLocked(pl)
}

func (w *window) stalledLocked(pl *programLoad) bool {
	return pl.inFlight > 0 && time.Since(pl.finished) > w.stallAfter
}

// hasRoom says whether a record of program could be admitted now without
// waiting; the re-reader of deferred records asks before it starts.
func (w *window) hasRoom(program string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.events >= w.maxEvents || w.bytes >= w.maxBytes {
		return false
	}
	if program == "" {
		return true
	}
	pl := w.programs[program]
	return pl == nil || (pl.inFlight < w.shareOf(program)/2 && !w.stalledLocked(pl))
}

// shareOf is a program's share: what it needs (its Capacity), but never
// more than half the window (in events, and in bytes above), so that one
// stalled program cannot hold the whole window and stall the others at the
// fetch.
func (w *window) shareOf(program string) int {
	return max(1, min(w.share(program), w.maxEvents/2))
}

// release gives back a finished (or abandoned) record's room.
func (w *window) release(program string, size int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events--
	w.bytes -= int64(size)
	if pl := w.programs[program]; program != "" && pl != nil {
		pl.inFlight--
		pl.bytes -= int64(size)
		pl.finished = time.Now()
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// inFlight is the number of records in the window, for the metric.
func (w *window) inFlight() (events int, bytes int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.events, w.bytes
}
