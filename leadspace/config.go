package leadspace

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Config of a Client. The zero value is usable: New fills in the defaults.
type Config struct {
	// BaseURL of the API gateway. Default: https://apigw.leadspace.com
	BaseURL string
	// HTTPClient sends every request. Default: a client with Timeout = RequestTimeout.
	// A client you pass keeps its own timeout; RequestTimeout is still applied per request.
	HTTPClient *http.Client
	// RequestTimeout bounds one HTTP exchange. Leadspace publishes no latency
	// figures; this is our own choice. Default: 30s
	RequestTimeout time.Duration

	// TPS is the transaction rate allowed per program: a single call or a bulk
	// submit is one transaction. It is the program's rate across the whole
	// fleet: Client.SetShare(s) makes an instance pace at TPS × s.
	// Default: 30 (the published tier).
	// UNCERTAIN(docs/leadspace.md §4): whether 30 is a default or one tier.
	TPS float64
	// Burst of the per-program limiter. Keeping it at 1 spaces requests evenly,
	// so Leadspace's own bucket never sees a burst it would answer with 429.
	// Default: 1
	Burst int
	// MinTPS is the floor the limiter never slows below after 429s. Default: 1
	MinTPS float64

	// GiveUpAfter is how long a record keeps being retried after its first
	// failure (or its first wait on an open breaker) before it fails with
	// ClassRetryable / ReasonRetriesExhausted. An outage is backpressure:
	// records wait in the program's queue, so this is the longest outage the
	// caller rides out without a failure. Default: 15m
	GiveUpAfter time.Duration
	// MaxAttempts optionally caps the requests that may carry one record
	// (first attempt included); every one may spend a credit. 0 means no cap:
	// only GiveUpAfter ends retrying. Default: 0
	MaxAttempts int
	// BackoffBase and BackoffMax shape the exponential backoff with full
	// jitter before a failed record goes back into the queue. Default: 200ms / 10s
	BackoffBase time.Duration
	BackoffMax  time.Duration

	// BulkThreshold is the number of records waiting in a program's queue at
	// which a transaction becomes a bulk submit instead of a single call.
	// Default: 20
	BulkThreshold int
	// BulkMaxRecords per bulk submit. Default: 500 (also the hard maximum).
	BulkMaxRecords int
	// BulkPollFirst is when a bulk is first polled, after its submit was
	// accepted, until the program has learnt its turnaround. Leadspace
	// publishes no figure; this is our guess. Default: 1s
	BulkPollFirst time.Duration
	// BulkPollMin is the first step between polls once a poll found a bulk
	// not ready; steps then double up to BulkPollMax. It is also the floor
	// of the learnt turnaround. Default: 50ms
	BulkPollMin time.Duration
	// BulkPollMax caps the step between polls. Default: 5s
	BulkPollMax time.Duration
	// BulkMaxWait bounds how long one bulk is polled before its records are
	// resubmitted (ReasonBulkTimeout). Default: 5m
	BulkMaxWait time.Duration
	// FreePolls says polls do not count against the program's TPS: when
	// true they are not paced by the limiter. Default: false (each poll is
	// paced like a transaction).
	// UNCERTAIN(docs/leadspace.md §7): whether polls count against the TPS.
	FreePolls bool

	// Breaker settings, one breaker per program.
	Breaker BreakerConfig

	// BulkAccepted, when set, is told of every bulk Leadspace accepted, with
	// the program's key, the path its results are read from and its
	// records' Refs (Request.Ref), before it is first polled. Its owner
	// writes that down, so that a process taking over after a crash can
	// Resume the records instead of paying for them again. It must return
	// fast. Default: none.
	BulkAccepted func(program, path string, refs []any)

	// Logger for state changes and retries. Default: zap.NewNop()
	Logger *zap.Logger
	// Registerer receives the metrics. Default: nil, no metrics.
	Registerer prometheus.Registerer

	// now is the clock; tests may replace it.
	now func() time.Time
}

