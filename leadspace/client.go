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

	// ctx outlives callers: bulk batches run on it and stop on Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	programs map[string]*Program
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
	}, nil
}

// Program returns the handle for one Leadspace program, creating it on
// first use. Handles are memoized by Credentials.Key, so every caller of the
// same program shares one rate limiter, one breaker and one batcher.
// Invalid credentials give a Program whose calls fail with ClassAuth.
func (c *Client) Program(creds Credentials) *Program {
	key := creds.Key()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.programs[key]; ok {
		return p
	}
	p := newProgram(c, key, creds)
	c.programs[key] = p
	return p
}

// Close stops all background work (bulks being collected or polled end with
// ReasonClosed) and waits for it. Calls made after Close fail.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

func (c *Client) closed() bool { return c.ctx.Err() != nil }
