package leadspace

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
)

// A bulk's answers are paid for when Leadspace accepts its submit, and they
// stay fetchable by the bulk's id. A process that dies while it polls loses
// them; the one that takes over its work would pay for the same records
// again. So the client tells its owner about every accepted bulk
// (Config.BulkAccepted), the owner writes that down somewhere durable, and
// whoever redoes a record from such a bulk asks with Resume first.
//
// UNCERTAIN(docs/leadspace.md §3): how long Leadspace keeps a bulk's results
// fetchable is not documented. A bulk that is gone (404) or no longer has
// the record sends the record again, as Submit would.

// resumed is one earlier bulk that records wait on.
type resumed struct {
	path    string
	waiting []resumer
	results *bulkResults // once fetched
	err     error        // the bulk could not be read
	done    bool
}

type resumer struct {
	ctx  context.Context
	req  Request
	fn   func(Outcome)
	from time.Time
}

// resumedKeep is how long fetched results serve later resumers of the
// same bulk (records of one bulk come back from many partitions).
const resumedKeep = 2 * time.Minute

// Resume asks the bulk at path, submitted earlier (by this process or one
// that died), for req's answer before sending req again. When the bulk's
// results hold the record, done gets its answer with Sent 1 and Attempts 1:
// Leadspace accepted it once, in that bulk, and nothing is sent now.
// Otherwise (the bulk is unknown, expired or lacks the record, or failed
// it) req is submitted as by Submit. One poll serves every record waiting
// on the same bulk.
func (p *Program) Resume(ctx context.Context, req Request, path string, done func(Outcome)) {
	if err := p.refusal(ctx); err != nil {
		go done(Outcome{Result: Result{ExternalID: req.ExternalID}, Err: err})
		return
	}
	if _, err := checkResultsPath(path); err != nil || req.ExternalID == "" {
		p.Submit(ctx, req, done)
		return
	}
	r := resumer{ctx: ctx, req: req, fn: done, from: p.now()}
	p.resumeMu.Lock()
	if p.resumes == nil {
		p.resumes = map[string]*resumed{}
	}
	b := p.resumes[path]
	if b != nil && b.done {
		results, berr := b.results, b.err
		p.resumeMu.Unlock()
		go p.answerResumer(r, results, berr)
		return
	}
	start := b == nil
	if start {
		b = &resumed{path: path}
		p.resumes[path] = b
	}
	b.waiting = append(b.waiting, r)
	p.resumeMu.Unlock()
	if start {
		p.c.wg.Add(1)
		go p.fetchResumed(b)
	}
}

// fetchResumed polls an earlier bulk until its results are in, it is known
// to be gone, or BulkMaxWait passed, then answers its resumers.
func (p *Program) fetchResumed(b *resumed) {
	defer p.c.wg.Done()
	cfg := &p.c.cfg
	ctx := p.c.ctx
	begin := p.now()
	step := cfg.BulkPollMin
	var results *bulkResults
	var err error
	for failures := 0; ; {
		done, aerr := p.admit(ctx, epPoll, !cfg.FreePolls)
		if aerr == nil {
			var resp *response
			resp, _, aerr = p.exchange(ctx, call{ep: epPoll, method: http.MethodGet, path: b.path}, done)
			if aerr == nil && resp.status == http.StatusOK {
				results, err = parseBulkResults(resp.body)
				if err == nil {
					break
				}
			} else if aerr == nil {
				// 204: the bulk is still being processed.
				failures = 0
				if retry.Sleep(ctx, step) != nil {
					err = canceled(ctx.Err())
					break
				}
				step = min(2*step, cfg.BulkPollMax)
				continue
			}
		}
		var e *Error
		if errors.As(aerr, &e) && e.StatusCode == http.StatusNotFound {
			err = aerr // unknown or expired: the records go again
			break
		}
		if ctx.Err() != nil || p.now().Sub(begin) > cfg.BulkMaxWait {
			err = aerr
			if err == nil {
				err = newError(ClassRetryable, ReasonBulkTimeout, nil)
			}
			break
		}
		failures++
		if retry.Sleep(ctx, cfg.retries().Delay(failures)) != nil {
			err = canceled(ctx.Err())
			break
		}
	}
	p.resumeMu.Lock()
	b.results, b.err, b.done = results, err, true
	waiting := b.waiting
	b.waiting = nil
	p.resumeMu.Unlock()
	p.metrics.resumed(p.key, err == nil)
	for _, r := range waiting {
		p.answerResumer(r, results, err)
	}
	time.AfterFunc(resumedKeep, func() {
		p.resumeMu.Lock()
		delete(p.resumes, b.path)
		p.resumeMu.Unlock()
	})
}

// answerResumer gives a resumer its answer from the earlier bulk, or
// submits its record.
func (p *Program) answerResumer(r resumer, results *bulkResults, err error) {
	if err == nil {
		if rec, ok := results.lookup(r.req.ExternalID); ok && rec.err == nil {
			res := rec.result
			res.ExternalID = r.req.ExternalID
			r.fn(Outcome{Result: res, Sent: 1, Attempts: 1})
			return
		}
	}
	if r.ctx.Err() != nil {
		r.fn(Outcome{Result: Result{ExternalID: r.req.ExternalID}, Err: canceled(r.ctx.Err())})
		return
	}
	p.Submit(r.ctx, r.req, r.fn)
}

// resumeState is the part of Program that Resume keeps.
type resumeState struct {
	resumeMu sync.Mutex
	resumes  map[string]*resumed
}
