package leadspace

import (
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

// newBreaker builds a program's circuit breaker. It trips on consecutive
// signs of an outage (5xx, timeouts, broken connections, unreadable
// answers). A 4xx answer proves Leadspace is up, so it counts as a success;
// 429 and cancellations are ignored. While open, no request is sent.
func newBreaker(key string, cfg BreakerConfig, log *zap.Logger, m *metrics) *gobreaker.CircuitBreaker[*response] {
	m.breakerState(key, gobreaker.StateClosed)
	return gobreaker.NewCircuitBreaker[*response](gobreaker.Settings{
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
		},
	})
}
