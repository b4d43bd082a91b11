package leadspace

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// retry runs op until it succeeds, fails for good, or the budget is spent:
// MaxAttempts attempts, and no new attempt once MaxElapsed would be passed.
// Every retry may spend credits again (Leadspace has no idempotency key),
// which is why the budget is small and input, auth and credit failures are
// never retried. An open breaker is returned at once as backpressure.
func (p *Program) retry(ctx context.Context, what string, op func(context.Context) error) error {
	cfg := &p.c.cfg
	start := cfg.now()
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return canceled(ctx.Err())
		}
		if !retryable(err) {
			return err
		}
		wait := backoff(cfg.BackoffBase, cfg.BackoffMax, attempt)
		if attempt >= cfg.MaxAttempts || cfg.now().Add(wait).Sub(start) > cfg.MaxElapsed {
			return exhausted(err, attempt)
		}
		p.retries.Add(1)
		p.log.Debug("leadspace retry", zap.String("call", what), zap.Int("attempt", attempt),
			zap.Duration("backoff", wait), zap.Error(err))
		if err := sleep(ctx, wait); err != nil {
			return canceled(err)
		}
	}
}

// backoff is exponential with full jitter: uniform in [0, min(max, base·2^(n-1))].
func backoff(base, maxWait time.Duration, attempt int) time.Duration {
	d := maxWait
	if attempt < 32 {
		d = min(maxWait, base<<(attempt-1))
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

func exhausted(last error, attempts int) *Error {
	e := &Error{Class: ClassRetryable, Reason: ReasonRetriesExhausted,
		Err: fmt.Errorf("gave up after %d attempts: %w", attempts, last)}
	if le, ok := last.(*Error); ok {
		e.StatusCode, e.TrackingID = le.StatusCode, le.TrackingID
	}
	return e
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
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
