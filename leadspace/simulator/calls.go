package simulator

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Call is one gateway request as the simulator saw it. Tests assert on the
// log: how many requests, when, with what records, and what was answered.
type Call struct {
	Time    time.Time        `json:"time"`              // when the request arrived
	Program string           `json:"program,omitempty"` // program ID, "" when unauthenticated
	Method  string           `json:"method"`
	Path    string           `json:"path"`
	Status  int              `json:"status"` // 0 when the connection was dropped or the client left
	Records []map[string]any `json:"records,omitempty"`
	Bulk    bool             `json:"bulk,omitempty"`
}

// Endpoint names in Stats.
const (
	EndpointSingle = "single"
	EndpointBulk   = "bulk"
	EndpointPoll   = "poll"
	EndpointOAuth  = "oauth"
)

// ProgramStats counts one program's gateway traffic since the last Reset.
// They are kept as calls happen, so they stay exact when the call log is
// capped (CallLogLimit). Calls that fail authentication belong to no program
// and are not counted.
type ProgramStats struct {
	// Requests by endpoint (single, bulk, poll, oauth), whatever the answer.
	Requests map[string]int `json:"requests"`
	// Transactions by endpoint: requests that took a token from the
	// program's bucket (not polls when FreePolls, not those answered 429).
	Transactions map[string]int `json:"transactions"`
	// RecordsReceived: as RecordsReceived.
	RecordsReceived int `json:"records_received"`
	// Answers by HTTP status; 0 counts dropped connections and clients
	// that left before the answer.
	Answers map[int]int `json:"answers"`
	// RateLimited counts 429 answers (also in Answers).
	RateLimited int `json:"rate_limited"`
	// BulksReady counts bulks whose results were fetched at least once.
	BulksReady int `json:"bulks_ready"`
}

func newProgramStats() *ProgramStats {
	return &ProgramStats{Requests: map[string]int{}, Transactions: map[string]int{}, Answers: map[int]int{}}
}

func (p *ProgramStats) clone() ProgramStats {
	c := *p
	c.Requests, c.Transactions, c.Answers = maps.Clone(p.Requests), maps.Clone(p.Transactions), maps.Clone(p.Answers)
	return c
}

// endpointOf names a gateway path for Stats.
func endpointOf(path string) string {
	switch {
	case path == pathSingle:
		return EndpointSingle
	case path == pathBulk:
		return EndpointBulk
	case path == pathAuthorize:
		return EndpointOAuth
	case len(path) > len(pathResults) && path[:len(pathResults)] == pathResults:
		return EndpointPoll
	}
	return "other"
}

// Calls returns a copy of the request log, oldest first (the newest
// CallLogLimit calls when a limit is set). Calls are logged when they are
// answered, so a call is in the log before its client has the answer.
func (s *Simulator) Calls() []Call {
	s.mu.Lock()
	c := s.calls
	if n := s.cfg.CallLogLimit; n > 0 && len(c) > n {
		c = c[len(c)-n:]
	}
	c = slices.Clone(c)
	s.mu.Unlock()
	out := make([]Call, len(c))
	for i, lc := range c {
		out[i] = lc.Call
		out[i].Records = lc.records()
	}
	return out
}

// loggedCall is a Call as the log keeps it: the records stay the request's
// bytes until Calls asks for them. A backlog of a million records would
// otherwise keep a million decoded maps for the GC to scan.
type loggedCall struct {
	Call
	raw []byte
}

// records decodes the records a single or bulk call carried.
func (lc loggedCall) records() []map[string]any {
	if lc.raw == nil {
		return nil
	}
	var body map[string]any
	dec := json.NewDecoder(bytes.NewReader(lc.raw))
	dec.UseNumber()
	if dec.Decode(&body) != nil {
		return nil
	}
	if !lc.Bulk {
		return []map[string]any{body}
	}
	data, _ := body["data"].([]any)
	out := make([]map[string]any, 0, len(data))
	for _, d := range data {
		m, _ := d.(map[string]any)
		out = append(out, m)
	}
	return out
}

// logCall appends to the call log and counts the call. Call with s.mu held.
func (s *Simulator) logCall(c loggedCall) {
	s.calls = append(s.calls, c)
	if n := s.cfg.CallLogLimit; n > 0 && len(s.calls) >= 2*n {
		// Drop the oldest half at once: amortised O(1) per call.
		s.calls = slices.Clone(s.calls[len(s.calls)-n:])
	}
	if c.Program == "" {
		return
	}
	st := s.statsOf(c.Program)
	st.Requests[endpointOf(c.Path)]++
	st.Answers[c.Status]++
	if c.Status == 429 {
		st.RateLimited++
	}
}

// statsOf returns a program's counters. Call with s.mu held.
func (s *Simulator) statsOf(programID string) *ProgramStats {
	st := s.stats[programID]
	if st == nil {
		st = newProgramStats()
		s.stats[programID] = st
	}
	return st
}

// Stats returns every program's counters, by program ID.
func (s *Simulator) Stats() map[string]ProgramStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]ProgramStats, len(s.programs))
	for id := range s.programs {
		out[id] = s.statsOf(id).clone()
	}
	return out
}

// RecordsReceived counts the records a program had accepted for enrichment
// on single calls (answered 200, or abandoned by the client while the
// answer was being prepared: the work was done) and bulk submits (answered
// 202): what the program's owner pays for, at most.
func (s *Simulator) RecordsReceived(programID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsOf(programID).RecordsReceived
}

// Credits returns a program's remaining credits (negative = unlimited).
func (s *Simulator) Credits(programID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.programs[programID]; p != nil {
		return p.credits
	}
	return 0
}
