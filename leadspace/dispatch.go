package leadspace

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/sony/gobreaker/v2"
)

// The dispatcher is one goroutine per program. It owns no record for long:
// records sit in the program's queue, and each transaction runs on its own
// goroutine (a single call, or a bulk submit and its polls), so goroutines
// grow with transactions in flight, never with records queued.
//
// Its loop: wait for a ready record; ask the breaker (an open breaker means
// records wait, and their failure clock runs); wait for a limiter token,
// while more records gather; then seal what is ready into one transaction:
// a bulk of up to BulkMaxRecords when at least BulkThreshold records are
// ready, else a single call for the oldest one.
func (p *Program) dispatch() {
	defer p.c.wg.Done()
	ctx := p.c.ctx
	for p.awaitWork(ctx) {
		done, err := p.admit(ctx, epDispatch, true)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			p.awaitBreaker(ctx)
			continue
		}
		// The breaker may have opened while we waited for the token.
		if p.cb.State() == gobreaker.StateOpen {
			done(errNotSent)
			continue
		}
		p.gather(ctx)
		recs, bulk, out := p.seal()
		p.deliver(out)
		if len(recs) == 0 {
			done(errNotSent) // everyone waiting left: the token is lost, nothing sent
			continue
		}
		p.c.wg.Add(1)
		go p.transact(recs, bulk, done)
	}
	p.shutdown()
}

// A backlog's first records arrive a fetch at a time, and a dispatcher
// holding a token sealed whatever was ready: a single call, a whole
// transaction for one record (two instances starting on a backlog sent 1
// to 15 of them). So with a token in hand and fewer records ready than a
// bulk needs, it waits gatherStep for more, again while more keep
// arriving, up to gatherMax. A record that comes alone (a trickle) waits
// gatherStep once.
//
// With enough for a bulk but not a full one, it goes on waiting the same
// way while more arrive, but never longer than three quarters of the time
// to its next token, so the wait costs no rate: in a backlog a bulk's
// worth arrives over a few milliseconds, and sealing at once sent bulks of
// 460 records on average with four programs, where Leadspace meters
// transactions, not records.
const (
	gatherStep = 5 * time.Millisecond
	gatherMax  = 25 * time.Millisecond
)

// gather waits, as said above, for enough records to fill a bulk.
func (p *Program) gather(ctx context.Context) {
	ready := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.readyN
	}
	threshold, full := p.c.cfg.BulkThreshold, p.c.cfg.BulkMaxRecords
	n := ready()
	if n == 0 || n >= full {
		return
	}
	begin := time.Now()
	topUp := gatherMax // the longest wait once a bulk is possible
	if tps := p.lim.tps(); tps > 0 {
		topUp = min(topUp, time.Duration(0.75*float64(time.Second)/tps))
	}
	t := time.NewTimer(gatherStep)
	defer t.Stop()
	for n < full {
		limit := gatherMax
		if n >= threshold {
			limit = topUp
		}
		if time.Since(begin) >= limit {
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		more := ready()
		if more <= n {
			return // nothing more came: send what there is
		}
		n = more
		t.Reset(gatherStep)
	}
}

// wake tells the dispatcher there may be work.
func (p *Program) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// breakerChanged runs under the breaker's lock: it must not block.
func (p *Program) breakerChanged(to gobreaker.State) {
	if to == gobreaker.StateOpen {
		p.openedAt.Store(time.Now().UnixNano())
	}
	p.breakerMoved()
}

// breakerMoved wakes a dispatcher waiting on the breaker.
func (p *Program) breakerMoved() {
	select {
	case p.breakerHop <- struct{}{}:
	default:
	}
}

// awaitWork blocks until a record is ready (or the client closes).
func (p *Program) awaitWork(ctx context.Context) bool {
	for {
		p.mu.Lock()
		now := p.now()
		p.promoteLocked(now)
		n := p.readyN
		wait := time.Duration(-1)
		if r := p.later.next(); n == 0 && r != nil {
			wait = r.notBefore.Sub(now)
		}
		p.mu.Unlock()
		if n > 0 {
			return ctx.Err() == nil
		}
		var t *time.Timer
		var timer <-chan time.Time
		if wait >= 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-p.kick:
		case <-timer:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return false
		}
	}
}

