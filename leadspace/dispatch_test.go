package leadspace

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

// collector gathers outcomes by external id and fails the test if a record
// gets two.
type collector struct {
	t    testing.TB
	mu   sync.Mutex
	outs map[string]Outcome
	n    atomic.Int64
}

func newCollector(t testing.TB) *collector { return &collector{t: t, outs: map[string]Outcome{}} }

func (c *collector) done(id string) func(Outcome) {
	return func(o Outcome) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, dup := c.outs[id]; dup {
			c.t.Errorf("record %s got a second outcome: %+v", id, o)
		}
		c.outs[id] = o
		c.n.Add(1)
	}
}

func (c *collector) get(id string) (Outcome, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.outs[id]
	return o, ok
}

// carried counts, per external id, the gateway requests that carried the
// record and those Leadspace accepted (single 200, bulk 202).
func carried(calls []simulator.Call) (all, accepted map[string]int) {
	all, accepted = map[string]int{}, map[string]int{}
	for _, c := range calls {
		ok := (c.Bulk && c.Status == 202) || (!c.Bulk && c.Status == 200)
		for _, r := range c.Records {
			id := fmt.Sprint(r["external_id"])
			all[id]++
			if ok {
				accepted[id]++
			}
		}
	}
	return all, accepted
}

// Credits are exact: over a run with 5xx bursts, dropped connections, bulk
// record codes 1100, a lost bulk id and cancellations, the Sent of all
// outcomes adds up to what the simulator received, and each record's Sent
// and Attempts match the request log.
func TestCreditsEqualSimulatorCountUnderFaults(t *testing.T) {
	w := newWorld(t, func(c *simulator.Config) { c.BulkReadyAfterPolls = 0; c.BulkReadyAfter = 20 * time.Millisecond },
		func(c *Config) {
			c.TPS = 100
			c.Breaker.OpenTimeout = 20 * time.Millisecond
			c.BulkPollMin = 10 * time.Millisecond
			c.RequestTimeout = 30 * time.Second // an answer lost to a timeout would make Sent unknowable
		})
	p := w.program()
	const n = 3000
	reqs := companies(n)
	for i := 0; i < n; i += 10 { // code 1100 on the first few tries of these
		reqs[i].Company.Name = fmt.Sprintf("Flaky %d", i)
		w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/bulk", CompanyName: reqs[i].Company.Name, Status: 500, Count: 1 + i%3})
	}
	w.sim.InjectFault(simulator.Fault{Path: "/v3/enrichment/results/*", Status: 404, Count: 1}) // resubmit of a paid bulk
	w.sim.InjectFault(simulator.Fault{Path: "/v3/enrichment/results/*", Drop: true, Count: 3})
	stopFaults := make(chan struct{})
	var faults sync.WaitGroup
	faults.Go(func() { // short 5xx outages and resets on every endpoint while the run goes on
		for i := 0; ; i++ {
			select {
			case <-stopFaults:
				return
			case <-time.After(30 * time.Millisecond):
			}
			path := []string{"/enrichment/enrich/bulk", "/enrichment/enrich/single", "/v3/enrichment/results/*"}[i%3]
			w.sim.InjectFault(simulator.Fault{Path: path, Status: 502 + i%2, For: 20 * time.Millisecond})
			if i%4 == 0 {
				w.sim.InjectFault(simulator.Fault{Path: path, Drop: true, Count: 1})
			}
		}
	})

	col := newCollector(t)
	tenant, cancelTenant := context.WithCancel(context.Background())
	defer cancelTenant()
	var cancels []context.CancelFunc
	for i, r := range reqs {
		ctx := context.Background()
		switch i % 8 {
		case 1: // one tenant, withdrawn mid-run
			ctx = tenant
		case 2: // callers that give up on their own, at random times
			c, cancel := context.WithCancel(context.Background())
			ctx = c
			cancels = append(cancels, cancel)
		}
		p.Submit(ctx, r, col.done(r.ExternalID))
		if i%100 == 99 {
			time.Sleep(20 * time.Millisecond) // waves: bulks under backlog, singles in between
		}
	}
	rand.Shuffle(len(cancels), func(i, j int) { cancels[i], cancels[j] = cancels[j], cancels[i] })
	for i, cancel := range cancels {
		if i == len(cancels)/2 {
			cancelTenant()
		}
		cancel()
		if i%25 == 0 {
			time.Sleep(time.Millisecond) // pacing: callers give up over time, not all at once
		}
	}
	retrytest.Wait(t, 60*time.Second, "every outcome", func() bool { return col.n.Load() == n })
	close(stopFaults)
	faults.Wait()

	all, accepted := carried(w.sim.Calls())
	sent, canceled, ok := 0, 0, 0
	for _, r := range reqs {
		o, _ := col.get(r.ExternalID)
		sent += o.Sent
		if o.Sent != accepted[r.ExternalID] || o.Attempts != all[r.ExternalID] {
			t.Fatalf("record %s: outcome says %d sent / %d attempts, the log %d / %d (%+v)",
				r.ExternalID, o.Sent, o.Attempts, accepted[r.ExternalID], all[r.ExternalID], o)
		}
		switch c, _ := ClassOf(o.Err); {
		case o.Err == nil:
			ok++
		case c == ClassCanceled:
			canceled++
		default:
			t.Fatalf("record %s failed: %v", r.ExternalID, o.Err)
		}
	}
	if got := w.sim.RecordsReceived(testProgramID); sent != got {
		t.Fatalf("outcomes add up to %d records sent, the simulator received %d", sent, got)
	}
	st := w.sim.Stats()[testProgramID]
	t.Logf("%d ok, %d canceled; %d records sent for %d records; answers %v; %d bulks", ok, canceled, sent, n, st.Answers, st.BulksReady)
	if sent <= n-canceled || st.Answers[502]+st.Answers[503] == 0 || st.Answers[0] == 0 || canceled == 0 || ok < n/2 {
		t.Fatalf("the run did not exercise what it should: sent %d, answers %v, %d canceled, %d ok", sent, st.Answers, canceled, ok)
	}
}

