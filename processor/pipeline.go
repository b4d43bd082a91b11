package processor

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// job is one input record on its way through the pipeline. No goroutine
// waits for it: each stage runs on the shared pool and hands the job on
// (to Leadspace, to the publisher), and a callback brings it back.
type job struct {
	w        *partitionWorker
	msg      kafka.Message
	key      string
	program  string // the program whose share of the window it holds
	size     int
	run      *runPass // nil for live input
	attempts int      // waits for the schema registry
	bulk     string   // the journaled bulk its record rides in (see journal.go)
	next     *job     // the key's next admitted job (keyQueue)
}

// pool runs the pipeline's CPU stages on a fixed number of goroutines.
// Live input goes first: a Run's records only use what live traffic leaves.
// Work queues per lane (the record's Leadspace program), live and Run
// apart, and lanes take turns, one stage each: a 500-record bulk answer or
// a big tenant's backlog (or Run) of prepares does not hold up the stages
// of small tenants' records behind it (issue 21).
//
// Within a lane, records that have their answer go before records not yet
// started: an answered record holds its answer (and the bulk's response
// body) until it is published, where one not yet started holds only its
// input, so finishing first keeps what is in flight small and the GC's work
// with it (issue 21's profile: half the records in flight were answered
// ones waiting for a turn).
type pool struct {
	mu     sync.Mutex
	cond   *sync.Cond
	live   lanes
	runs   lanes
	closed bool
	wg     sync.WaitGroup
}

// lanes are queued stages by lane, and the lanes with work in turn order.
type lanes struct {
	byName map[string]*lane // a lane is here while it has work
	turns  []*lane
}

// lane is one program's queued stages, oldest first: answered records'
// (finish) before new records' (start).
type lane struct {
	name          string
	finish, start []func()
}

func (ls *lanes) push(name string, f func(), finish bool) {
	l := ls.byName[name]
	if l == nil {
		if ls.byName == nil {
			ls.byName = map[string]*lane{}
		}
		l = &lane{name: name}
		ls.byName[name] = l
		ls.turns = append(ls.turns, l)
	}
	if finish {
		l.finish = append(l.finish, f)
	} else {
		l.start = append(l.start, f)
	}
}

// pop takes the next stage of the lane whose turn it is; nil when none.
func (ls *lanes) pop() (f func()) {
	if len(ls.turns) == 0 {
		return nil
	}
	l := ls.turns[0]
	ls.turns[0] = nil
	ls.turns = ls.turns[1:]
	if len(l.finish) > 0 {
		f, l.finish[0] = l.finish[0], nil
		l.finish = l.finish[1:]
	} else {
		f, l.start[0] = l.start[0], nil
		l.start = l.start[1:]
	}
	if len(l.finish)+len(l.start) > 0 {
		ls.turns = append(ls.turns, l) // its next stage waits for the others' turn
	} else {
		delete(ls.byName, l.name)
	}
	return f
}

func newPool(workers int) *pool {
	p := &pool{}
	p.cond = sync.NewCond(&p.mu)
	for range workers {
		p.wg.Go(p.work)
	}
	return p
}

// submit queues a record's first stage; finish queues the stage of a
// record Leadspace answered.
func (p *pool) submit(f func(), run bool, name string) { p.queue(f, run, name, false) }
func (p *pool) finish(f func(), run bool, name string) { p.queue(f, run, name, true) }

func (p *pool) queue(f func(), run bool, name string, finish bool) {
	p.mu.Lock()
	if run {
		p.runs.push(name, f, finish)
	} else {
		p.live.push(name, f, finish)
	}
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *pool) work() {
	for {
		p.mu.Lock()
		for len(p.live.turns) == 0 && len(p.runs.turns) == 0 && !p.closed {
			p.cond.Wait()
		}
		f := p.live.pop()
		if f == nil {
			f = p.runs.pop()
		}
		if f == nil { // closed, and nothing left
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		f()
	}
}

func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
	p.wg.Wait()
}

