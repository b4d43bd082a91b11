package leadspace

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter paces one program's transactions. It is AIMD: every 429 halves the
// rate (not below a floor), then the rate climbs back by one transaction per
// second for each second without a 429, up to the configured ceiling. A
// Retry-After, when Leadspace sends one, pauses the program outright.
//
// The ceiling is this instance's share of the program's TPS (Client.SetShare:
// the group's leader splits it among the instances that share the token),
// so a fleet stays within the budget together; AIMD works below it.
//
// UNCERTAIN(docs/leadspace.md §4): no rate-limit headers or Retry-After are
// documented; the 30 TPS budget is assumed to be per program (per token).
type limiter struct {
	lim  *rate.Limiter
	now  func() time.Time
	max  float64 // ceiling: configured TPS / fleet size
	min  float64 // floor after decreases, at most max
	step float64 // additive recovery, TPS per second

	mu          sync.Mutex
	current     float64
	lastAdjust  time.Time // last recovery step or decrease
	lastDecr    time.Time
	pausedUntil time.Time
	raiseAt     time.Time // a raised ceiling applies at once from then (setCeiling)
}

// decreaseCooldown keeps a burst of 429s answering the same crowded second
// from halving the rate many times over.
const decreaseCooldown = time.Second

func newLimiter(tps, minTPS float64, burst int, now func() time.Time) *limiter {
	return &limiter{
		lim:        rate.NewLimiter(rate.Limit(tps), burst),
		now:        now,
		max:        tps,
		min:        minTPS,
		step:       1,
		current:    tps,
		lastAdjust: now(),
	}
}

// wait blocks until the program may send one transaction, or ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	if pause := l.recover(); pause > 0 {
		t := time.NewTimer(pause)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return l.lim.Wait(ctx)
}

// recover applies the additive increase due since the last adjustment and
// returns how long a Retry-After pause still has to run.
func (l *limiter) recover() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.raiseAt.IsZero() && !now.Before(l.raiseAt) {
		l.raiseAt = time.Time{}
		l.current = l.max
		l.lim.SetLimitAt(now, rate.Limit(l.current))
	}
	if l.current < l.max {
		l.current = min(l.max, l.current+l.step*now.Sub(l.lastAdjust).Seconds())
		l.lim.SetLimitAt(now, rate.Limit(l.current))
	}
	l.lastAdjust = now
	return l.pausedUntil.Sub(now)
}

// throttled records a 429: halve the rate and honour retryAfter if given.
func (l *limiter) throttled(retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.raiseAt = time.Time{} // Leadspace says the fleet is at its limit: climb back slowly
	if now.Sub(l.lastDecr) >= decreaseCooldown {
		l.current = max(l.min, l.current/2)
		l.lim.SetLimitAt(now, rate.Limit(l.current))
		l.lastDecr, l.lastAdjust = now, now
	}
	if retryAfter > 0 && now.Add(retryAfter).After(l.pausedUntil) {
		l.pausedUntil = now.Add(retryAfter)
	}
}

// setCeiling changes the most the limiter allows (the program's TPS times
// this member's share of it). A lower ceiling applies at once; a higher
// one raiseDelay later, at once if no 429 came meanwhile: every member of
// the group gets its new share from the same answer of the coordinator, so
// by then those whose share shrank have slowed down. After a 429 the rate
// climbs additively.
func (l *limiter) setCeiling(tps, floor float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.max, l.min = tps, min(floor, tps)
	if l.current > tps {
		l.current = tps
		l.lim.SetLimitAt(now, rate.Limit(l.current))
	}
	if l.current < tps && now.Sub(l.lastDecr) > decreaseCooldown {
		l.raiseAt = now.Add(raiseDelay)
	}
	l.lastAdjust = now
}

// raiseDelay is how long a raised ceiling waits before it applies: far
// more than the members' answers from one SyncGroup are apart, and short,
// since the part of the rate that moves stands idle meanwhile (at 1 s, two
// instances lost 4% of a 100,000-event drain to the splits).
const raiseDelay = 250 * time.Millisecond

// ceiling is the most the limiter allows now.
func (l *limiter) ceiling() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.max
}

// tps is the current allowed rate, for stats and metrics.
func (l *limiter) tps() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current
}
