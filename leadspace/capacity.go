package leadspace

import (
	"math"
	"sync"
	"time"
)

// pollClock learns one program's bulk turnaround (accepted submit → results
// ready) and what its bulks cost, so bulks are polled first when their
// results are likely ready and Capacity can size the work in flight.
//
// The turnaround estimate is the time of the first poll. It is kept just
// above the turnarounds seen:
//   - a poll that finds a bulk not ready at t proves the turnaround is
//     longer than t: the estimate rises at once to t + BulkPollMin, and
//     bulks already waiting for their first poll wait for the new estimate
//     (so one late bulk does not make every bulk in flight poll twice);
//   - a bulk found ready at its first poll lowers the estimate by 0.25 %,
//     so it follows a Leadspace that got faster, at the price of about one
//     extra poll every few dozen bulks.
//
// Raising it only to just past the last "not ready" (not to when the
// results were found, after steps that double) keeps it from overshooting
// when it has far to climb.
//
// Polls disturbed by failures (5xx, an open breaker) teach nothing about
// the turnaround, but their bulks still count in polls per bulk.
type pollClock struct {
	floor, ceil time.Duration // BulkPollMin, BulkMaxWait
	guess       time.Duration // BulkPollFirst: the cycle guess before any bulk

	mu    sync.Mutex
	est   time.Duration
	ppb   float64       // polls per bulk, moving average
	cycle time.Duration // dispatch → results, moving average
	bulks int           // bulks that reached their results
}

const (
	// turnaroundDecay lowers the estimate after each first-poll hit.
	turnaroundDecay = 0.0025
	// averageWeight of the newest bulk in the moving averages.
	averageWeight = 0.05
	// defaultSubmitOverhead is added to BulkPollFirst for the cycle time
	// before any bulk was measured: the submit's own round trip and the
	// wait for a poll token.
	defaultSubmitOverhead = 250 * time.Millisecond
	// capacityMargin is the safety margin on Little's law: bursts of
	// cancellations, retries and polls that come late.
	capacityMargin = 1.25
)

func newPollClock(cfg *Config) *pollClock {
	return &pollClock{
		floor: cfg.BulkPollMin,
		ceil:  cfg.BulkMaxWait,
		guess: cfg.BulkPollFirst + defaultSubmitOverhead,
		est:   cfg.BulkPollFirst,
		ppb:   1,
	}
}

// first is when, after its submit was accepted, a bulk is polled first.
func (c *pollClock) first() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.est
}

// notReady records a poll, at after the submit, that found a bulk not ready.
func (c *pollClock) notReady(after time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.est = min(c.ceil, max(c.est, after+c.floor))
}

// ready records a bulk whose results came with its polls-th poll; cycle is
// its dispatch → results time. learn is false when failures disturbed the
// polling.
func (c *pollClock) ready(polls int, cycle time.Duration, learn bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if learn && polls == 1 {
		c.est = max(c.floor, time.Duration(float64(c.est)*(1-turnaroundDecay)))
	}
	if c.bulks == 0 {
		c.ppb, c.cycle = float64(polls), cycle
	} else {
		c.ppb += averageWeight * (float64(polls) - c.ppb)
		c.cycle += time.Duration(averageWeight * float64(cycle-c.cycle))
	}
	c.bulks++
}

// snapshot returns the turnaround estimate, polls per bulk and cycle time
// (the defaults until a bulk was measured).
func (c *pollClock) snapshot() (est time.Duration, ppb float64, cycle time.Duration, measured bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bulks == 0 {
		return c.est, c.ppb, c.guess, false
	}
	return c.est, c.ppb, c.cycle, true
}

// littleCapacity is Little's law for one program's bulk pipeline, L = λ·W:
//
//	λ = rate · B / (1 + polls)    records/s the limiter admits in bulks: each
//	                              bulk costs its submit plus its polls (polls
//	                              is 0 when they are free)
//	W = cycle                     a bulk's dispatch → results
//	L = B · ⌈λ·W·1.25 / B⌉ + B    rounded up to whole bulks with a 25 % margin,
//	                              plus the bulk gathering for the next token
//
// never less than 2·B, so a program always has room for a full bulk in
// flight and one gathering, and never more than MaxBacklogRecords: a cycle
// that grows because something is slow (a loaded machine, a slow
// Leadspace) must not make the program ask for unbounded memory.
func littleCapacity(rate float64, bulk int, polls float64, cycle time.Duration) int {
	lambda := rate * float64(bulk) / (1 + max(0, polls))
	inflight := lambda * cycle.Seconds() * capacityMargin
	bulks := math.Ceil(inflight / float64(bulk))
	if math.IsNaN(bulks) || math.IsInf(bulks, 0) || bulks > MaxBacklogRecords {
		bulks = MaxBacklogRecords
	}
	return max(2*bulk, min(MaxBacklogRecords, int(bulks)*bulk+bulk))
}

// MaxBacklogRecords caps Capacity: Leadspace holds at most 100,000 leads in
// its processing backlog per program, so more in flight cannot help.
// UNCERTAIN(docs/leadspace.md §4): the figure is from a third-party profile.
const MaxBacklogRecords = 100_000
