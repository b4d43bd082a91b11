// Package simulator is a deterministic local fake of the Leadspace
// enrichment gateway, for tests and `enricher dev`. It implements the
// contract proposed in docs/leadspace.md §7: the same endpoints,
// authentication, status codes and order of checks as the research found,
// generated but self-consistent firmographics, a per-program token bucket,
// credits, bulk jobs ready after a time (or a number of polls), and test
// controls under /__sim/: faults (per path, company, program; for a count
// of calls or a duration), reset, clock, the call log and per-program stats.
// Switches cover the facts the research marks UNCERTAIN, such as whether
// polls count against the TPS (FreePolls).
package simulator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Simulator is an http.Handler faking apigw.leadspace.com. Safe for
// concurrent use.
type Simulator struct {
	cfg Config

	ctx    context.Context // ends on Close: stalled handlers give up
	cancel context.CancelFunc

	mu       sync.Mutex
	programs map[string]*program // by ID
	tokens   map[string]*program // perpetual token -> program
	oauth    map[string]issued   // OAuth token -> program and expiry
	refresh  map[string]*program // unused refresh token -> program
	jobs     map[string]*job
	faults   []*Fault
	calls    []loggedCall
	stats    map[string]*ProgramStats
	seq      uint64
	offset   time.Duration // POST /__sim/clock

	srv *http.Server
}

type program struct {
	cfg     ProgramConfig
	bucket  *rate.Limiter
	credits int64
}

type issued struct {
	p       *program
	expires time.Time
}

// New validates cfg and builds a Simulator.
func New(cfg Config) (*Simulator, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Simulator{cfg: cfg}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.reset()
	return s, nil
}

// Reset forgets calls, stats, faults, bulk jobs and OAuth tokens, and
// restores every program's credits and rate bucket.
func (s *Simulator) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset()
}

func (s *Simulator) reset() {
	s.programs, s.tokens = map[string]*program{}, map[string]*program{}
	s.oauth, s.refresh = map[string]issued{}, map[string]*program{}
	s.jobs, s.faults, s.calls = map[string]*job{}, nil, nil
	s.stats, s.seq, s.offset = map[string]*ProgramStats{}, 0, 0
	for _, pc := range s.cfg.Programs {
		burst := int(math.Ceil(pc.TPS))
		p := &program{cfg: pc, credits: pc.Credits, bucket: rate.NewLimiter(rate.Limit(pc.TPS), burst)}
		p.bucket.AllowN(s.now(), 0) // start the bucket's clock at the simulator's time
		s.programs[pc.ID] = p
		for _, t := range pc.Tokens {
			s.tokens[t] = p
		}
	}
}

// now is the simulator's clock: Config.Clock plus any /__sim/clock advance.
func (s *Simulator) now() time.Time { return s.cfg.Clock().Add(s.offset) }

// next returns a fresh sequence number for ids, tokens and jitter.
func (s *Simulator) next() uint64 { s.seq++; return s.seq }

// id derives a deterministic UUID from the seed, a kind and a sequence number.
func (s *Simulator) id(kind string, n uint64) string {
	return uuidOf(hashOf(fmt.Sprintf("%d/%s/%d", s.cfg.Seed, kind, n)))
}

// Handler returns the simulator as an http.Handler (for httptest servers).
func (s *Simulator) Handler() http.Handler { return s }

// Start serves on addr ("127.0.0.1:0" picks a free loopback port; empty
// means that) and returns the base URL.
func (s *Simulator) Start(addr string) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	srv := s.srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops the server started by Start (if any) and ends stalled calls.
func (s *Simulator) Close() error {
	s.cancel()
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return srv.Close()
	}
	return nil
}

// Gateway paths (docs/leadspace.md §1).
const (
	pathAuthorize = "/oauth/authorize"
	pathSingle    = "/enrichment/enrich/single"
	pathBulk      = "/enrichment/enrich/bulk"
	pathResults   = "/v3/enrichment/results/"
)

// ServeHTTP routes a request and applies the contract's order of checks:
// method (405), bearer token (401, empty body), content type (415), JSON
// body (400), injected faults, rate limit (429; polls skip it when
// FreePolls), credits (427), then the endpoint's own validation (400).
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/__sim/") {
		s.control(w, r)
		return
	}
	c := &exchange{s: s, w: w, r: r, call: Call{Time: s.clockNow(), Method: r.Method, Path: r.URL.Path}}
	defer c.finish() // for calls that end without an answer (the client left)

	var allowed []string
	switch p := r.URL.Path; {
	case p == pathAuthorize:
		allowed = []string{http.MethodPost, http.MethodPut}
	case p == pathSingle, p == pathBulk:
		allowed = []string{http.MethodPost}
	case strings.HasPrefix(p, pathResults) && len(p) > len(pathResults):
		allowed = []string{http.MethodGet}
	default:
		c.fail(http.StatusNotFound, "Not Found", "unknown path")
		return
	}
	if !contains(allowed, r.Method) {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		c.fail(http.StatusMethodNotAllowed, "Method Not Allowed", "use "+strings.Join(allowed, " or "))
		return
	}
	if r.URL.Path == pathAuthorize {
		s.authorize(c)
		return
	}
	poll := r.URL.Path != pathSingle && r.URL.Path != pathBulk
	if !c.authenticate() || !c.readBody() || !c.applyFaults() || (!(poll && s.cfg.FreePolls) && !c.rateLimit()) {
		return
	}
	switch {
	case r.URL.Path == pathSingle:
		s.single(c)
	case r.URL.Path == pathBulk:
		s.bulk(c)
	default:
		s.results(c, strings.TrimPrefix(r.URL.Path, pathResults))
	}
}

func (s *Simulator) clockNow() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

// sleep stalls a handler for d, unless the client or the simulator goes away.
func (s *Simulator) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return errors.New("simulator closed")
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
