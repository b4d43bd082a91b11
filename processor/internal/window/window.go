// Package window bounds the pipeline's records in flight: a global count and
// memory bound, and each Leadspace program's share, deferring the records of
// a stalled program so that other programs' tenants keep their throughput.
package window

import (
	"context"
	"sync"
	"time"
)

// Window bounds the inputs in flight — fetched, not yet finished — in
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
// maxBytes/8, see processor/partition.go) and goes on, so that records of other
// programs behind it in the partition are not delayed by a big tenant's
// backlog (issue 21); with the budget spent it waits while the program
// makes progress (plain backpressure). A program that stopped making
// progress — its breaker is open, its calls hang — is stalled, and its
// further records are deferred (re-read later, see partition.go) so that
// other programs' tenants keep their throughput.
type Window struct {
	maxEvents int
	maxBytes  int64
	// stallAfter is how long a program with work in flight may go without
	// finishing anything before it counts as stalled.
	stallAfter time.Duration
	share      func(program string) int

	mu       sync.Mutex
	events   int
	bytes    int64
	parked   int64 // bytes of parked records, within maxBytes/8
	programs map[string]*programLoad
	changed  chan struct{} // closed and replaced whenever room may have appeared
}

// programLoad is one program's part of the window.
type programLoad struct {
	inFlight int
	bytes    int64
	finished time.Time // last time one of its records finished
}

func New(maxEvents int, maxBytes int64, stallAfter time.Duration, share func(string) int) *Window {
	return &Window{maxEvents: maxEvents, maxBytes: maxBytes, stallAfter: stallAfter, share: share,
		programs: map[string]*programLoad{}, changed: make(chan struct{})}
}

// Verdict of an admission attempt.
type Verdict int

const (
	Admitted Verdict = iota
	Defer            // the program is stalled: leave the record for later
)

// Admit takes room for one record of size bytes whose tenant calls program
// ("" for records that will not call Leadspace), waiting while the window
// or a busy program is full. It returns deferIt for a stalled program, and
// ctx's error if ctx ends first.
func (w *Window) Admit(ctx context.Context, program string, size int) (Verdict, error) {
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
func (w *Window) tryLocked(program string, size int) (v Verdict, wait bool) {
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
				return Defer, false
			}
			return 0, true
		}
		pl.inFlight++
		pl.bytes += int64(size)
	}
	w.events++
	w.bytes += int64(size)
	return Admitted, false
}

// Try is Admit without the wait: wait says the record must wait, and
// atShare that it waits for its program's share, not for the window.
func (w *Window) Try(program string, size int) (v Verdict, wait, atShare bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, wait = w.tryLocked(program, size)
	full := w.events > 0 && (w.events >= w.maxEvents || w.bytes+int64(size) > w.maxBytes)
	return v, wait, wait && !full
}

// RoomChanged is closed at the next release.
func (w *Window) RoomChanged() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// Park takes room for a parked record; false when the parking budget
// (an eighth of the window's bytes) is spent.
func (w *Window) Park(size int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.parked > 0 && w.parked+int64(size) > w.maxBytes/8 {
		return false
	}
	w.parked += int64(size)
	return true
}

// Unpark gives back a parked record's room.
func (w *Window) Unpark(size int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.parked -= int64(size)
}

// StallAfter is how long a busy program may finish nothing before it
// counts as stalled.
func (w *Window) StallAfter() time.Duration { return w.stallAfter }

// stalled says whether a program has work in flight but finished nothing
// for stallAfter.
func (w *Window) stalled(program string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	pl := w.programs[program]
	return pl != nil && w.stalledLocked(pl)
}

func (w *Window) stalledLocked(pl *programLoad) bool {
	return pl.inFlight > 0 && time.Since(pl.finished) > w.stallAfter
}

// HasRoom says whether a record of program could be admitted now without
// waiting; the re-reader of deferred records asks before it starts.
func (w *Window) HasRoom(program string) bool {
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
func (w *Window) shareOf(program string) int {
	return max(1, min(w.share(program), w.maxEvents/2))
}

// Release gives back a finished (or abandoned) record's room.
func (w *Window) Release(program string, size int) {
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

// InFlight is the number of records in the window, for the metric.
func (w *Window) InFlight() (events int, bytes int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.events, w.bytes
}