// awaitBreaker waits while the breaker refuses transactions. The records
// waiting start (or go on with) their failure clock; those failing for
// GiveUpAfter give up. New submissions are not a reason to wake: with a
// large queue each wake costs a scan.
func (p *Program) awaitBreaker(ctx context.Context) {
	cfg := &p.c.cfg
	p.mu.Lock()
	p.breakerWait = true
	now := p.now()
	var out []delivery
	wait := func(r *record) {
		if r.state != stReady && r.state != stDelayed {
			return
		}
		if r.tally.FirstFailure.IsZero() {
			r.tally.FirstFailure = now
		}
		r.tally.LastFailure = now
		if failing := now.Sub(r.tally.FirstFailure); failing >= cfg.GiveUpAfter {
			out = append(out, p.completeLocked(r, nil, exhausted(errBreakerWait, r.tally.Attempts, failing)))
		}
	}
	p.ready.each(wait)
	for _, r := range append([]*record(nil), p.later...) {
		wait(r)
	}
	p.mu.Unlock()
	p.deliver(out)

	// Open: until the open period ends. Half-open with its probes out:
	// until one of them is answered (or could have timed out). The state is
	// read after draining old wake-ups, so none is lost.
	select {
	case <-p.breakerHop:
	default:
	}
	var d time.Duration
	switch p.cb.State() {
	case gobreaker.StateClosed:
		d = 0
	case gobreaker.StateOpen:
		d = time.Until(time.Unix(0, p.openedAt.Load()).Add(cfg.Breaker.OpenTimeout)) + time.Millisecond
	default:
		d = cfg.RequestTimeout
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-p.breakerHop:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	p.mu.Lock()
	p.breakerWait = false
	p.mu.Unlock()
}

// promoteLocked moves records whose backoff is over to the front of the
// ready queue, oldest first: they have waited longest.
func (p *Program) promoteLocked(now time.Time) {
	var due []*record
	for r := p.later.next(); r != nil && !r.notBefore.After(now); r = p.later.next() {
		due = append(due, p.later.pop())
	}
	for i := len(due) - 1; i >= 0; i-- {
		due[i].state = stReady
		p.ready.pushFront(due[i])
		p.readyN++
	}
}

// seal takes the next transaction's records off the ready queue. Records
// whose context ended are dropped here, unsent.
func (p *Program) seal() (recs []*record, bulk bool, out []delivery) {
	cfg := &p.c.cfg
	p.mu.Lock()
	defer p.mu.Unlock()
	p.promoteLocked(p.now())
	// next pops the next live record, completing those whose ctx ended.
	next := func() *record {
		for p.ready.len() > 0 {
			r := p.ready.popFront()
			if r.state != stReady {
				continue // a tombstone: finished while queued
			}
			if err := r.ctx.Err(); err != nil {
				out = append(out, p.completeLocked(r, nil, canceled(err)))
				continue
			}
			p.readyN--
			r.state = stSending
			return r
		}
		return nil
	}
	head := next()
	if head == nil {
		return nil, false, out
	}
	recs = append(recs, head)
	if p.readyN+1 < cfg.BulkThreshold || !head.bulkable() {
		return recs, false, out
	}
	ids := map[string]bool{head.req.ExternalID: true}
	var aside []*record
	for scanned := 0; len(recs) < cfg.BulkMaxRecords && scanned < 4*cfg.BulkMaxRecords; scanned++ {
		r := next()
		if r == nil {
			break
		}
		if !r.bulkable() || ids[r.req.ExternalID] {
			aside = append(aside, r) // goes single, or in a later bulk
			continue
		}
		ids[r.req.ExternalID] = true
		recs = append(recs, r)
	}
	for i := len(aside) - 1; i >= 0; i-- {
		aside[i].state = stReady
		p.ready.pushFront(aside[i])
		p.readyN++
	}
	return recs, true, out
}

// transact runs one sealed transaction.
func (p *Program) transact(recs []*record, bulk bool, done func(error)) {
	defer p.c.wg.Done()
	if bulk {
		p.sendBulk(recs, done)
	} else {
		p.sendSingle(recs[0], done)
	}
}

// sendSingle is one single call.
func (p *Program) sendSingle(r *record, done func(error)) {
	body, err := singleBody(r.req)
	if err != nil {
		done(errNotSent)
		p.settle([]*record{r}, 0, false, nil, newError(ClassInput, ReasonInputRejected, err))
		return
	}
	resp, n, err := p.exchange(p.c.ctx, call{ep: epSingle, method: http.MethodPost, path: pathSingle, body: body, records: 1}, done)
	accepted := err == nil && resp.status == http.StatusOK
	var res Result
	if err == nil {
		res, err = singleResult(resp)
	}
	p.settle([]*record{r}, n, accepted, func(*record) (Result, error) { return res, err }, err)
}

// singleResult reads a single call's 2xx answer.
func singleResult(resp *response) (Result, error) {
	if resp.status != http.StatusOK {
		return Result{}, &Error{Class: ClassRetryable, Reason: ReasonBadResponse, StatusCode: resp.status,
			Err: errors.New("unexpected success status for a single call")}
	}
	res, err := parseSingleResponse(resp.body)
	if err != nil {
		return Result{}, &Error{Class: ClassRetryable, Reason: ReasonBadResponse, StatusCode: resp.status, Err: err}
	}
	return res, nil
}

// settle books a request that carried recs (requests is how many left,
// accepted whether Leadspace took them) and decides each record's fate:
// each gets of(r) when given, else err.
func (p *Program) settle(recs []*record, requests int, accepted bool, of func(*record) (Result, error), err error) {
	now := p.now()
	var out []delivery
	requeued := false
	p.mu.Lock()
	for _, r := range recs {
		r.tally.Attempts += requests
		if accepted {
			r.tally.Sent++
		}
		var res *Result
		rerr := err
		if of != nil {
			var v Result
			v, rerr = of(r)
			res = &v
		}
		if d, ok := p.settleLocked(r, res, rerr, now); ok {
			out = append(out, d)
		} else {
			requeued = true
		}
	}
	p.mu.Unlock()
	p.deliver(out)
	if requeued {
		p.wake()
	}
}

// settleLocked decides what becomes of a record whose request is over:
// done (ok), or back into the queue after a backoff (retryable failures
// until GiveUpAfter or MaxAttempts).
func (p *Program) settleLocked(r *record, res *Result, err error, now time.Time) (delivery, bool) {
	cfg := &p.c.cfg
	switch {
	case r.state == stDone:
		return delivery{}, false
	case r.canceled || r.ctx.Err() != nil:
		cerr := r.ctx.Err()
		if cerr == nil {
			cerr = context.Canceled
		}
		return p.completeLocked(r, nil, canceled(cerr)), true
	case err == nil:
		return p.completeLocked(r, res, nil), true
	case p.closed || p.c.closed():
		return p.completeLocked(r, nil, newError(ClassCanceled, ReasonClosed, err)), true
	case !retryable(err):
		return p.completeLocked(r, nil, err), true
	}
	if r.tally.FirstFailure.IsZero() {
		r.tally.FirstFailure = now
	}
	r.tally.LastFailure = now
	r.failures++
	failing := now.Sub(r.tally.FirstFailure)
	if failing >= cfg.GiveUpAfter || (cfg.MaxAttempts > 0 && r.tally.Attempts >= cfg.MaxAttempts) {
		if errors.Is(err, ErrBreakerOpen) {
			err = errBreakerWait
		}
		return p.completeLocked(r, nil, exhausted(err, r.tally.Attempts, failing)), true
	}
	wait := cfg.retries().Delay(r.failures)
	if reason, _ := ReasonOf(err); reason == ReasonRateLimited {
		wait = 0 // the limiter has slowed down already: that is the backoff
	}
	r.notBefore = now.Add(wait)
	r.state = stDelayed
	p.later.add(r)
	p.retries.Add(1)
	p.metrics.retry(p.key)
	return delivery{}, false
}

// requeueSingleLocked puts a record whose bulk was refused as a whole back
// at the front of the queue, to go alone: one bad record then fails alone.
func (p *Program) requeueSingleLocked(r *record) (delivery, bool) {
	if r.state == stDone {
		return delivery{}, false
	}
	if r.canceled || r.ctx.Err() != nil || p.closed || p.c.closed() {
		return p.settleLocked(r, nil, newError(ClassRetryable, ReasonInputRejected, nil), p.now())
	}
	r.single = true
	r.state = stReady
	p.ready.pushFront(r)
	p.readyN++
	return delivery{}, false
}

// delivery is an outcome to hand to a done callback, outside any lock. It
// points at the record's answer (in the bulk's results) rather than holding
// a copy: a bulk's 500 deliveries would be 250 KB of copies.
type delivery struct {
	r   *record
	res *Result // nil: no answer
	err error
	t   tally
}

// outcome is the delivery's Outcome.
func (d *delivery) outcome() Outcome {
	o := Outcome{Err: d.err, Sent: d.t.Sent, Attempts: d.t.Attempts, FirstFailure: d.t.FirstFailure, LastFailure: d.t.LastFailure}
	if d.res != nil && d.err == nil {
		o.Result = *d.res
	}
	o.Result.ExternalID = d.r.req.ExternalID
	return o
}

// completeLocked finishes a record: it leaves the queue and its group, and
// its outcome is returned for delivery.
func (p *Program) completeLocked(r *record, res *Result, err error) delivery {
	switch r.state {
	case stReady:
		p.readyN-- // its queue entry stays behind as a tombstone
	case stDelayed:
		p.later.remove(r)
	}
	r.state = stDone
	p.pending--
	if d := r.ctx.Done(); d != nil {
		if g := p.groups[d]; g != nil {
			delete(g.recs, r)
			if len(g.recs) == 0 {
				g.stop()
				delete(p.groups, d)
			}
		}
	}
	return delivery{r: r, res: res, err: err, t: r.tally}
}

// deliver calls done callbacks; never with p.mu held, since a callback may
// submit again.
func (p *Program) deliver(out []delivery) {
	if len(out) == 0 {
		return
	}
	for i := range out {
		o := out[i].outcome()
		p.metrics.result(p.key, o.Result, o.Err)
		out[i].r.done(o)
	}
	if p.metrics != nil {
		p.metrics.pending(p.key, p.Pending())
	}
}

// ctxEnded cancels every record of one context: queued ones finish at once
// with nothing sent; those inside a request finish when its answer is in
// (then their Sent is known), or at once when their bulk was accepted.
func (p *Program) ctxEnded(d <-chan struct{}) {
	var out []delivery
	p.mu.Lock()
	g := p.groups[d]
	if g != nil {
		err := canceled(g.ctx.Err())
		for r := range g.recs {
			switch r.state {
			case stReady, stDelayed, stPolling:
				out = append(out, p.completeLocked(r, nil, err))
			case stSending:
				r.canceled = true
			}
		}
	}
	p.mu.Unlock()
	p.deliver(out)
}

// shutdown runs when the client closes: queued records finish with
// ReasonClosed. Records inside requests finish as their requests end.
func (p *Program) shutdown() {
	var out []delivery
	p.mu.Lock()
	p.closed = true
	closed := newError(ClassCanceled, ReasonClosed, nil)
	for p.ready.len() > 0 {
		if r := p.ready.popFront(); r.state == stReady {
			out = append(out, p.completeLocked(r, nil, closed))
		}
	}
	for r := p.later.next(); r != nil; r = p.later.next() {
		out = append(out, p.completeLocked(r, nil, closed))
	}
	p.mu.Unlock()
	p.deliver(out)
}
