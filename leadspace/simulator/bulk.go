package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
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

// appendFailure appends a failed record of a bulk's results.
// UNCERTAIN(docs/leadspace.md §3): the real field names are unknown; they
// live only here so they are easy to change.
func appendFailure(b, externalID []byte, code int, msg string) []byte {
	status := "Internal Error"
	if code == codeInvalidInput {
		status = "Invalid Input"
	}
	// Keys in the order json.Marshal of a map wrote them.
	b = strconv.AppendInt(append(b, `{"error":{"code":`...), int64(code), 10)
	b = appendString(append(b, `,"message":`...), msg)
	b = strconv.AppendInt(append(b, `},"error_code":`...), int64(code), 10)
	if externalID != nil && string(externalID) != "null" {
		b = append(append(b, `,"external_id":`...), externalID...)
	}
	return append(appendString(append(b, `,"status":`...), status), '}')
}

// bulk answers POST /enrichment/enrich/bulk with 202 and the path to poll.
// Invalid records do not fail the call: they come back with code 1200.
// Records beyond the remaining credits are left out and the job ends
// INSUFFICIENT_CREDITS.
func (s *Simulator) bulk(c *exchange) {
	var rawData, callback []byte
	for k, v := range members(c.body) {
		switch string(k) {
		case "data":
			rawData = v
		case "callbackUrl":
			callback = v
		}
	}
	data, ok := elements(rawData)
	if !ok || len(data) == 0 || len(data) > 500 {
		c.fail(http.StatusBadRequest, "Bad Request", "data must be an array of 1 to 500 records")
		return
	}
	if !c.hasCredits() {
		return
	}
	recs := make([]*record, len(data))
	for i, d := range data {
		recs[i] = readRecord(d)
	}
	s.mu.Lock()
	p := c.prog
	j := &job{id: s.id("bulk", s.next()), program: p, status: "COMPLETED", submitted: s.now()}
	out := make([]byte, 0, 1024*len(recs))
	out = append(out, `{"results":[`...)
	for i, rec := range recs {
		mark := len(out)
		if i > 0 {
			out = append(out, ',')
		}
		if f := s.takeFault(pathBulk, rec.name, p.cfg.ID, true); f != nil && f.Status != 0 {
			code := codeInternalError
			if f.Status < 500 {
				code = codeInvalidInput
			}
			out = appendFailure(out, rec.ext, code, "injected fault")
			continue
		}
		if rec.name == Magic500 || rec.name == Magic503 {
			out = appendFailure(out, rec.ext, codeInternalError, "Internal Error")
			continue
		}
		var invalid string
		var matched bool
		if out, invalid, matched = s.enrichRecord(out, p, rec); invalid != "" {
			out = appendFailure(out, rec.ext, codeInvalidInput, "Invalid Input: "+invalid)
			continue
		}
		if matched {
			if p.credits == 0 {
				j.status = "INSUFFICIENT_CREDITS"
				out = out[:mark] // this record and the rest are left out
				break
			}
			if p.credits > 0 {
				p.credits--
			}
		}
		j.success++
	}
	s.statsOf(p.cfg.ID).RecordsReceived += len(data)
	j.answer = append(appendString(append(out, `],"bulkStatus":`...), j.status), '}')
	s.jobs[j.id] = j
	s.mu.Unlock()

	if cb := jsonString(callback); cb != "" {
		go s.callback(cb, j)
	}
	c.sendJSON(http.StatusAccepted, append(appendString([]byte(`{"id":`), pathResults+j.id), '}'))
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