// BreakerConfig shapes each program's circuit breaker.
type BreakerConfig struct {
	// ConsecutiveFailures that open the breaker. Default: 5
	ConsecutiveFailures uint32
	// OpenTimeout is how long the breaker stays open before it lets a probe
	// through (half-open). Default: 10s
	OpenTimeout time.Duration
	// HalfOpenMaxRequests allowed through while half-open; that many
	// successes close it again. Default: 1
	HalfOpenMaxRequests uint32
}

// DefaultBaseURL is Leadspace's API gateway, the same for v3 and v4.
const DefaultBaseURL = "https://apigw.leadspace.com"

// MaxBulkRecords is Leadspace's limit per bulk submit (docs/leadspace.md §4).
const MaxBulkRecords = 500

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.RequestTimeout}
	}
	if c.TPS == 0 {
		c.TPS = 30
	}
	if c.Burst == 0 {
		c.Burst = 1
	}
	if c.MinTPS == 0 {
		c.MinTPS = min(1, c.TPS)
	}
	if c.GiveUpAfter == 0 {
		c.GiveUpAfter = 15 * time.Minute
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = 200 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 10 * time.Second
	}
	if c.BulkThreshold == 0 {
		c.BulkThreshold = 20
	}
	if c.BulkMaxRecords == 0 {
		c.BulkMaxRecords = MaxBulkRecords
	}
	if c.BulkPollFirst == 0 {
		c.BulkPollFirst = time.Second
	}
	if c.BulkPollMin == 0 {
		c.BulkPollMin = 50 * time.Millisecond
	}
	if c.BulkPollMax == 0 {
		c.BulkPollMax = 5 * time.Second
	}
	if c.BulkMaxWait == 0 {
		c.BulkMaxWait = 5 * time.Minute
	}
	if c.Breaker.ConsecutiveFailures == 0 {
		c.Breaker.ConsecutiveFailures = 5
	}
	if c.Breaker.OpenTimeout == 0 {
		c.Breaker.OpenTimeout = 10 * time.Second
	}
	if c.Breaker.HalfOpenMaxRequests == 0 {
		c.Breaker.HalfOpenMaxRequests = 1
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.now == nil {
		c.now = time.Now
	}
}

// Validate reports settings that cannot work. New calls it after defaults.
func (c *Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("leadspace: BaseURL %q is not an http(s) URL", c.BaseURL)
	}
	var errs []error
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, errors.New("leadspace: "+msg))
		}
	}
	check(c.RequestTimeout > 0, "RequestTimeout must be positive")
	check(c.TPS > 0, "TPS must be positive")
	check(c.Burst >= 1, "Burst must be at least 1")
	check(c.MinTPS > 0 && c.MinTPS <= c.TPS, "MinTPS must be in (0, TPS]")
	check(c.GiveUpAfter > 0, "GiveUpAfter must be positive")
	check(c.MaxAttempts >= 0, "MaxAttempts must be 0 (no cap) or positive")
	check(c.BackoffBase > 0 && c.BackoffMax >= c.BackoffBase, "need 0 < BackoffBase <= BackoffMax")
	check(c.BulkThreshold >= 1, "BulkThreshold must be at least 1")
	check(c.BulkMaxRecords >= 1 && c.BulkMaxRecords <= MaxBulkRecords, "BulkMaxRecords must be in [1, 500]")
	check(c.BulkPollMin > 0 && c.BulkPollMin <= c.BulkPollMax, "need 0 < BulkPollMin <= BulkPollMax")
	check(c.BulkPollFirst > 0, "BulkPollFirst must be positive")
	check(c.BulkMaxWait > 0, "BulkMaxWait must be positive")
	check(c.Breaker.OpenTimeout > 0, "Breaker.OpenTimeout must be positive")
	return errors.Join(errs...)
}
