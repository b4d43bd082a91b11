package simulator

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Fault makes the next Count matching gateway calls misbehave, or every
// matching call for a while (For). Faults are checked after authentication
// and body parsing, before the rate limit, in the order they were injected.
type Fault struct {
	// Path to match exactly; a trailing "*" matches a prefix (e.g.
	// "/v3/enrichment/results/*" for every poll); "" matches every path.
	Path string
	// CompanyName to match (case-insensitive) against company.name; "" matches
	// any. On a bulk submit it matches records, not the call: the matching
	// records fail inside the bulk (5xx -> code 1100, 400 -> code 1200).
	CompanyName string
	// Program to match by ID; "" matches every program.
	Program string
	// Status to answer: 400, 401, 427, 429, 500, 502, 503, 504...
	Status int
	// Drop closes the connection without an answer (a connection reset).
	Drop bool
	// Delay stalls the call before it is handled (or failed).
	Delay time.Duration
	// Count of calls (or bulk records) to affect. 0 means 1; negative, forever.
	Count int
	// For, when positive, replaces Count: every matching call fails until
	// this long after the fault was injected (by the simulator's clock),
	// e.g. one program answering 503 for 60 s.
	For time.Duration

	until time.Time
}

// Magic company names fail without setup (single calls; in a bulk they
// fail their record with code 1100).
const (
	Magic500  = "__sim_500__"
	Magic503  = "__sim_503__"
	MagicSlow = "__sim_slow__" // stalls SlowDelay, then answers normally
)

// InjectFault adds a fault.
func (s *Simulator) InjectFault(f Fault) {
	if f.Count == 0 {
		f.Count = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.For > 0 {
		f.Count, f.until = -1, s.now().Add(f.For)
	}
	s.faults = append(s.faults, &f)
}

// takeFault consumes one use of the first fault matching path, company
// name and program; onlyNamed skips faults without a CompanyName (bulk
// records). Faults whose time ran out are dropped. Call with s.mu held.
func (s *Simulator) takeFault(path, name, program string, onlyNamed bool) *Fault {
	now := s.now()
	s.faults = slices.DeleteFunc(s.faults, func(f *Fault) bool { return !f.until.IsZero() && !now.Before(f.until) })
	for i, f := range s.faults {
		if !pathMatches(f.Path, path) || (onlyNamed && f.CompanyName == "") ||
			(f.CompanyName != "" && !strings.EqualFold(f.CompanyName, name)) ||
			(f.Program != "" && f.Program != program) {
			continue
		}
		hit := *f
		if f.Count > 0 {
			if f.Count--; f.Count == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
		}
		return &hit
	}
	return nil
}

func pathMatches(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return pattern == "" || pattern == path
}

// applyFaults runs injected faults for the whole call and the magic names
// of single calls. It reports whether handling should go on.
func (c *exchange) applyFaults() bool {
	path := c.r.URL.Path
	name := "" // a bulk's named faults apply to its records
	if path != pathBulk {
		name = c.record().name
	}
	c.s.mu.Lock()
	f := c.s.takeFault(path, name, c.prog.cfg.ID, false)
	c.s.mu.Unlock()

	if path == pathSingle {
		switch name {
		case Magic500:
			f = &Fault{Status: http.StatusInternalServerError}
		case Magic503:
			f = &Fault{Status: http.StatusServiceUnavailable}
		case MagicSlow:
			f = &Fault{Delay: c.s.cfg.SlowDelay}
		}
	}
	if f == nil {
		return true
	}
	if err := c.s.sleep(c.r.Context(), f.Delay); err != nil {
		c.call.Status = 0
		return false
	}
	switch {
	case f.Drop:
		c.drop()
		return false
	case f.Status != 0:
		if f.Status == http.StatusTooManyRequests && c.s.cfg.EmitRetryAfter {
			c.w.Header().Set("Retry-After", "1")
		}
		c.fail(f.Status, http.StatusText(f.Status), "injected fault")
		return false
	}
	return true
}

// drop closes the connection without answering, like a reset mid-request.
// The call is logged first: the client sees the reset only afterwards.
func (c *exchange) drop() {
	c.call.Status = 0
	c.finish()
	hj, ok := c.w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http closes the connection quietly
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// control serves the test endpoints under /__sim/. They are not gateway
// calls: no auth, not logged.
func (s *Simulator) control(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if v != nil {
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	switch {
	case r.URL.Path == "/__sim/calls" && r.Method == http.MethodGet:
		reply(http.StatusOK, s.Calls())
	case r.URL.Path == "/__sim/stats" && r.Method == http.MethodGet:
		reply(http.StatusOK, s.Stats())
	case r.URL.Path == "/__sim/reset" && r.Method == http.MethodPost:
		s.Reset()
		reply(http.StatusNoContent, nil)
	case r.URL.Path == "/__sim/faults" && r.Method == http.MethodPost:
		// {"match":{"path","company_name","program"}, "status", "drop",
		// "delay_ms", "count", "for_ms"}; "program" is accepted at the top
		// level too.
		var in struct {
			Match struct {
				Path        string `json:"path"`
				CompanyName string `json:"company_name"`
				Program     string `json:"program"`
			} `json:"match"`
			Program string `json:"program"`
			Status  int    `json:"status"`
			Drop    bool   `json:"drop"`
			DelayMS int    `json:"delay_ms"`
			Count   int    `json:"count"`
			ForMS   int    `json:"for_ms"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			reply(http.StatusBadRequest, map[string]string{"error": "fault is not JSON"})
			return
		}
		program := in.Match.Program
		if program == "" {
			program = in.Program
		}
		s.InjectFault(Fault{Path: in.Match.Path, CompanyName: in.Match.CompanyName, Program: program, Status: in.Status,
			Drop: in.Drop, Delay: time.Duration(in.DelayMS) * time.Millisecond, Count: in.Count,
			For: time.Duration(in.ForMS) * time.Millisecond})
		reply(http.StatusNoContent, nil)
	case r.URL.Path == "/__sim/clock" && r.Method == http.MethodPost:
		var in struct {
			AdvanceS float64 `json:"advance_s"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			reply(http.StatusBadRequest, map[string]string{"error": "clock body is not JSON"})
			return
		}
		s.Advance(time.Duration(in.AdvanceS * float64(time.Second)))
		reply(http.StatusNoContent, nil)
	default:
		reply(http.StatusNotFound, map[string]string{"error": "unknown control endpoint"})
	}
}

// Advance moves the simulator's clock forward, e.g. past OAuth expiry.
func (s *Simulator) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}
