package leadspace

import (
	"context"
	"errors"
	"github.com/sony/gobreaker/v2"
	"sync"
)

// batcher turns a program's backlog into bulk submits. Records join the open
// batch; its leader goroutine waits for the program's next limiter token and
// then seals and submits the batch. So the wait that single calls would
// spend idle becomes the gathering window: the deeper the backlog, the
// longer the wait and the fuller the bulk, with no timer to tune.
type batcher struct {
	p    *Program
	mu   sync.Mutex
	open *batch
}

type batch struct {
	ctx    context.Context // ends when every member left before sealing
	cancel context.CancelFunc
	reqs   []Request
	gone   []bool // member left before sealing: its record is not sent
	live   int
	ids    map[string]bool
	sealed bool

	done    chan struct{}
	results []Result
	errs    []error
}

func newBatcher(p *Program) *batcher { return &batcher{p: p} }

// enrich adds req to the open batch and waits for its outcome. ok is false
// when the record cannot join (no external id, or one already in the batch,
// or the client is closing); the caller then makes a single call.
func (b *batcher) enrich(ctx context.Context, req Request) (res Result, err error, ok bool) {
	bt, i, ok := b.join(req)
	if !ok {
		return Result{}, nil, false
	}
	select {
	case <-bt.done:
		return bt.results[i], bt.errs[i], true
	case <-ctx.Done():
		b.leave(bt, i)
		return Result{}, canceled(ctx.Err()), true
	}
}

func (b *batcher) join(req Request) (*batch, int, bool) {
	if req.ExternalID == "" {
		return nil, 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.open
	if bt == nil {
		if b.p.c.closed() {
			return nil, 0, false
		}
		ctx, cancel := context.WithCancel(b.p.c.ctx)
		bt = &batch{ctx: ctx, cancel: cancel, ids: make(map[string]bool), done: make(chan struct{})}
		b.open = bt
		b.p.c.wg.Add(1)
		go b.run(bt)
	}
	if bt.ids[req.ExternalID] {
		return nil, 0, false
	}
	bt.ids[req.ExternalID] = true
	bt.reqs = append(bt.reqs, req)
	bt.gone = append(bt.gone, false)
	bt.live++
	if len(bt.reqs) >= b.p.c.cfg.BulkMaxRecords {
		b.open = nil // full: the next record starts a new batch
	}
	return bt, len(bt.reqs) - 1, true
}

// leave withdraws a member whose caller gave up. Before sealing its record is
// dropped, so nothing of it leaves; when no member is left the batch ends.
func (b *batcher) leave(bt *batch, i int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bt.sealed || bt.gone[i] {
		return
	}
	bt.gone[i] = true
	bt.live--
	if bt.live == 0 {
		b.seal(bt)
		bt.cancel()
	}
}

// seal closes the batch to new members. Call with b.mu held.
func (b *batcher) seal(bt *batch) {
	bt.sealed = true
	if b.open == bt {
		b.open = nil
	}
}

// run is the batch leader: gather until a transaction token is ours, then
// submit everything gathered and hand each member its outcome.
func (b *batcher) run(bt *batch) {
	p := b.p
	defer p.c.wg.Done()
	defer bt.cancel()
	var err error
	if p.cb.State() == gobreaker.StateOpen {
		err = errBreakerOpen // cheap backpressure: don't queue for a token
	} else if werr := p.lim.wait(bt.ctx); werr != nil {
		err = newError(ClassCanceled, ReasonClosed, werr)
	}

	b.mu.Lock()
	b.seal(bt)
	var idx []int
	for i, gone := range bt.gone {
		if !gone {
			idx = append(idx, i)
		}
	}
	b.mu.Unlock()

	bt.results = make([]Result, len(bt.reqs))
	bt.errs = make([]error, len(bt.reqs))
	defer close(bt.done)
	if len(idx) == 0 {
		return
	}
	if err != nil {
		for _, i := range idx {
			bt.errs[i] = err
		}
		return
	}
	reqs := make([]Request, len(idx))
	for k, i := range idx {
		reqs[k] = bt.reqs[i]
	}
	// The client's context, not a member's: one caller leaving must not
	// abandon a bulk the others are waiting for.
	results, err := p.enrichBulk(p.c.ctx, reqs, true)
	var be *BulkError
	errors.As(err, &be)
	for k, i := range idx {
		bt.results[i] = results[k]
		switch {
		case be != nil:
			bt.errs[i] = be.Errs[k]
		case err != nil:
			bt.errs[i] = err
		}
		if r, ok := ReasonOf(bt.errs[i]); ok && r == ReasonCanceled && p.c.closed() {
			bt.errs[i] = newError(ClassCanceled, ReasonClosed, bt.errs[i])
		}
	}
}
