package leadspace

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
)

// bulkJob is an accepted bulk whose results are awaited.
type bulkJob struct {
	recs       []*record
	path       string    // where to poll
	dispatched time.Time // sealed by the dispatcher
	submitted  time.Time // its submit was accepted
}

// sendBulk is one bulk submit, then the polls for its results, on this
// goroutine. A bulk is never resubmitted while its id can still be polled:
// there is no idempotency key and every record costs credits again.
func (p *Program) sendBulk(recs []*record, done func(error)) {
	dispatched := p.now()
	reqs := make([]Request, len(recs))
	for i, r := range recs {
		reqs[i] = r.req
	}
	body, err := bulkBody(reqs)
	if err != nil {
		done(errNotSent)
		p.settle(recs, 0, false, nil, newError(ClassInput, ReasonInputRejected, err))
		return
	}
	resp, n, err := p.exchange(p.c.ctx, call{ep: epBulk, method: http.MethodPost, path: pathBulk, body: body, records: len(recs)}, done)
	accepted := err == nil
	var path string
	if accepted {
		if path, err = parseBulkAccepted(resp.body); err != nil {
			// Paid for and lost: the records go again (Sent counts both).
			err = &Error{Class: ClassRetryable, Reason: ReasonBadResponse, StatusCode: resp.status, Err: err}
		}
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.StatusCode == http.StatusBadRequest && len(recs) > 1 {
			// Refused as a whole: one record may have spoilt it for all.
			// Each goes again alone, so only a bad one fails (ClassInput).
			p.refusedBulk(recs, n)
			return
		}
		p.settle(recs, n, accepted, nil, err)
		return
	}
	b := &bulkJob{path: path, dispatched: dispatched, submitted: p.now()}
	if hook := p.c.cfg.BulkAccepted; hook != nil {
		// Before the first poll: if this process dies now, whoever redoes
		// these records can read the bulk instead of paying again.
		refs := make([]any, len(recs))
		for i, r := range recs {
			refs[i] = r.req.Ref
		}
		hook(p.key, path, refs)
	}
	var out []delivery
	p.mu.Lock()
	for _, r := range recs {
		r.tally.Attempts += n
		r.tally.Sent++
		switch {
		case r.state == stDone:
		case r.canceled || r.ctx.Err() != nil:
			// Left while the submit was on its way: the answer is dropped.
			d, _ := p.settleLocked(r, nil, nil, b.submitted)
			out = append(out, d)
		default:
			r.state = stPolling
			b.recs = append(b.recs, r)
		}
	}
	p.mu.Unlock()
	p.deliver(out)
	if len(b.recs) > 0 {
		p.poll(b)
	}
}

func (p *Program) refusedBulk(recs []*record, requests int) {
	var out []delivery
	p.mu.Lock()
	for _, r := range recs {
		r.tally.Attempts += requests
		if d, ok := p.requeueSingleLocked(r); ok {
			out = append(out, d)
		}
	}
	p.mu.Unlock()
	p.deliver(out)
	p.wake()
}

// poll asks for a bulk's results until they are ready. The first poll goes
// when the program's learnt turnaround says they are likely ready; each
// poll that finds them not ready waits a step longer (BulkPollMin doubling
// up to BulkPollMax). Transient failures and an open breaker only delay the
// next poll: the results are paid for, so giving up early would mean paying
// again. Unless FreePolls, each poll waits for a limiter token like any
// transaction. UNCERTAIN(docs/leadspace.md §7): whether polls count.
func (p *Program) poll(b *bulkJob) {
	cfg := &p.c.cfg
	ctx := p.c.ctx
	var (
		polls, failures int
		step            = cfg.BulkPollMin
		learn           = true // no failure disturbed the timing
		due             time.Time
	)
	for {
		if polls == 0 && failures == 0 {
			// Another bulk may raise the estimate while we wait: re-read it.
			for {
				d := b.submitted.Add(p.clock.first()).Sub(p.now())
				if d <= 0 {
					break
				}
				if retry.Sleep(ctx, d) != nil {
					break
				}
			}
		} else {
			_ = retry.Sleep(ctx, due.Sub(p.now()))
		}
		if ctx.Err() != nil {
			p.settleBulk(b, nil, canceled(ctx.Err()))
			return
		}
		if !p.bulkLive(b) {
			return // every record left: nobody wants these results
		}
		if since := p.now().Sub(b.submitted); since > cfg.BulkMaxWait {
			p.settleBulk(b, nil, newError(ClassRetryable, ReasonBulkTimeout, fmt.Errorf("bulk not ready after %s", cfg.BulkMaxWait)))
			return
		}
		done, err := p.admit(ctx, epPoll, !cfg.FreePolls)
		if err != nil {
			if ctx.Err() == nil {
				failures++
				learn = false
				due = p.now().Add(cfg.retries().Delay(failures))
			}
			continue
		}
		at := p.now().Sub(b.submitted)
		resp, _, err := p.exchange(ctx, call{ep: epPoll, method: http.MethodGet, path: b.path}, done)
		polls++
		var e *Error
		switch {
		case err == nil && resp.status == http.StatusOK:
			results, perr := parseBulkResults(resp.body)
			if perr != nil {
				// Results stay fetchable: ask again rather than pay again.
				failures++
				learn = false
				due = p.now().Add(cfg.retries().Delay(failures))
				continue
			}
			cycle := p.now().Sub(b.dispatched)
			p.clock.ready(polls, cycle, learn)
			est, _, _, _ := p.clock.snapshot()
			p.metrics.bulkDone(p.key, polls, cycle, est)
			p.settleBulk(b, results, nil)
			return
		case err == nil: // 204 (or 202): still processing
			if learn {
				p.clock.notReady(at)
			}
			due = p.now().Add(step)
			step = min(2*step, cfg.BulkPollMax)
		case errors.As(err, &e) && e.StatusCode == http.StatusNotFound:
			// UNCERTAIN(docs/leadspace.md §3): 404 means the id is unknown;
			// the records are resubmitted.
			p.settleBulk(b, nil, &Error{Class: ClassRetryable, Reason: ReasonBulkNotFound, StatusCode: e.StatusCode,
				TrackingID: e.TrackingID, Err: e.Err})
			return
		case retryable(err):
			failures++
			learn = false
			due = p.now().Add(cfg.retries().Delay(failures))
		default:
			p.settleBulk(b, nil, err)
			return
		}
	}
}