// A cancelled caller sends nothing: a 20,000-record backlog in bulk mode,
// one tenant's context cancelled mid-run. No request after the cancellation
// carries a record of that tenant that was still queued, no record of it is
// ever resubmitted, and goroutines stay bounded however deep the queue.
func TestCanceledTenantIsNeverSentAgainInBulkMode(t *testing.T) {
	w := newWorld(t, func(c *simulator.Config) {
		c.Programs[0].TPS = 30
		c.BulkReadyAfterPolls = 0
		c.BulkReadyAfter = 100 * time.Millisecond
	}, func(c *Config) {
		c.TPS = 30
		c.BulkPollFirst, c.BulkPollMin = 100*time.Millisecond, 10*time.Millisecond
		c.RequestTimeout = 30 * time.Second // an answer lost to a timeout would make Sent unknowable
	})
	p := w.program()
	const n = 20_000
	reqs := companies(n)
	isA := func(i int) bool { return i%2 == 0 }
	for i := 0; i < n; i += 50 {
		reqs[i].Company.Name = simulator.Magic503 // tenant A: code 1100 on every try, resubmitted until cancelled
	}
	col := newCollector(t)
	var doneA atomic.Int64
	tenantA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	base := runtime.NumGoroutine()
	for i, r := range reqs {
		ctx, done := context.Background(), col.done(r.ExternalID)
		if isA(i) {
			ctx = tenantA
			done = func(o Outcome) { col.done(r.ExternalID)(o); doneA.Add(1) }
		}
		p.Submit(ctx, r, done)
	}
	var peak atomic.Int64
	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			peak.Store(max(peak.Load(), int64(runtime.NumGoroutine())))
			select {
			case <-stopWatch:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	// Cancel once a quarter of the backlog left in bulks: the rest is queued.
	retrytest.Wait(t, 60*time.Second, "a quarter of the records sent", func() bool { return p.recordsSent.Load() >= n/4 })
	cancelAt := time.Now()
	cancelA()
	atCancel := col.n.Load()
	// Queued records finish at once; those inside a submit when its answer is in.
	retrytest.Wait(t, 30*time.Second, "every outcome of the cancelled tenant", func() bool { return doneA.Load() == n/2 })
	allDoneA := time.Now()
	retrytest.Wait(t, 60*time.Second, "every outcome", func() bool { return col.n.Load() == n })
	close(stopWatch)
	watch.Wait()

	calls := w.sim.Calls()
	all, accepted := carried(calls)
	after := map[string]int{} // requests that arrived after the cancellation, per record
	for _, c := range calls {
		for _, r := range c.Records {
			id := fmt.Sprint(r["external_id"])
			if c.Time.After(cancelAt) {
				after[id]++
			}
			if c.Time.After(allDoneA) && isA(idIndex(id)) {
				t.Fatalf("record %s of the cancelled tenant arrived at %s, after all its outcomes were in", id, c.Time)
			}
		}
	}
	sent, resubmitted, unsent, inflight := 0, 0, 0, 0
	for i, r := range reqs {
		id := r.ExternalID
		o, _ := col.get(id)
		sent += o.Sent
		if o.Sent != accepted[id] || o.Attempts != all[id] {
			t.Fatalf("record %s: outcome %d sent / %d attempts, log %d / %d", id, o.Sent, o.Attempts, accepted[id], all[id])
		}
		if !isA(i) {
			if o.Err != nil {
				t.Fatalf("record %s of the other tenant: %v", id, o.Err)
			}
			continue
		}
		if after[id] > 1 {
			t.Fatalf("record %s of the cancelled tenant was in %d requests after the cancellation: resubmitted", id, after[id])
		}
		if o.Err == nil {
			continue // done before the cancellation
		}
		wantReason(t, o.Err, ClassCanceled, ReasonCanceled)
		if o.Attempts == 0 {
			unsent++
			if all[id] != 0 {
				t.Fatalf("record %s was cancelled unsent but reached the gateway", id)
			}
		}
		if r.Company.Name == simulator.Magic503 && o.Attempts > 0 {
			inflight++ // bound to come back with code 1100: the old batcher resubmitted these
			if o.Attempts > 1 {
				resubmitted++
			}
		}
	}
	if got := w.sim.RecordsReceived(testProgramID); sent != got {
		t.Fatalf("outcomes add up to %d records sent, the simulator received %d", sent, got)
	}
	t.Logf("cancelled at %d of %d outcomes: %d of the tenant's records never sent, %d code-1100 records inside requests (%d of them resubmitted before); all its outcomes %s after; goroutines %d -> peak %d",
		atCancel, n, unsent, inflight, resubmitted, allDoneA.Sub(cancelAt).Round(time.Millisecond), base, peak.Load())
	if unsent < 500 || inflight == 0 {
		t.Fatalf("the run did not exercise what it should: %d unsent, %d code-1100 records in flight", unsent, inflight)
	}
	if peak.Load()-int64(base) > 500 {
		t.Fatalf("goroutines grew from %d to %d for %d queued records", base, peak.Load(), n)
	}
}

func idIndex(id string) int {
	var i int
	fmt.Sscanf(id, "r-%d", &i)
	return i
}
