package simulator

import (
	"slices"
	"time"
)

// Call is one gateway request as the simulator saw it. Tests assert on the
// log: how many requests, when, with what records, and what was answered.
type Call struct {
	Time    time.Time        `json:"time"`
	Program string           `json:"program,omitempty"` // program ID, "" when unauthenticated
	Method  string           `json:"method"`
	Path    string           `json:"path"`
	Status  int              `json:"status"` // 0 when the connection was dropped
	Records []map[string]any `json:"records,omitempty"`
	Bulk    bool             `json:"bulk,omitempty"`
}

// Calls returns a copy of the request log, oldest first.
func (s *Simulator) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// RecordsReceived counts the records a program had accepted for enrichment
// on single calls (answered 200) and bulk submits (answered 202): what the
// program's owner pays for, at most.
func (s *Simulator) RecordsReceived(programID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received[programID]
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
