package leadspace

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

// Program is one Leadspace program (one set of credentials) with the state
// Leadspace meters per program. Get it from Client.Program. Safe for
// concurrent use by any number of goroutines.
type Program struct {
	c       *Client
	key     string
	auth    tokenSource
	invalid error // credentials that can never work
	lim     *limiter
	cb      *gobreaker.CircuitBreaker[*response]
	batch   *batcher
	log     *zap.Logger
	metrics *metrics

	inflight     atomic.Int64 // Enrich calls in progress: the backlog signal
	transactions atomic.Int64
	recordsSent  atomic.Int64
	rateLimited  atomic.Int64
	retries      atomic.Int64
	singles      atomic.Int64
	bulks        atomic.Int64
	polls        atomic.Int64
}

func newProgram(c *Client, key string, creds Credentials) *Program {
	log := c.log.With(zap.String("program", key))
	p := &Program{
		c:       c,
		key:     key,
		log:     log,
		metrics: c.metrics,
		lim:     newLimiter(c.cfg.TPS, c.cfg.MinTPS, c.cfg.Burst, c.cfg.now),
		cb:      newBreaker(key, c.cfg.Breaker, log, c.metrics),
	}
	p.batch = newBatcher(p)
	if err := creds.validate(); err != nil {
		p.invalid = &Error{Class: ClassAuth, Reason: ReasonUnauthorized, Err: err}
	}
	if creds.OAuth != nil {
		p.auth = newOAuthSource(p, *creds.OAuth)
	} else {
		p.auth = staticToken(creds.Token)
	}
	return p
}

// Key is the program's non-secret id (Credentials.Key).
func (p *Program) Key() string { return p.key }

// Enrich enriches one record. While the program has few records in flight
// it makes a single call; once BulkThreshold records are in flight, records
// are gathered into bulk submits (up to BulkMaxRecords each) while they wait
// for the program's next transaction. Retries happen inside; see Error for
// what the returned classes mean. ctx ending returns promptly with a
// ClassCanceled error; a record still being gathered is then never sent.
func (p *Program) Enrich(ctx context.Context, req Request) (Result, error) {
	if err := p.usable(ctx); err != nil {
		return Result{}, err
	}
	n := p.inflight.Add(1)
	defer p.inflight.Add(-1)
	var (
		res Result
		err error
		ok  bool
	)
	if n >= int64(p.c.cfg.BulkThreshold) {
		res, err, ok = p.batch.enrich(ctx, req)
	}
	if !ok {
		res, err = p.enrichSingle(ctx, req)
	}
	p.metrics.result(p.key, res, err)
	return res, err
}

// EnrichSingle enriches one record with POST /enrichment/enrich/single,
// retrying transient failures.
func (p *Program) EnrichSingle(ctx context.Context, req Request) (Result, error) {
	if err := p.usable(ctx); err != nil {
		return Result{}, err
	}
	return p.enrichSingle(ctx, req)
}

func (p *Program) enrichSingle(ctx context.Context, req Request) (Result, error) {
	body, err := singleBody(req)
	if err != nil {
		return Result{}, newError(ClassInput, ReasonInputRejected, err)
	}
	var res Result
	err = p.retry(ctx, "single", func(ctx context.Context) error {
		var err error
		res, err = p.single(ctx, body)
		return err
	})
	res.ExternalID = req.ExternalID
	return res, err
}

// single is one single-call transaction.
func (p *Program) single(ctx context.Context, body []byte) (Result, error) {
	resp, err := p.exchange(ctx, call{ep: epSingle, method: http.MethodPost, path: pathSingle, body: body, records: 1})
	if err != nil {
		return Result{}, err
	}
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

// Verify checks the credentials with one real single call for a harmless
// probe company, without retries. It spends at most one credit.
func (p *Program) Verify(ctx context.Context) error {
	if err := p.usable(ctx); err != nil {
		return err
	}
	body, err := singleBody(probeRequest)
	if err != nil {
		return err
	}
	_, err = p.single(ctx, body)
	return err
}

// usable fails fast for closed clients, ended contexts and bad credentials.
func (p *Program) usable(ctx context.Context) error {
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

// ProgramStats is a snapshot of a program's counters since the client
// started, for status pages and tests.
type ProgramStats struct {
	Key          string
	Transactions int64   // HTTP requests sent to the gateway (single, bulk, poll)
	RecordsSent  int64   // records sent on single calls and bulk submits
	SingleCalls  int64   // single-call requests sent
	BulkSubmits  int64   // bulk submits sent
	Polls        int64   // bulk polls sent
	RateLimited  int64   // 429 answers
	Retries      int64   // attempts repeated after a retryable failure
	InFlight     int64   // Enrich calls in progress
	TPS          float64 // current limiter rate
	BreakerState string  // "closed", "half-open" or "open"
}

// Stats returns the program's counters.
func (p *Program) Stats() ProgramStats {
	tps := p.lim.tps()
	p.metrics.tps(p.key, tps)
	return ProgramStats{
		Key:          p.key,
		Transactions: p.transactions.Load(),
		RecordsSent:  p.recordsSent.Load(),
		SingleCalls:  p.singles.Load(),
		BulkSubmits:  p.bulks.Load(),
		Polls:        p.polls.Load(),
		RateLimited:  p.rateLimited.Load(),
		Retries:      p.retries.Load(),
		InFlight:     p.inflight.Load(),
		TPS:          tps,
		BreakerState: p.cb.State().String(),
	}
}

// errField logs an error; our errors never contain the token.
func errField(err error) zap.Field { return zap.Error(err) }
