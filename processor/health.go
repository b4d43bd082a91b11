package processor

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// health collects what currently keeps the instance from working: a table
// that cannot follow its topic, a producer that cannot write, a group it
// cannot reach. Each dependency reports under its own name; /readyz answers
// 503 with the reasons while any is set.
type health struct {
	mu      sync.Mutex
	failing map[string]error
	since   map[string]time.Time
}

func newHealth() *health {
	return &health{failing: map[string]error{}, since: map[string]time.Time{}}
}

// set records a dependency's state: err while it fails, nil once it works.
func (h *health) set(name string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.failing, name)
		delete(h.since, name)
		return
	}
	if _, was := h.failing[name]; !was {
		h.since[name] = time.Now()
	}
	h.failing[name] = err
}

// err is every failing dependency, oldest first, or nil.
func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.failing) == 0 {
		return nil
	}
	names := make([]string, 0, len(h.failing))
	for n := range h.failing {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return h.since[names[i]].Before(h.since[names[j]]) })
	errs := make([]error, len(names))
	for i, n := range names {
		errs[i] = fmt.Errorf("%s failing for %s: %w", n, time.Since(h.since[n]).Truncate(time.Second), h.failing[n])
	}
	return errors.Join(errs...)
}
