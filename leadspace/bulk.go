package leadspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// EnrichBulk enriches reqs with bulk submits (POST /enrichment/enrich/bulk)
// of up to BulkMaxRecords records each, sent concurrently, each polled until
// its results are in. Results are aligned with reqs.
//
// When any record fails, err is a *BulkError whose Errs are aligned with
// reqs. Records need unique, non-empty ExternalIDs, since that is how
// results find their records; others fail with ReasonDuplicateExternal and
// are not sent. A record rejected by Leadspace (code 1200) fails with
// ClassInput; one that failed inside Leadspace (code 1100) is resubmitted
// alone, within the retry budget. A bulk is never resubmitted before its id
// was polled: there is no idempotency key and every record costs credits.
func (p *Program) EnrichBulk(ctx context.Context, reqs []Request) ([]Result, error) {
	if err := p.usable(ctx); err != nil {
		return nil, err
	}
	return p.enrichBulk(ctx, reqs, false)
}

func (p *Program) enrichBulk(ctx context.Context, reqs []Request, tokenHeld bool) ([]Result, error) {
	results := make([]Result, len(reqs))
	errs := make([]error, len(reqs))
	seen := make(map[string]bool, len(reqs))
	var ok []int
	for i, r := range reqs {
		if r.ExternalID == "" || seen[r.ExternalID] {
			errs[i] = newError(ClassInput, ReasonDuplicateExternal, errors.New("bulk records need unique, non-empty external ids"))
			continue
		}
		seen[r.ExternalID] = true
		ok = append(ok, i)
	}
	var wg sync.WaitGroup
	for start := 0; start < len(ok); start += p.c.cfg.BulkMaxRecords {
		chunk := ok[start:min(start+p.c.cfg.BulkMaxRecords, len(ok))]
		held := tokenHeld && start == 0
		wg.Go(func() { p.bulkChunk(ctx, reqs, chunk, results, errs, held) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return results, &BulkError{Errs: errs}
		}
	}
	return results, nil
}

// bulkChunk gets one chunk's records done, resubmitting only the records
// that failed retryably, within MaxAttempts and MaxElapsed. It writes only
// the indexes in idx, so chunks can share results and errs.
func (p *Program) bulkChunk(ctx context.Context, reqs []Request, idx []int, results []Result, errs []error, tokenHeld bool) {
	cfg := &p.c.cfg
	start := cfg.now()
	pending := idx
	for attempt := 1; ; attempt++ {
		recErrs := p.bulkAttempt(ctx, reqs, pending, results, tokenHeld)
		tokenHeld = false
		var next []int
		for k, i := range pending {
			errs[i] = recErrs[k]
			if retryable(recErrs[k]) {
				next = append(next, i)
			}
		}
		if len(next) == 0 {
			return
		}
		wait := backoff(cfg.BackoffBase, cfg.BackoffMax, attempt)
		giveUp := attempt >= cfg.MaxAttempts || cfg.now().Add(wait).Sub(start) > cfg.MaxElapsed
		if !giveUp {
			p.retries.Add(int64(len(next)))
			p.log.Debug("leadspace bulk retry", zap.Int("records", len(next)), zap.Int("attempt", attempt),
				zap.Duration("backoff", wait), zap.Error(errs[next[0]]))
			if err := sleep(ctx, wait); err != nil {
				for _, i := range next {
					errs[i] = canceled(err)
				}
				return
			}
			pending = next
			continue
		}
		for _, i := range next {
			errs[i] = exhausted(errs[i], attempt)
		}
		return
	}
}

// bulkAttempt submits the pending records once, polls for their results and
// returns one error per pending record (nil = its result is in results).
func (p *Program) bulkAttempt(ctx context.Context, reqs []Request, pending []int, results []Result, tokenHeld bool) []error {
	errs := make([]error, len(pending))
	fail := func(err error) []error {
		for k := range errs {
			errs[k] = err
		}
		return errs
	}
	batch := make([]Request, len(pending))
	for k, i := range pending {
		batch[k] = reqs[i]
	}
	body, err := bulkBody(batch)
	if err != nil {
		return fail(newError(ClassInput, ReasonInputRejected, err))
	}
	resp, err := p.exchange(ctx, call{ep: epBulk, method: http.MethodPost, path: pathBulk, body: body,
		records: len(batch), tokenHeld: tokenHeld})
	if err != nil {
		return fail(err)
	}
	path, err := parseBulkAccepted(resp.body)
	if err != nil {
		return fail(&Error{Class: ClassRetryable, Reason: ReasonBadResponse, StatusCode: resp.status, Err: err})
	}
	records, err := p.poll(ctx, path)
	if err != nil {
		return fail(err)
	}
	for k, i := range pending {
		rec, ok := records[reqs[i].ExternalID]
		switch {
		case !ok:
			// UNCERTAIN(leadspace-api.md §7): a bulk that ran out of credits
			// returns partial results; a resubmit then gets the 427.
			errs[k] = newError(ClassRetryable, ReasonRecordFailed, errors.New("record missing from bulk results"))
		case rec.err != nil:
			errs[k] = rec.err
		default:
			rec.result.ExternalID = reqs[i].ExternalID
			results[i] = rec.result
		}
	}
	return errs
}

// poll asks for a bulk's results until they are ready. Transient failures
// (and an open breaker) only delay the next poll: the results are paid for,
// so giving up early would mean paying again. Each poll is one transaction.
// UNCERTAIN(leadspace-api.md §7): whether polls count against the TPS.
func (p *Program) poll(ctx context.Context, path string) (map[string]bulkRecord, error) {
	cfg := &p.c.cfg
	deadline := cfg.now().Add(cfg.BulkMaxWait)
	failures := 0
	for {
		wait := cfg.BulkPollInterval
		if failures > 0 {
			wait = max(wait, backoff(cfg.BackoffBase, cfg.BackoffMax, failures))
		}
		if cfg.now().Add(wait).After(deadline) {
			return nil, newError(ClassRetryable, ReasonBulkTimeout, fmt.Errorf("bulk not ready after %s", cfg.BulkMaxWait))
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, canceled(err)
		}
		resp, err := p.exchange(ctx, call{ep: epPoll, method: http.MethodGet, path: path})
		var e *Error
		switch {
		case err == nil && resp.status == http.StatusOK:
			return parseBulkResults(resp.body)
		case err == nil:
			failures = 0 // 204 (or 202): still processing
		case errors.As(err, &e) && e.StatusCode == http.StatusNotFound:
			// UNCERTAIN(leadspace-api.md §3): 404 means the id is unknown;
			// the records are resubmitted.
			return nil, &Error{Class: ClassRetryable, Reason: ReasonBulkNotFound, StatusCode: e.StatusCode,
				TrackingID: e.TrackingID, Err: e.Err}
		case e != nil && e.Class == ClassRetryable:
			failures++
		default:
			return nil, err
		}
	}
}

// parseBulkAccepted reads the 202 answer {"id": "/v3/enrichment/results/<id>"}
// into the path to poll. A bare id is accepted too.
// UNCERTAIN(leadspace-api.md §3): the id-is-a-path shape is from a
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
	// The path comes from the network: keep it a plain path on our gateway.
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(id, "//") || strings.Contains(id, "..") {
		return "", errors.New("bulk id is not a results path")
	}
	return id, nil
}

