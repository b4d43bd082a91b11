package leadspace

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

func TestBreakerOpensOn5xxBurstSendsNothingWhileOpenAndRecovers(t *testing.T) {
	const openTimeout = 80 * time.Millisecond
	w := newWorld(t, nil, func(c *Config) { c.Breaker.OpenTimeout = openTimeout })
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 503, Count: 20})
	p := w.program()

	var open, other int
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := p.Enrich(context.Background(), contoso("a"))
		if err == nil {
			if !res.Matched {
				t.Fatalf("recovered with %+v", res)
			}
			break
		}
		if errors.Is(err, ErrBreakerOpen) {
			wantReason(t, err, ClassRetryable, ReasonBreakerOpen)
			open++
		} else {
			other++
		}
		if time.Now().After(deadline) {
			t.Fatal("breaker never let the program recover")
		}
		time.Sleep(5 * time.Millisecond) // the processor's backpressure wait
	}
	if open == 0 {
		t.Fatal("the breaker never opened")
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
	if st := p.Stats(); st.BreakerState != "closed" {
		t.Fatalf("breaker %s after recovery", st.BreakerState)
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
