package leadspace

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

// Outcome is what became of one submitted record.
type Outcome struct {
	Result // the answer, when Err == nil
	// Err is nil, or an *Error (Class, Reason). It is ClassRetryable only
	// when the record gave up (ReasonRetriesExhausted, after GiveUpAfter or
	// MaxAttempts).
	Err error
	// Sent counts the requests Leadspace accepted that carried this record
	// (a single call answered 200, a bulk submit answered 2xx): each may
	// cost a credit. Every attempt, resubmit and retry is counted. A
	// request whose answer never arrived (timeout, reset, Close) is not,
	// though Leadspace may have charged it.
	Sent int
	// Attempts counts the requests that carried this record, answered or not.
	Attempts int
	// FirstFailure is the first failed attempt (or first wait on an open
	// breaker); zero if none. LastFailure is the latest.
	FirstFailure time.Time
	LastFailure  time.Time
}

// Program is one Leadspace program (one set of credentials) with the state
// Leadspace meters per program: an adaptive rate limiter, a circuit breaker,
// the queue of submitted records and the dispatcher that turns it into
// transactions. Get it from Client.Program. Safe for concurrent use.
type Program struct {
	resumeState
	c       *Client
	key     string
	auth    tokenSource
	invalid error // credentials that can never work
	lim     *limiter
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	clock   *pollClock
	log     *zap.Logger
	metrics *metrics

	kick       chan struct{} // new work for the dispatcher
	breakerHop chan struct{} // the breaker changed state
	openedAt   atomic.Int64  // unix nanos of the last opening

	mu      sync.Mutex
	ready   deque   // records waiting for a transaction (with tombstones of finished ones)
	readyN  int     // live records in ready
	later   delayed // records backing off
	pending int     // records submitted and not yet done
	groups  map[<-chan struct{}]*ctxGroup
	closed  bool
	// breakerWait: the dispatcher waits on an open breaker, so a record
	// submitted now starts its failure clock at once.
	breakerWait bool

	transactions atomic.Int64
	recordsSent  atomic.Int64
	rateLimited  atomic.Int64
	retries      atomic.Int64
	singles      atomic.Int64
	bulks        atomic.Int64
	polls        atomic.Int64
}

// ctxGroup is the records that share one context's Done channel: one
// AfterFunc cancels them all, so a cancelled tenant costs one goroutine, not
// one per record.
type ctxGroup struct {
	ctx  context.Context
	stop func() bool
	recs map[*record]struct{}
}

func newProgram(c *Client, key string, creds Credentials, ceiling float64) *Program {
	log := c.log.With(zap.String("program", key))
	p := &Program{
		c:          c,
		key:        key,
		log:        log,
		metrics:    c.metrics,
		lim:        newLimiter(ceiling, min(c.cfg.MinTPS, ceiling), c.cfg.Burst, c.cfg.now),
		clock:      newPollClock(&c.cfg),
		kick:       make(chan struct{}, 1),
		breakerHop: make(chan struct{}, 1),
		groups:     make(map[<-chan struct{}]*ctxGroup),
	}
	p.cb = newBreaker(key, c.cfg.Breaker, log, c.metrics, p.breakerChanged)
	if err := creds.validate(); err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = &Error{Class: ClassAuth, Reason: ReasonUnauthorized, Err: err}
		}
		p.invalid = e
	}
	if creds.OAuth != nil {
		p.auth = newOAuthSource(p, *creds.OAuth)
	} else {
		p.auth = staticToken(creds.Token)
	}
	if p.invalid == nil {
		c.wg.Add(1)
		go p.dispatch()
	}
	return p
}

// Key is the program's non-secret id (Credentials.Key).
func (p *Program) Key() string { return p.key }

func (p *Program) now() time.Time { return p.c.cfg.now() }

// Submit queues req on the program and returns at once; done is called
// exactly once, on another goroutine, when the record has its outcome.
//
// The program's dispatcher sends queued records as single calls while few
// wait, and as bulk submits (up to BulkMaxRecords) once BulkThreshold
// records wait for the next transaction. Retryable failures put the record
// back into the queue with backoff, and an open breaker holds it there, until
// GiveUpAfter since its first failure. Auth (401, 403, invalid token), credit
// (427) and input (400, bulk code 1200) failures come back at once.
//
// If ctx ends before the record left in a request, done gets ClassCanceled
// with Sent 0 and nothing of it is ever sent; if ctx ends while it is inside
// a request, the answer is dropped (Sent still counts it) and it is never
// sent again. A done callback must not block for long: it runs on the
// goroutine that settles a whole bulk.
func (p *Program) Submit(ctx context.Context, req Request, done func(Outcome)) {
	p.enqueue(ctx, []Request{req}, []func(Outcome){done})
}

