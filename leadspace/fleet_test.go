package leadspace

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

// N instances on one program, each given an even share, stay within the
// program's TPS together: no 429. Without SetShare the same run is
// rate limited, so the test can fail.
func TestFleetSharesTheProgramsRate(t *testing.T) {
	const (
		instances = 3
		tps       = 30
		perClient = 30 // 30 records at 10 TPS: 3 s of steady backlog
	)
	for _, fleet := range []bool{true, false} {
		t.Run(fmt.Sprintf("fleet=%v", fleet), func(t *testing.T) {
			w := newWorld(t, func(c *simulator.Config) { c.Programs[0].TPS = tps }, nil)
			var clients []*Client
			for range instances {
				c, err := New(Config{BaseURL: w.client.base, TPS: tps, BulkThreshold: 1 << 30, // single calls: one transaction each
					BackoffBase: 2 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Close() })
				if fleet {
					c.SetShare(1.0 / instances)
				}
				clients = append(clients, c)
			}
			var wg sync.WaitGroup
			var failed atomic.Int64
			for i, c := range clients {
				p := c.Program(Credentials{Token: testToken})
				if fleet && p.Stats().Ceiling != tps/instances {
					t.Fatalf("ceiling %.1f, want %d", p.Stats().Ceiling, tps/instances)
				}
				for j := range perClient {
					wg.Add(1)
					p.Submit(context.Background(), contoso(fmt.Sprintf("c%d-%d", i, j)), func(o Outcome) {
						if o.Err != nil {
							failed.Add(1)
						}
						wg.Done()
					})
				}
			}
			wg.Wait()
			st := w.sim.Stats()[testProgramID]
			t.Logf("fleet=%v: %d answered 200, %d rate limited", fleet, st.Answers[200], st.RateLimited)
			if failed.Load() != 0 || st.Answers[200] < instances*perClient {
				t.Fatalf("%d failed; stats %+v", failed.Load(), st)
			}
			if fleet && st.RateLimited != 0 {
				t.Fatalf("%d instances sharing the program at TPS/%d got %d 429s", instances, instances, st.RateLimited)
			}
			if !fleet && st.RateLimited == 0 {
				t.Fatal("without SetShare the instances should have exceeded the program's TPS: the check cannot fail")
			}
		})
	}
}

func TestSetShareClampsAndRestores(t *testing.T) {
	c, err := New(Config{BaseURL: "http://127.0.0.1:9", TPS: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.Program(Credentials{Token: testToken})
	c.SetShare(0.25)
	if st := p.Stats(); st.Ceiling != 7.5 || st.TPS != 7.5 {
		t.Fatalf("fleet of 4: %+v", st)
	}
	q := c.Program(Credentials{Token: testToken + "-other"}) // created after: born with the share
	if st := q.Stats(); st.Ceiling != 7.5 || st.TPS != 7.5 {
		t.Fatalf("new program in a fleet of 4: %+v", st)
	}
	c.SetShare(0.6) // more: not at once, so the members whose share shrank slow down first
	if st := p.Stats(); st.Ceiling != 18 || st.TPS != 7.5 {
		t.Fatalf("share 0.6, at once: %+v", st)
	}
	c.SetShare(0) // counts as 1
	if st := p.Stats(); st.Ceiling != 30 {
		t.Fatalf("share 1: %+v", st)
	}
}

// A raised ceiling applies raiseDelay after it was set, at once, unless a 429
// came meanwhile: then the rate climbs additively.
func TestARaisedCeilingAppliesAMomentLater(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(15, 1, 1, func() time.Time { return now })
	l.setCeiling(24, 1)
	l.recover()
	if got := l.tps(); got != 15 {
		t.Fatalf("right after the raise: %.1f TPS, want 15", got)
	}
	now = now.Add(raiseDelay)
	l.recover()
	if got := l.tps(); got != 24 {
		t.Fatalf("raiseDelay after the raise: %.1f TPS, want 24", got)
	}
	l.setCeiling(12, 1)
	if got := l.tps(); got != 12 {
		t.Fatalf("a lower ceiling applies at once: %.1f TPS", got)
	}
	l.setCeiling(30, 1)
	now = now.Add(raiseDelay / 2)
	l.throttled(0)
	now = now.Add(raiseDelay)
	l.recover()
	if got := l.tps(); got > 8 {
		t.Fatalf("after a 429 the raise is additive: %.1f TPS", got)
	}
}

// A token that cannot be a bearer token fails at once with ClassAuth and
// ReasonInvalidToken: nothing is sent, the breaker does not count it, the
// program does not stall, and the message does not hold the token.
func TestInvalidTokensFailFastWithoutTouchingTheBreaker(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.Breaker.ConsecutiveFailures = 2 })
	for name, tok := range map[string]string{
		"newline":   "SECRET-abc\nInjected: yes",
		"space":     "SECRET abc",
		"control":   "SECRET\x00abc",
		"non-ascii": "SECRET-äbc",
		"too long":  "SECRET" + strings.Repeat("a", MaxTokenBytes),
	} {
		p := w.client.Program(Credentials{Token: tok})
		for range 5 {
			start := time.Now()
			_, err := p.Enrich(context.Background(), contoso("x"))
			wantReason(t, err, ClassAuth, ReasonInvalidToken)
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("%s: took %s", name, el)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("%s: the error shows the token: %v", name, err)
			}
		}
		if st := p.Stats(); st.BreakerState != "closed" || st.Transactions != 0 {
			t.Fatalf("%s: %+v", name, st)
		}
	}
	if n := len(w.sim.Calls()); n != 0 {
		t.Fatalf("invalid tokens reached the gateway: %d calls", n)
	}
	if _, err := w.program().Enrich(context.Background(), contoso("ok")); err != nil {
		t.Fatalf("a good program on the same client: %v", err)
	}
}

