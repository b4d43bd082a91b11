package leadspace

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"go.uber.org/zap"
)

// Client talks to Leadspace on behalf of any number of programs. It is safe
// for concurrent use; create one per process.
type Client struct {
	cfg     Config
	base    string
	http    *http.Client
	log     *zap.Logger
	metrics *metrics

	// ctx outlives callers: dispatchers and requests run on it (a caller's
	// context never aborts a request others share) and stop on Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	programs map[string]*Program
	share    float64 // of each program's TPS, for this instance
}

// New checks cfg, fills in defaults and returns a Client.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		cfg:      cfg,
		base:     strings.TrimRight(cfg.BaseURL, "/"),
		http:     cfg.HTTPClient,
		log:      cfg.Logger,
		metrics:  m,
		ctx:      ctx,
		cancel:   cancel,
		programs: make(map[string]*Program),
		share:    1,
	}, nil
}

// Program returns the handle for one Leadspace program, creating it on
// first use. Handles are memoized by Credentials.Key, so every caller of the
// same program shares one rate limiter, one breaker and one queue.
// Invalid credentials give a Program whose calls fail at once with
// ClassAuth (ReasonInvalidToken for a token that cannot be a bearer token).
func (c *Client) Program(creds Credentials) *Program {
	key := creds.Key()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.programs[key]; ok {
		return p
	}
	p := newProgram(c, key, creds, c.cfg.TPS*c.share)
	c.programs[key] = p
	return p
}

// SetShare tells the client which part (0, 1] of each program's TPS this
// instance may use, the others of the fleet sharing the token using the
// rest: each program then paces at TPS × share. AIMD on 429 still applies
// below that ceiling. A lower ceiling applies at once, a higher one a
// moment later (see limiter.setCeiling). A share outside (0, 1] counts as 1.
func (c *Client) SetShare(share float64) {
	if !(share > 0 && share <= 1) {
		share = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.share = share
	for _, p := range c.programs {
		p.lim.setCeiling(c.cfg.TPS*share, c.cfg.MinTPS)
	}
}

// Close stops all background work and waits for it: queued records and
// requests in flight end with ReasonClosed. Calls made after Close fail.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

func (c *Client) closed() bool { return c.ctx.Err() != nil }
