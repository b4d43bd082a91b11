package leadspace

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

// An outage is backpressure: the record waits while the breaker is open
// and succeeds once Leadspace is back, with no failure handed to the caller.
func TestBreakerOpensOn5xxBurstHoldsRecordsAndRecovers(t *testing.T) {
	const openTimeout = 80 * time.Millisecond
	w := newWorld(t, nil, func(c *Config) { c.Breaker.OpenTimeout = openTimeout })
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 503, Count: 20})
	p := w.program()

	o := submitWait(t, p, context.Background(), contoso("a"))
	if o.Err != nil || !o.Matched {
		t.Fatalf("outcome %+v", o)
	}
	if o.Attempts != 21 || o.Sent != 1 || o.FirstFailure.IsZero() || !o.LastFailure.After(o.FirstFailure) {
		t.Fatalf("outcome books %d attempts, %d sent, failures %v..%v; want 21 attempts, 1 sent",
			o.Attempts, o.Sent, o.FirstFailure, o.LastFailure)
	}
	calls := w.calls("/enrichment/enrich/single")
	if len(calls) != 21 {
		t.Fatalf("gateway saw %d calls, want the 20 failures and 1 success: the breaker must send nothing while open", len(calls))
	}
	// After the 5th consecutive failure every call is a half-open probe,
	// sent only once the open period has run out.
	for i := 5; i < len(calls); i++ {
		if gap := calls[i].Time.Sub(calls[i-1].Time); gap < openTimeout-5*time.Millisecond {
			t.Fatalf("call %d came %s after the previous one, inside the open period", i, gap)
		}
	}
	if st := p.Stats(); st.BreakerState != "closed" || st.Pending != 0 {
		t.Fatalf("stats %+v after recovery", st)
	}
	changes := w.logs.FilterMessage("leadspace breaker state changed").All()
	if len(changes) < 3 {
		t.Fatalf("state changes logged: %d", len(changes))
	}
	f := changes[0].ContextMap()
	if f["program"] != p.Key() || f["from"] != "closed" || f["to"] != "open" {
		t.Fatalf("first change logged as %v", f)
	}
}

// A record gives up only after GiveUpAfter since its first failure, and
// says how it failed.
func TestOutageLongerThanGiveUpAfterFails(t *testing.T) {
	const giveUp = 300 * time.Millisecond
	w := newWorld(t, nil, func(c *Config) { c.GiveUpAfter = giveUp; c.Breaker.OpenTimeout = 50 * time.Millisecond })
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 503, Count: -1})
	start := time.Now()
	o := submitWait(t, w.program(), context.Background(), contoso("a"))
	wantReason(t, o.Err, ClassRetryable, ReasonRetriesExhausted)
	if errors.Is(o.Err, ErrBreakerOpen) {
		t.Fatalf("a record that gave up must not read as 'breaker open, wait': %v", o.Err)
	}
	if el := time.Since(start); el < giveUp {
		t.Fatalf("gave up after %s, before GiveUpAfter", el)
	}
	if o.LastFailure.Sub(o.FirstFailure) < giveUp || o.Sent != 0 {
		t.Fatalf("outcome %+v", o)
	}
	if n := len(w.calls("/enrichment/enrich/single")); n != o.Attempts || n < 5 {
		t.Fatalf("gateway saw %d calls, outcome says %d attempts", n, o.Attempts)
	}
}

func TestBreakerIgnores4xxAnd429(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.MaxAttempts = 1 })
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 400, Count: 6})
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 429, Count: 6})
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 404, Count: 6})
	p := w.program()
	for range 18 {
		_, err := p.Enrich(context.Background(), contoso("a"))
		if errors.Is(err, ErrBreakerOpen) {
			t.Fatal("breaker opened on 4xx answers")
		}
	}
	if st := p.Stats(); st.BreakerState != "closed" {
		t.Fatalf("breaker %s", st.BreakerState)
	}
}

// A record that only ever waited on an open breaker starts its failure
// clock when it starts waiting, and gives up after GiveUpAfter without a
// request sent for it.
func TestWaitOnOpenBreakerCountsTowardsGiveUp(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) {
		c.GiveUpAfter = 500 * time.Millisecond
		c.Breaker.OpenTimeout = 300 * time.Millisecond
		c.Breaker.ConsecutiveFailures = 1
	})
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 503, For: time.Minute})
	p := w.program()
	first := make(chan Outcome, 1)
	p.Submit(context.Background(), contoso("a"), func(o Outcome) { first <- o })
	retrytest.Wait(t, 5*time.Second, "the breaker to open", func() bool { return p.cb.State() == gobreaker.StateOpen })
	submitted := time.Now()
	b := submitWait(t, p, context.Background(), contoso("b"))
	a := <-first
	wantReason(t, a.Err, ClassRetryable, ReasonRetriesExhausted)
	wantReason(t, b.Err, ClassRetryable, ReasonRetriesExhausted)
	if b.Attempts != 0 || b.Sent != 0 || b.FirstFailure.Before(submitted.Add(-time.Millisecond)) || b.LastFailure.Sub(b.FirstFailure) < 500*time.Millisecond {
		t.Fatalf("record that waited on the breaker: %+v", b)
	}
	if n := len(w.calls("/enrichment/enrich/single")); n != a.Attempts || n < 2 {
		t.Fatalf("gateway saw %d calls; the probe record made %d attempts", n, a.Attempts)
	}
}