// enqueue queues records in one step, so a batch reaches the dispatcher
// whole (EnrichBulk relies on it to fill bulks).
func (p *Program) enqueue(ctx context.Context, reqs []Request, dones []func(Outcome)) {
	if err := p.refusal(ctx); err != nil {
		out := make([]delivery, len(reqs))
		for i, req := range reqs {
			out[i] = delivery{r: &record{req: req, done: dones[i]}, err: err}
		}
		go p.deliver(out)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		out := make([]delivery, len(reqs))
		for i, req := range reqs {
			out[i] = delivery{r: &record{req: req, done: dones[i]}, err: newError(ClassCanceled, ReasonClosed, nil)}
		}
		go p.deliver(out)
		return
	}
	var g *ctxGroup
	if d := ctx.Done(); d != nil {
		if g = p.groups[d]; g == nil {
			g = &ctxGroup{ctx: ctx, recs: make(map[*record]struct{})}
			// AfterFunc runs the function on its own goroutine, never
			// here, so registering under p.mu is safe.
			g.stop = context.AfterFunc(ctx, func() { p.ctxEnded(d) })
			p.groups[d] = g
		}
	}
	now := p.now()
	for i, req := range reqs {
		r := &record{req: req, ctx: ctx, done: dones[i], state: stReady, heapIdx: -1}
		if r.done == nil {
			r.done = func(Outcome) {}
		}
		if p.breakerWait {
			r.tally.FirstFailure, r.tally.LastFailure = now, now
		}
		if g != nil {
			g.recs[r] = struct{}{}
		}
		p.ready.pushBack(r)
		p.readyN++
	}
	p.pending += len(reqs)
	n := p.pending
	p.mu.Unlock()
	p.metrics.pending(p.key, n)
	p.wake()
}

// refusal fails a record at once: ended context, closed client, bad
// credentials. Nothing is queued or sent.
func (p *Program) refusal(ctx context.Context) error {
	switch {
	case ctx.Err() != nil:
		return canceled(ctx.Err())
	case p.c.closed():
		return newError(ClassCanceled, ReasonClosed, nil)
	case p.invalid != nil:
		return p.invalid
	}
	return nil
}

// Enrich enriches one record and waits for its outcome: Submit made
// blocking. ctx ending returns at once with ClassCanceled; a record not yet
// sent is then never sent.
func (p *Program) Enrich(ctx context.Context, req Request) (Result, error) {
	ch := make(chan Outcome, 1)
	p.Submit(ctx, req, func(o Outcome) { ch <- o })
	select {
	case o := <-ch:
		return o.Result, o.Err
	case <-ctx.Done():
		return Result{ExternalID: req.ExternalID}, canceled(ctx.Err())
	}
}

// EnrichBulk submits reqs together and waits for all of them: a backlog
// handed over at once, so it goes out in bulk submits of up to
// BulkMaxRecords (when it holds at least BulkThreshold records). Results are
// aligned with reqs.
//
// When any record fails, err is a *BulkError whose Errs are aligned with
// reqs. Records need unique, non-empty ExternalIDs, since that is how bulk
// results find their records; others fail with ReasonDuplicateExternal and
// are not sent.
func (p *Program) EnrichBulk(ctx context.Context, reqs []Request) ([]Result, error) {
	results := make([]Result, len(reqs))
	errs := make([]error, len(reqs))
	seen := make(map[string]bool, len(reqs))
	var ok []Request
	var dones []func(Outcome)
	var wg sync.WaitGroup
	for i, r := range reqs {
		if r.ExternalID == "" || seen[r.ExternalID] {
			errs[i] = newError(ClassInput, ReasonDuplicateExternal, errors.New("bulk records need unique, non-empty external ids"))
			continue
		}
		seen[r.ExternalID] = true
		ok = append(ok, r)
		wg.Add(1)
		dones = append(dones, func(o Outcome) {
			results[i], errs[i] = o.Result, o.Err
			wg.Done()
		})
	}
	if len(ok) > 0 {
		p.enqueue(ctx, ok, dones)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return results, &BulkError{Errs: errs}
		}
	}
	return results, nil
}

