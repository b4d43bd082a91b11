package leadspace

import (
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

// newBreaker builds a program's circuit breaker. It trips on consecutive
// signs of an outage (5xx, timeouts, broken connections, unreadable
// answers). A 4xx answer proves Leadspace is up, so it counts as a success;
// 429, cancellations and transactions that never left are ignored. While it
// is open nothing is sent: records wait in the program's queue.
//
// It is the two-step form: the dispatcher (or a poller) asks Allow before it
// waits for a limiter token, so an open breaker costs no token, and the
// transaction's goroutine reports the outcome when the answer is in.
// changed is called on every state change, under the breaker's lock: it must
// not block.
func newBreaker(key string, cfg BreakerConfig, log *zap.Logger, m *metrics, changed func(gobreaker.State)) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	m.breakerState(key, gobreaker.StateClosed)
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        key,
		MaxRequests: cfg.HalfOpenMaxRequests,
		Timeout:     cfg.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= cfg.ConsecutiveFailures
		},
		IsExcluded:   breakerExcluded,
		IsSuccessful: func(err error) bool { return err == nil || !breakerFailure(err) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			log.Warn("leadspace breaker state changed",
				zap.String("from", from.String()), zap.String("to", to.String()))
			m.breakerState(key, to)
			changed(to)
		},
	})
}
