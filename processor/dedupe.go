package processor

import (
	"sync"
	"time"
)

// dedupe remembers, per tenant/profile, the fingerprint of the inputs last
// answered by Leadspace and when. Leadspace has no idempotency key, so an
// unchanged profile sent again (a replay, a redelivery, an upstream re-emit)
// would spend a credit for the same answer. It is warmed from the enriched
// topic at start, so it holds across restarts and instances.
type dedupe struct {
	mu      sync.RWMutex
	entries map[string]dedupeEntry
}

type dedupeEntry struct {
	fingerprint string
	at          time.Time
	outcome     string // outEnriched or outNotMatched: what the answer was
}

func newDedupe() *dedupe { return &dedupe{entries: map[string]dedupeEntry{}} }

// fresh returns the outcome of the answer key got for this fingerprint
// within maxAge (maxAge 0: an answer never goes stale), or "" if none.
func (d *dedupe) fresh(key, fingerprint string, maxAge time.Duration, now time.Time) string {
	d.mu.RLock()
	e, ok := d.entries[key]
	d.mu.RUnlock()
	if ok && e.fingerprint == fingerprint && (maxAge <= 0 || now.Sub(e.at) < maxAge) {
		return e.outcome
	}
	return ""
}

// remember records an answer; an older answer never overwrites a newer one.
func (d *dedupe) remember(key, fingerprint, outcome string, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.entries[key]; ok && e.at.After(at) {
		return
	}
	d.entries[key] = dedupeEntry{fingerprint: fingerprint, at: at, outcome: outcome}
}

func (d *dedupe) forget(key string) {
	d.mu.Lock()
	delete(d.entries, key)
	d.mu.Unlock()
}

func (d *dedupe) size() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.entries)
}