// bulkLive says some record of the bulk still waits for its results.
func (p *Program) bulkLive(b *bulkJob) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range b.recs {
		if r.state == stPolling {
			return true
		}
	}
	return false
}

// settleBulk hands each waiting record its result from results, or err.
// A record missing from the results, or failed inside Leadspace (code
// 1100), goes back into the queue; code 1200 is ClassInput.
func (p *Program) settleBulk(b *bulkJob, results *bulkResults, err error) {
	now := p.now()
	out := make([]delivery, 0, len(b.recs))
	requeued := false
	p.mu.Lock()
	for _, r := range b.recs {
		if r.state != stPolling {
			continue
		}
		var res *Result
		rerr := err
		if results != nil {
			rec, ok := results.lookup(r.req.ExternalID)
			switch {
			case !ok:
				// UNCERTAIN(docs/leadspace.md §7): a bulk that ran out of
				// credits returns partial results; a resubmit then gets 427.
				rerr = newError(ClassRetryable, ReasonRecordFailed, errors.New("record missing from bulk results"))
			case rec.err != nil:
				rerr = rec.err
			default:
				res = &rec.result
			}
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

// parseBulkAccepted reads the 202 answer {"id": "/v3/enrichment/results/<id>"}
// into the path to poll. A bare id is accepted too.
// UNCERTAIN(docs/leadspace.md §3): the id-is-a-path shape is from a
// third-party profile.
func parseBulkAccepted(body []byte) (string, error) {
	var a struct {
		ID flexString `json:"id"`
	}
	if err := decodeObject(body, &a); err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(a.ID))
	if id == "" {
		return "", errors.New("bulk answer has no id")
	}
	if !strings.HasPrefix(id, "/") {
		return "/v3/enrichment/results/" + url.PathEscape(id), nil
	}
	return checkResultsPath(id)
}

// checkResultsPath keeps a results path from the network (or from a
// journal) a plain path on our gateway.
func checkResultsPath(path string) (string, error) {
	u, err := url.Parse(path)
	if err != nil || !strings.HasPrefix(path, "/") || u.Scheme != "" || u.Host != "" || strings.HasPrefix(path, "//") || strings.Contains(path, "..") {
		return "", errors.New("bulk id is not a results path")
	}
	return path, nil
}

// bulkRecord is one record's outcome in a bulk's results.
type bulkRecord struct {
	result Result
	err    error
}

// Record-level failure codes inside a successful bulk (docs/leadspace.md §3).
const (
	recordInternalError = 1100 // retriable
	recordInvalidInput  = 1200
)

// parseBulkResults reads {"results": [...]} into records keyed by external
// id (see answer.go).
func parseBulkResults(body []byte) (*bulkResults, error) {
	out := &bulkResults{recs: make([]bulkRecord, 0, 500), index: make(map[string]int, 500)}
	err := readAnswer(body, func(r *jsonReader) {
		r.fields(func(key []byte) {
			if string(key) != "results" {
				return
			}
			out.recs, out.index = out.recs[:0], make(map[string]int, 500) // the last of duplicate keys wins
			r.elements(func() {
				if a := readRecord(r); a.externalID != "" {
					out.put(a.externalID, a.outcome())
				}
			})
		})
	})
	if err != nil {
		return nil, &Error{Class: ClassRetryable, Reason: ReasonBadResponse, StatusCode: http.StatusOK, Err: err}
	}
	return out, nil
}

// bulkResults are a bulk's records by external id, in one slice with an
// index: a map of the records themselves (440 bytes each) would allocate
// every one apart.
type bulkResults struct {
	recs  []bulkRecord
	index map[string]int
}

// put adds a record; a later one with the same id wins.
func (b *bulkResults) put(id string, rec bulkRecord) {
	if i, ok := b.index[id]; ok {
		b.recs[i] = rec
		return
	}
	b.index[id] = len(b.recs)
	b.recs = append(b.recs, rec)
}

// lookup is the record of an external id.
func (b *bulkResults) lookup(id string) (*bulkRecord, bool) {
	i, ok := b.index[id]
	if !ok {
		return nil, false
	}
	return &b.recs[i], true
}

func (a *answer) outcome() bulkRecord {
	code := first3(a.errorCode, a.code, a.errCode)
	msg := truncate(a.errMessage, 300)
	switch {
	case code == recordInvalidInput || strings.EqualFold(a.status, "Invalid Input"):
		return bulkRecord{err: recordError(ClassInput, ReasonInputRejected, recordInvalidInput, msg)}
	case code != 0:
		return bulkRecord{err: recordError(ClassRetryable, ReasonRecordFailed, code, msg)}
	case !a.hasData:
		return bulkRecord{err: recordError(ClassRetryable, ReasonRecordFailed, 0, "record has no data")}
	}
	return bulkRecord{result: a.result()}
}

func recordError(class Class, reason string, code int64, msg string) *Error {
	text := fmt.Sprintf("record code %d", code)
	if msg != "" {
		text += ": " + msg
	}
	return &Error{Class: class, Reason: reason, Err: errors.New(text)}
}

func first3(v ...int64) int64 {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}
