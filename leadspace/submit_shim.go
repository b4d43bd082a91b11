package leadspace

// TEMPORARY: the asynchronous Program API the processor is being rewritten
// against, built on the blocking Enrich until the dispatcher rewrite lands
// on this branch. Delete this file when it does.

import (
	"context"
	"time"
)

// Outcome is what became of one submitted record.
type Outcome struct {
	Result
	Err          error
	Sent         int
	Attempts     int
	FirstFailure time.Time
	LastFailure  time.Time
}

// Submit runs Enrich on a goroutine and reports its outcome.
func (p *Program) Submit(ctx context.Context, req Request, done func(Outcome)) {
	go func() {
		res, err := p.Enrich(ctx, req)
		o := Outcome{Result: res, Err: err, Attempts: 1}
		if c, ok := ClassOf(err); err == nil || (ok && c != ClassCanceled) {
			o.Sent = 1
		}
		done(o)
	}()
}

// Capacity is a fixed estimate until the dispatcher measures it.
func (p *Program) Capacity() int { return 2000 }

// Pending is the number of Enrich calls in progress.
func (p *Program) Pending() int { return int(p.inflight.Load()) }

// SetFleetSize is not implemented by the shim.
func (c *Client) SetFleetSize(n int) {}
