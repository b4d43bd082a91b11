// Package retry is the one retry schedule of the service: exponential waits
// from First to Max with jitter, for a number of attempts or until the
// context ends, and an error that says why it gave up. The Leadspace client
// and the pipeline both use it, so every loop that waits on a dependency
// backs off alike and none spins. It lives under leadspace because that is
// the lowest package both import; it imports nothing of the service.
package retry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Jitter says how far below the exponential step a wait may fall.
type Jitter int

const (
	// Full jitter waits uniformly in [0, step]: retries of many callers that
	// failed together spread over the whole window instead of coming back
	// in one wave.
	Full Jitter = iota
	// Equal jitter waits uniformly in [step/2, step]: it spreads callers out
	// but never retries much sooner than the schedule says, for one caller
	// waiting on a dependency that is down.
	Equal
)

// Schedule is exponential from First, doubling up to Max, with Jitter, for
// Attempts attempts (0: until the context ends).
type Schedule struct {
	First, Max time.Duration
	Attempts   int
	Jitter     Jitter
}

// Step is the wait after the n-th failure (1-based) before jitter.
func (s Schedule) Step(n int) time.Duration {
	d := s.Max
	if n >= 1 && n < 32 && s.First<<(n-1) < s.Max && s.First<<(n-1) > 0 {
		d = s.First << (n - 1)
	}
	return max(d, 0)
}

// Delay is the wait after the n-th failure (1-based), jittered.
func (s Schedule) Delay(n int) time.Duration {
	d := s.Step(n)
	if d <= 0 {
		return 0
	}
	if s.Jitter == Equal {
		return d/2 + rand.N(d/2+1)
	}
	return rand.N(d + 1)
}

// Wait sleeps the delay after the n-th failure, or returns ctx's error.
func (s Schedule) Wait(ctx context.Context, n int) error {
	return Sleep(ctx, s.Delay(n))
}

// Do runs op until it succeeds, fails with an error retryable rejects (nil:
// every error is retryable), runs out of attempts, or ctx ends; onRetry (may
// be nil) hears of each failure that will be retried. It says why it gave
// up, under the name what.
func (s Schedule) Do(ctx context.Context, what string, op func() error, retryable func(error) bool, onRetry func(error, int)) error {
	for n := 1; ; n++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return stopped(ctx, what, n, err)
		}
		if retryable != nil && !retryable(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if s.Attempts > 0 && n >= s.Attempts {
			return fmt.Errorf("%s: gave up after %d attempts: %w", what, n, err)
		}
		if onRetry != nil {
			onRetry(err, n)
		}
		if s.Wait(ctx, n) != nil {
			return stopped(ctx, what, n, err)
		}
	}
}

// stopped is Do's error when ctx ended: it wraps ctx's error (errors.Is
// finds context.Canceled) and names the last failure.
func stopped(ctx context.Context, what string, attempts int, last error) error {
	return fmt.Errorf("%s: stopped after %d attempts (%w); last error: %v", what, attempts, ctx.Err(), last)
}

// Sleep waits d, or returns ctx's error if it ends first (at once for d <= 0
// when ctx has ended).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
