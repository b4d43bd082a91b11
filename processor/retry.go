package processor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/segmentio/kafka-go"
)

// backoff is the one retry schedule of the processor: exponential from First
// to Max with full jitter, for as many attempts as Attempts allows (0: until
// the context ends). Every loop that waits on a dependency (broker,
// registry, a table's topic) uses it, so they all back off alike and none
// spins.
type backoff struct {
	First, Max time.Duration
	Attempts   int
}

// wait sleeps before attempt n (1-based: the wait after the n-th failure),
// or returns ctx's error.
func (b backoff) wait(ctx context.Context, n int) error {
	d := b.Max
	if n < 31 && b.First<<(n-1) < b.Max && b.First<<(n-1) > 0 {
		d = b.First << (n - 1)
	}
	d = d/2 + rand.N(d/2+1) // jitter, never below half the step
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retry runs op until it succeeds, fails with an error retryable rejects,
// runs out of attempts, or ctx ends. It says why it gave up.
func (b backoff) retry(ctx context.Context, what string, op func() error, retryable func(error) bool, onRetry func(error, int)) error {
	for n := 1; ; n++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if b.Attempts > 0 && n >= b.Attempts {
			return fmt.Errorf("%s: gave up after %d attempts: %w", what, n, err)
		}
		if onRetry != nil {
			onRetry(err, n)
		}
		if err := b.wait(ctx, n); err != nil {
			return err
		}
	}
}

// dependencyBackoff paces retries against Kafka while it is unreachable.
var dependencyBackoff = backoff{First: 200 * time.Millisecond, Max: 10 * time.Second}

// transient says whether a Kafka failure may pass by itself: a broker down
// or restarting, a leader moving, a network error, a timeout. A Kafka error
// code that is not temporary (a record too large, an authorization failure)
// will fail again, however often it is retried.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var tooLarge kafka.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		return false
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary() || kerr.Timeout()
	}
	// Refused or dropped connections, EOFs and dial timeouts: the broker is
	// down or restarting.
	return true
}