// prepare runs the first stage of a job.
func (w *partitionWorker) prepare(j *job) {
	st := w.safely(j, schemas.StageDecode, func() step { return w.handler.prepare(j) })
	w.proceed(j, st)
}

// proceed carries a job on after a stage.
func (w *partitionWorker) proceed(j *job, st step) {
	switch {
	case st.retryAfter > 0:
		time.AfterFunc(st.retryAfter, func() {
			if w.ctx.Err() != nil {
				w.abandon(j)
				return
			}
			w.pool.submit(func() { w.prepare(j) }, j.run != nil, j.program)
		})
	case st.call != nil:
		w.call(j, st.call)
	default:
		w.publish(j, st)
	}
}

// call hands the job to its tenant's Leadspace program. The call is
// cancelled when the tenant's permission ends (consent withdrawn, removed,
// paused) or when the partition's work is abandoned.
func (w *partitionWorker) call(j *job, plan *callPlan) {
	ctx := w.callCtx(plan.permit.Ctx)
	prog := w.programs.program(plan.permit)
	if j.run != nil {
		j.run.charge(j.msg.Offset, 1, 0)
	}
	plan.req.Ref = j // handed back if the record rides a bulk (journal.accepted)
	done := func(o leadspace.Outcome) {
		w.pool.finish(func() { w.answered(j, plan, o) }, j.run != nil, j.program)
	}
	if path, ok := w.takeClaim(j.msg.Offset); ok {
		// This very input rode a bulk an instance that died had paid for.
		prog.Resume(ctx, plan.req, path, done)
		return
	}
	prog.Submit(ctx, plan.req, done)
}

// callCtx is the context of the worker's calls under one permit: it ends
// when the permit does or when the worker's work is abandoned. Calls share
// it rather than each deriving its own, because the program groups queued
// records by context: one shared context costs one cancel hook for
// thousands of records in flight, not one each.
func (w *partitionWorker) callCtx(permit context.Context) context.Context {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ctx, ok := w.callCtxs[permit]; ok && ctx.Err() == nil {
		return ctx
	}
	ctx, cancel := context.WithCancel(w.ctx)
	stop := context.AfterFunc(permit, cancel)
	w.callCtxs[permit] = ctx
	context.AfterFunc(ctx, func() {
		stop()
		w.mu.Lock()
		if w.callCtxs[permit] == ctx {
			delete(w.callCtxs, permit)
		}
		w.mu.Unlock()
	})
	return ctx
}

// answered is the second stage: Leadspace's outcome becomes the output.
func (w *partitionWorker) answered(j *job, plan *callPlan, o leadspace.Outcome) {
	w.spent(plan.profile.TenantID, j, o.Sent)
	if c, ok := leadspace.ClassOf(o.Err); ok && c == leadspace.ClassCanceled {
		if w.ctx.Err() != nil {
			w.abandon(j)
			return
		}
		// The tenant's permission changed while the record waited: decide
		// again (it may be denied now, or permitted with a new token).
		w.prepare(j)
		return
	}
	st := w.safely(j, schemas.StageEnrich, func() step { return w.handler.answered(j, plan, o) })
	w.publish(j, st)
}

// publish sends a step's outputs; the job finishes once they are acked.
func (w *partitionWorker) publish(j *job, st step) {
	w.pub.SendIn(w.ctx, j.program, st.out, func(err error) {
		if err != nil {
			w.abandon(j)
			return
		}
		w.finish(j, st)
	})
}

// safely runs a stage, turning a panic into a dead letter: one bad input
// must not take the instance down.
func (w *partitionWorker) safely(j *job, stage string, f func() step) (st step) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("panic while processing an input; it goes to the dead letter topic", zap.Any("panic", r),
				zap.Int64("offset", j.msg.Offset), zap.ByteString("stack", debug.Stack()))
			w.metrics.panics.Inc()
			st = w.handler.dead(j, &stageError{stage: stage, reason: ReasonPanic, class: classRetryable, replayable: true,
				err: fmt.Errorf("internal error: %v", r)}, schemas.Profile{})
			st.state = nil
		}
	}()
	return f()
}