// Verify checks the credentials with one real single call for a harmless
// probe company, outside the queue and without retries. It spends at most
// one credit.
func (p *Program) Verify(ctx context.Context) error {
	if err := p.refusal(ctx); err != nil {
		return err
	}
	body, err := singleBody(probeRequest)
	if err != nil {
		return err
	}
	done, err := p.admit(ctx, epSingle, true)
	if err != nil {
		return err
	}
	resp, _, err := p.exchange(ctx, call{ep: epSingle, method: http.MethodPost, path: pathSingle, body: body, records: 1}, done)
	if err != nil {
		return err
	}
	_, err = singleResult(resp)
	return err
}

// Pending is the number of records queued or in flight on the program.
func (p *Program) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending
}

// Capacity is how many records the program wants queued or in flight to
// keep its admitted transaction rate busy with full bulks, by Little's law
// (see littleCapacity):
//
//	λ = TPS now · BulkMaxRecords / (1 + polls per bulk)   (polls 0 if FreePolls)
//	Capacity = BulkMaxRecords · ⌈λ · cycle · 1.25 / BulkMaxRecords⌉ + BulkMaxRecords
//
// TPS now is the limiter's current rate (the fleet's share, after AIMD);
// polls per bulk and the cycle (a bulk's dispatch → results) are measured.
// Before any bulk was measured it assumes no poll (none is due before the
// first results) and a cycle of BulkPollFirst + 250ms: 24,000 records at
// the defaults (30 TPS). It is never below 2 × BulkMaxRecords nor above
// MaxBacklogRecords (100,000).
func (p *Program) Capacity() int {
	_, ppb, cycle, measured := p.clock.snapshot()
	if p.c.cfg.FreePolls || !measured {
		// Until the first bulk comes back no poll is due: every
		// transaction is a submit, and the first cycle's bulks leave at
		// twice the steady rate.
		ppb = 0
	}
	n := littleCapacity(p.lim.tps(), p.c.cfg.BulkMaxRecords, ppb, cycle)
	p.metrics.capacity(p.key, n)
	return n
}

// ProgramStats is a snapshot of a program's counters since the client
// started, for status pages and tests.
type ProgramStats struct {
	Key            string
	Transactions   int64         // HTTP requests sent to the gateway (single, bulk, poll)
	RecordsSent    int64         // records carried by single calls and bulk submits
	SingleCalls    int64         // single-call requests sent
	BulkSubmits    int64         // bulk submits sent
	Polls          int64         // bulk polls sent
	RateLimited    int64         // 429 answers
	Retries        int64         // records put back into the queue after a retryable failure
	Pending        int           // records queued or in flight
	Capacity       int           // Little's law (Capacity)
	TPS            float64       // current limiter rate
	Ceiling        float64       // the most the limiter allows: TPS / fleet size
	BreakerState   string        // "closed", "half-open" or "open"
	BulkTurnaround time.Duration // learnt turnaround: when a bulk is first polled
	PollsPerBulk   float64       // moving average
	BulkCycle      time.Duration // moving average of dispatch → results
}

// Stats returns the program's counters.
func (p *Program) Stats() ProgramStats {
	tps := p.lim.tps()
	p.metrics.tps(p.key, tps)
	est, ppb, cycle, _ := p.clock.snapshot()
	return ProgramStats{
		Key:            p.key,
		Transactions:   p.transactions.Load(),
		RecordsSent:    p.recordsSent.Load(),
		SingleCalls:    p.singles.Load(),
		BulkSubmits:    p.bulks.Load(),
		Polls:          p.polls.Load(),
		RateLimited:    p.rateLimited.Load(),
		Retries:        p.retries.Load(),
		Pending:        p.Pending(),
		Capacity:       p.Capacity(),
		TPS:            tps,
		Ceiling:        p.lim.ceiling(),
		BreakerState:   p.cb.State().String(),
		BulkTurnaround: est,
		PollsPerBulk:   ppb,
		BulkCycle:      cycle,
	}
}

// errField logs an error; our errors never contain the token.
func errField(err error) zap.Field { return zap.Error(err) }