// bulkRecord is one record's outcome in a bulk's results.
type bulkRecord struct {
	result Result
	err    error
}

// Record-level failure codes inside a successful bulk (leadspace-api.md §3).
const (
	recordInternalError = 1100 // retriable
	recordInvalidInput  = 1200
)

// UNCERTAIN(leadspace-api.md §3): the names of the fields carrying a record's
// error code are not known; we read error_code, code, or error.code, and a
// status of "Invalid Input". The simulator emits error_code and error.
type wireBulkResults struct {
	Results []wireBulkRecord `json:"results"`
}

type wireBulkRecord struct {
	wireResult
	ErrorCode flexInt         `json:"error_code"`
	Code      flexInt         `json:"code"`
	Error     wireRecordError `json:"error"`
}

type wireRecordError struct {
	Code    flexInt    `json:"code"`
	Message flexString `json:"message"`
}

func (w *wireBulkRecord) UnmarshalJSON(b []byte) error {
	type plain wireBulkRecord
	return lenientObject(b, (*plain)(w))
}

// An error given as a plain string is its message.
func (w *wireRecordError) UnmarshalJSON(b []byte) error {
	if !isObject(b) {
		return w.Message.UnmarshalJSON(b)
	}
	type plain wireRecordError
	return json.Unmarshal(b, (*plain)(w))
}

// parseBulkResults reads {"results": [...]} into records keyed by external id.
func parseBulkResults(body []byte) (map[string]bulkRecord, error) {
	var w wireBulkResults
	if err := decodeObject(body, &w); err != nil {
		return nil, &Error{Class: ClassRetryable, Reason: ReasonBadResponse, StatusCode: http.StatusOK, Err: err}
	}
	out := make(map[string]bulkRecord, len(w.Results))
	for i := range w.Results {
		r := &w.Results[i]
		if id := r.ExternalID.String(); id != "" {
			out[id] = r.outcome()
		}
	}
	return out, nil
}

func (r *wireBulkRecord) outcome() bulkRecord {
	code := int64(first3(r.ErrorCode, r.Code, r.Error.Code))
	msg := truncate(r.Error.Message.String(), 300)
	switch {
	case code == recordInvalidInput || strings.EqualFold(r.Status.String(), "Invalid Input"):
		return bulkRecord{err: recordError(ClassInput, ReasonInputRejected, recordInvalidInput, msg)}
	case code != 0:
		return bulkRecord{err: recordError(ClassRetryable, ReasonRecordFailed, code, msg)}
	case r.Data == nil:
		return bulkRecord{err: recordError(ClassRetryable, ReasonRecordFailed, 0, "record has no data")}
	}
	return bulkRecord{result: r.result()}
}

func recordError(class Class, reason string, code int64, msg string) *Error {
	text := fmt.Sprintf("record code %d", code)
	if msg != "" {
		text += ": " + msg
	}
	return &Error{Class: class, Reason: reason, Err: errors.New(text)}
}

func first3(v ...flexInt) flexInt {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}
