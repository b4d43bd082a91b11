package leadspace

import (
	"container/heap"
	"context"
	"time"
)

// recState is where a submitted record is in its life.
type recState uint8

const (
	stReady   recState = iota + 1 // in the ready queue, waiting for a transaction
	stDelayed                     // backing off after a retryable failure
	stSending                     // inside a request whose answer is not in yet
	stPolling                     // inside an accepted bulk whose results are awaited
	stDone                        // done was called (or is about to be)
)

// record is one submitted request and its bookkeeping. Fields below mu are
// guarded by the program's mu.
type record struct {
	req  Request
	ctx  context.Context
	done func(Outcome)

	state recState
	// canceled: ctx ended while the record was inside a request; its answer
	// is dropped and it is never sent again.
	canceled bool
	// single: never put in a bulk (no external id, or a bulk it rode was
	// refused as a whole).
	single    bool
	notBefore time.Time
	failures  int // retryable failures so far, for the backoff
	heapIdx   int
	tally     tally
}

// tally is what a record's requests add up to until it completes. It is
// kept apart from the Outcome, which carries a whole answer: tens of
// thousands of records wait in the queue, and each would carry an empty
// answer's worth of pointers for the GC to scan (issue 21).
type tally struct {
	Sent, Attempts            int
	FirstFailure, LastFailure time.Time
}

// bulkable says the record may ride in a bulk: results find their records
// by external id.
func (r *record) bulkable() bool { return !r.single && r.req.ExternalID != "" }

// deque is a ring buffer of records: the ready queue. Records that come back
// after a failure go to the front (they are the oldest); new ones to the back.
type deque struct {
	buf        []*record
	head, size int
}

func (d *deque) len() int { return d.size }

func (d *deque) grow() {
	if d.size < len(d.buf) {
		return
	}
	nb := make([]*record, max(16, 2*len(d.buf)))
	for i := range d.size {
		nb[i] = d.buf[(d.head+i)%len(d.buf)]
	}
	d.buf, d.head = nb, 0
}

func (d *deque) pushBack(r *record) {
	d.grow()
	d.buf[(d.head+d.size)%len(d.buf)] = r
	d.size++
}

func (d *deque) pushFront(r *record) {
	d.grow()
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
	d.buf[d.head] = r
	d.size++
}

func (d *deque) popFront() *record {
	if d.size == 0 {
		return nil
	}
	r := d.buf[d.head]
	d.buf[d.head] = nil
	d.head = (d.head + 1) % len(d.buf)
	d.size--
	return r
}

// each visits every entry, front to back.
func (d *deque) each(f func(*record)) {
	for i := range d.size {
		f(d.buf[(d.head+i)%len(d.buf)])
	}
}

// delayed holds records backing off, earliest notBefore first.
type delayed []*record

func (h delayed) Len() int           { return len(h) }
func (h delayed) Less(i, j int) bool { return h[i].notBefore.Before(h[j].notBefore) }
func (h delayed) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *delayed) Push(x any) {
	r := x.(*record)
	r.heapIdx = len(*h)
	*h = append(*h, r)
}
func (h *delayed) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.heapIdx = -1
	return r
}

func (h *delayed) add(r *record)    { heap.Push(h, r) }
func (h *delayed) remove(r *record) { heap.Remove(h, r.heapIdx) }
func (h *delayed) next() *record {
	if len(*h) == 0 {
		return nil
	}
	return (*h)[0]
}
func (h *delayed) pop() *record { return heap.Pop(h).(*record) }
