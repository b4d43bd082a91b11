package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"time"
)

// job is a submitted bulk. Results are computed at submit time; readiness
// only decides when they are shown: by the clock (BulkReadyAfter), or by
// poll count (BulkReadyAfterPolls) for tests that must not depend on time.
type job struct {
	id        string
	program   *program
	answer    []byte // the results' JSON, encoded once at submit: compact to keep, nothing for the GC to scan
	submitted time.Time
	polls     int
	fetched   bool   // results served at least once
	status    string // COMPLETED or INSUFFICIENT_CREDITS
	success   int
}

// readyLocked says whether a job's results are ready at this poll. Call
// with s.mu held, after counting the poll.
func (s *Simulator) readyLocked(j *job) bool {
	switch n := s.cfg.BulkReadyAfterPolls; {
	case n > 0:
		return j.polls > n
	case n < 0:
		return true
	}
	return !s.now().Before(j.submitted.Add(s.cfg.BulkReadyAfter))
}

// Record-level failure codes inside a bulk (docs/leadspace.md §3).
const (
	codeInternalError = 1100
	codeInvalidInput  = 1200
)

// recordFailure is the shape of a failed record in a bulk's results.
// UNCERTAIN(docs/leadspace.md §3): the real field names are unknown; they
// live only here so they are easy to change.
func recordFailure(externalID any, code int, msg string) map[string]any {
	status := "Internal Error"
	if code == codeInvalidInput {
		status = "Invalid Input"
	}
	m := map[string]any{
		"status":     status,
		"error_code": code,
		"error":      map[string]any{"code": code, "message": msg},
	}
	if externalID != nil {
		m["external_id"] = externalID
	}
	return m
}

// bulk answers POST /enrichment/enrich/bulk with 202 and the path to poll.
// Invalid records do not fail the call: they come back with code 1200.
// Records beyond the remaining credits are left out and the job ends
// INSUFFICIENT_CREDITS.
func (s *Simulator) bulk(c *exchange) {
	data, ok := c.body["data"].([]any)
	if !ok || len(data) == 0 || len(data) > 500 {
		c.fail(http.StatusBadRequest, "Bad Request", "data must be an array of 1 to 500 records")
		return
	}
	if !c.hasCredits() {
		return
	}
	s.mu.Lock()
	p := c.prog
	j := &job{id: s.id("bulk", s.next()), program: p, status: "COMPLETED", submitted: s.now()}
	results := make([]any, 0, len(data))
	for _, d := range data {
		rec, _ := d.(map[string]any)
		ext, name := rec["external_id"], field(rec, "company", "name")
		if f := s.takeFault(pathBulk, name, p.cfg.ID, true); f != nil && f.Status != 0 {
			code := codeInternalError
			if f.Status < 500 {
				code = codeInvalidInput
			}
			results = append(results, recordFailure(ext, code, "injected fault"))
			continue
		}
		if name == Magic500 || name == Magic503 {
			results = append(results, recordFailure(ext, codeInternalError, "Internal Error"))
			continue
		}
		res, invalid, matched := s.enrichRecord(p, rec)
		if invalid != "" {
			results = append(results, recordFailure(ext, codeInvalidInput, "Invalid Input: "+invalid))
			continue
		}
		if matched {
			if p.credits == 0 {
				j.status = "INSUFFICIENT_CREDITS"
				break
			}
			if p.credits > 0 {
				p.credits--
			}
		}
		j.success++
		results = append(results, res)
	}
	s.statsOf(p.cfg.ID).RecordsReceived += len(data)
	s.mu.Unlock()
	// Encoded outside the lock; nobody can poll the job before it is
	// registered, and its id is answered only after that.
	j.answer, _ = json.Marshal(map[string]any{"results": results, "bulkStatus": j.status})
	s.mu.Lock()
	s.jobs[j.id] = j
	s.mu.Unlock()

	if cb, _ := c.body["callbackUrl"].(string); cb != "" {
		go s.callback(cb, j)
	}
	c.send(http.StatusAccepted, map[string]any{"id": pathResults + j.id})
}

// results answers a poll: 204 until the job is ready, then 200 with every
// record, in input order.
func (s *Simulator) results(c *exchange, id string) {
	s.mu.Lock()
	j := s.jobs[id]
	ready := false
	if j != nil && j.program == c.prog {
		j.polls++
		ready = s.readyLocked(j)
		if ready && !j.fetched {
			j.fetched = true
			s.statsOf(j.program.cfg.ID).BulksReady++
		}
	}
	s.mu.Unlock()
	switch {
	case j == nil || j.program != c.prog:
		c.fail(http.StatusNotFound, "Not Found", "unknown bulk id")
	case !ready:
		c.send(http.StatusNoContent, nil)
	default:
		c.sendJSON(http.StatusOK, j.answer)
	}
}

// callback notifies a loopback URL that a job finished: best effort, no
// retries, no signature, as documented.
func (s *Simulator) callback(raw string, j *job) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return
	}
	if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
		return // never call out of the machine
	}
	body, _ := json.Marshal(map[string]any{
		"bulkId":         j.id,
		"callbackMethod": map[string]any{"callbackUrl": raw, "pollingUrl": pathResults + j.id},
		"bulkStatus":     j.status,
		"successRecords": j.success,
		"personEnriched": 0, "companyEnriched": j.success,
	})
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, raw, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
}