// A junk token issued by OAuth is caught the same way: the program's
// breaker stays closed however often it is tried.
func TestInvalidOAuthTokenNeverReachesTheBreaker(t *testing.T) {
	var enrich atomic.Int64
	srv := newStubHandler(t, func(path string) (int, string) {
		if path == "/oauth/authorize" {
			return 200, `{"token":"SECRET junk\nX","refreshToken":"r","expiration":4102444800}`
		}
		enrich.Add(1)
		return 200, `{}`
	})
	c, err := New(Config{BaseURL: srv, Breaker: BreakerConfig{ConsecutiveFailures: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.Program(Credentials{OAuth: &OAuthCredentials{ProgramID: "p", Secret: "s"}})
	for range 6 {
		_, err := p.Enrich(context.Background(), contoso("x"))
		wantReason(t, err, ClassAuth, ReasonInvalidToken)
		if strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("the error shows the token: %v", err)
		}
	}
	if st := p.Stats(); st.BreakerState != "closed" || enrich.Load() != 0 {
		t.Fatalf("breaker %s, %d enrichment requests", st.BreakerState, enrich.Load())
	}
}

// done is never called on the goroutine that calls Submit, even when the
// outcome is known at once: a caller may hold a lock its callback takes.
func TestDoneNeverRunsInsideSubmit(t *testing.T) {
	w := newWorld(t, nil, nil)
	closed, _ := New(Config{BaseURL: w.client.base})
	closed.Close()
	canceledCtx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, submit := range map[string]func(func(Outcome)){
		"invalid token": func(f func(Outcome)) {
			w.client.Program(Credentials{Token: "a b"}).Submit(context.Background(), contoso("x"), f)
		},
		"closed client": func(f func(Outcome)) {
			closed.Program(Credentials{Token: testToken}).Submit(context.Background(), contoso("x"), f)
		},
		"ended context": func(f func(Outcome)) { w.program().Submit(canceledCtx, contoso("x"), f) },
	} {
		var mu sync.Mutex
		got := make(chan Outcome, 1)
		mu.Lock()
		submit(func(o Outcome) { mu.Lock(); defer mu.Unlock(); got <- o })
		mu.Unlock()
		select {
		case o := <-got:
			if o.Err == nil || o.Sent != 0 || o.Attempts != 0 {
				t.Fatalf("%s: %+v", name, o)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no outcome", name)
		}
	}
}