// finish applies a job's acknowledged outcome: the key's new state, the
// offset done, the room given back, and the key's next input started.
func (w *partitionWorker) finish(j *job, st step) {
	w.mu.Lock()
	fenced := w.fenced
	w.mu.Unlock()
	if !fenced {
		switch {
		case st.remove:
			w.table.Remove(j.key)
		case st.state != nil:
			w.table.Put(j.key, *st.state)
		}
		if j.run != nil {
			j.run.done(j.msg.Offset, st)
		} else {
			w.tracker.Done(j.msg.Offset)
		}
		w.metrics.outcomes.WithLabelValues(st.tenant, st.outcome, st.reason).Inc()
	}
	w.journal.finished(j, true)
	w.window.Release(j.program, j.size)
	w.next(j)
}

// abandon gives up on a job without an outcome: it stays unfinished, so
// the commit point stops before it and it is redelivered. The key's queued
// inputs are abandoned with it, to keep their order.
func (w *partitionWorker) abandon(j *job) {
	w.mu.Lock()
	q := w.keys[j.key]
	var gone []*job
	if q.head == j {
		delete(w.keys, j.key)
		for x := q.head; x != nil; x = x.next {
			gone = append(gone, x)
		}
	} else {
		gone = []*job{j} // defensive: a job always heads its key's queue while it runs
	}
	w.running -= len(gone)
	idle := w.running == 0
	w.mu.Unlock()
	for _, x := range gone {
		if x.run != nil {
			x.run.abandoned(x.msg.Offset)
		} else {
			w.tracker.Abandon(x.msg.Offset)
		}
		w.journal.finished(x, false)
		w.window.Release(x.program, x.size)
	}
	if idle {
		w.signalIdle()
	}
}

// keyQueue is one key's admitted jobs in offset order, linked through
// job.next (no slice to allocate per key); the head is running.
type keyQueue struct{ head, tail *job }

// enqueue puts an admitted job behind earlier jobs of its key and starts
// it when it is first.
func (w *partitionWorker) enqueue(j *job) {
	w.mu.Lock()
	q := w.keys[j.key]
	first := q.head == nil
	if first {
		q.head = j
	} else {
		q.tail.next = j
	}
	q.tail = j
	w.keys[j.key] = q
	w.running++
	w.mu.Unlock()
	if first {
		w.pool.submit(func() { w.prepare(j) }, j.run != nil, j.program)
	}
}

// next drops a finished job from its key's queue and starts the following.
func (w *partitionWorker) next(j *job) {
	w.mu.Lock()
	q := w.keys[j.key]
	var nj *job
	if q.head == j {
		q.head, j.next = j.next, nil
		nj = q.head
	}
	if q.head == nil {
		delete(w.keys, j.key)
	} else {
		w.keys[j.key] = q
	}
	w.running--
	idle := w.running == 0
	w.mu.Unlock()
	if nj != nil {
		w.pool.submit(func() { w.prepare(nj) }, nj.run != nil, nj.program)
	}
	if idle {
		w.signalIdle()
	}
}

// spent adds records Leadspace accepted to the tenant's credits on this
// partition (and to the Run's, for a Run's record).
func (w *partitionWorker) spent(tenant string, j *job, n int) {
	if n == 0 {
		return
	}
	w.mu.Lock()
	w.credits[tenant] += int64(n)
	w.mu.Unlock()
	w.table.MarkDirty(tenant)
	if j.run != nil {
		j.run.charge(j.msg.Offset, 0, int64(n))
	}
	w.metrics.records.WithLabelValues(tenant).Add(float64(n))
}

// jobSize is what a record counts against the window's memory bound: its
// bytes plus what the pipeline holds beside them.
func jobSize(msg kafka.Message) int {
	n := len(msg.Key) + len(msg.Value) + 1024
	for _, h := range msg.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}
