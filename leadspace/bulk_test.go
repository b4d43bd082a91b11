package leadspace

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

func companies(n int) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{ExternalID: fmt.Sprintf("r-%d", i),
			Company: CompanyInput{Name: fmt.Sprintf("Company %d", i), Website: fmt.Sprintf("company%d.com", i)}}
	}
	return reqs
}

func TestBulkSubmitsPollsAndMatchesByExternalID(t *testing.T) {
	w := newWorld(t, func(c *simulator.Config) { c.BulkReadyAfterPolls = 3 }, nil)
	reqs := companies(50)
	reqs[7].Company = CompanyInput{Name: "Nomatch Ltd"}
	results, err := w.program().EnrichBulk(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.ExternalID != reqs[i].ExternalID {
			t.Fatalf("result %d is for %q", i, r.ExternalID)
		}
	}
	if results[7].Matched || results[7].Status != "Not Enriched" {
		t.Fatalf("nomatch record: %+v", results[7])
	}
	if !results[0].Matched || results[0].Company.Name != "Company 0" {
		t.Fatalf("record 0: %+v", results[0])
	}
	submits, polls := w.calls("/enrichment/enrich/bulk"), 0
	for _, c := range w.sim.Calls() {
		if c.Method == "GET" {
			polls++
		}
	}
	if len(submits) != 1 || len(submits[0].Records) != 50 || polls != 4 {
		t.Fatalf("submits = %d, polls = %d; want 1 submit of 50 and 4 polls (3 not ready)", len(submits), polls)
	}
	if got := w.sim.RecordsReceived(testProgramID); got != 50 {
		t.Fatalf("records received = %d", got)
	}
}

func TestBulkPartialFailures(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.BulkThreshold = 1; c.MaxAttempts = 4 })
	reqs := companies(6)
	reqs[1].Company = CompanyInput{Website: "noname.com"}    // code 1200: invalid input
	reqs[2].Company = CompanyInput{Name: "Flaky Co"}         // code 1100 once, then fine
	reqs[3].Company = CompanyInput{Name: simulator.Magic503} // code 1100 every time
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/bulk", CompanyName: "Flaky Co", Status: 500, Count: 1})

	results, err := w.program().EnrichBulk(context.Background(), reqs)
	var be *BulkError
	if !errors.As(err, &be) || len(be.Errs) != len(reqs) {
		t.Fatalf("err = %v, want a *BulkError aligned with the records", err)
	}
	for _, i := range []int{0, 2, 4, 5} {
		if be.Errs[i] != nil || !results[i].Matched {
			t.Fatalf("record %d: %+v, %v", i, results[i], be.Errs[i])
		}
	}
	wantReason(t, be.Errs[1], ClassInput, ReasonInputRejected)
	wantReason(t, be.Errs[3], ClassRetryable, ReasonRetriesExhausted)

	// Retries resubmit only the records that failed retryably: r-2 once
	// more, r-3 up to MaxAttempts, the rest never.
	carried := map[string]int{}
	for _, c := range w.calls("/enrichment/enrich/bulk") {
		if len(c.Records) > 0 && c.Status != 202 {
			t.Fatalf("bulk answered %d", c.Status)
		}
		for _, id := range sentIDs(c) {
			carried[id]++
		}
	}
	if want := map[string]int{"r-0": 1, "r-1": 1, "r-2": 2, "r-3": 4, "r-4": 1, "r-5": 1}; !reflect.DeepEqual(carried, want) {
		t.Fatalf("submits per record = %v, want %v", carried, want)
	}
}

func sentIDs(c simulator.Call) []string {
	var ids []string
	for _, r := range c.Records {
		ids = append(ids, fmt.Sprint(r["external_id"]))
	}
	return ids
}

func TestBulkSplitsAt500AndRejectsDuplicateIDs(t *testing.T) {
	w := newWorld(t, nil, nil)
	reqs := companies(1201)
	reqs[1200].ExternalID = reqs[0].ExternalID
	results, err := w.program().EnrichBulk(context.Background(), reqs)
	var be *BulkError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v", err)
	}
	for i, e := range be.Errs {
		if i == 1200 {
			wantReason(t, e, ClassInput, ReasonDuplicateExternal)
		} else if e != nil || results[i].ExternalID != reqs[i].ExternalID {
			t.Fatalf("record %d: %v", i, e)
		}
	}
	sizes := map[int]int{}
	for _, c := range w.calls("/enrichment/enrich/bulk") {
		sizes[len(c.Records)]++
	}
	if fmt.Sprint(sizes) != "map[200:1 500:2]" {
		t.Fatalf("bulk sizes = %v", sizes)
	}
}

func TestBulkPollFailuresDoNotResubmit(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.BulkThreshold = 1 })
	w.sim.InjectFault(simulator.Fault{Path: "/v3/enrichment/results/*", Status: 503, Count: 3})
	w.sim.InjectFault(simulator.Fault{Path: "/v3/enrichment/results/*", Drop: true, Count: 1})
	results, err := w.program().EnrichBulk(context.Background(), companies(3))
	if err != nil || !results[2].Matched {
		t.Fatalf("%v", err)
	}
	if n := len(w.calls("/enrichment/enrich/bulk")); n != 1 {
		t.Fatalf("submits = %d: a bulk must not be resubmitted while its id can still be polled", n)
	}
}

func TestBulkUnknownIDIsResubmitted(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.BulkThreshold = 1 })
	w.sim.InjectFault(simulator.Fault{Path: "/v3/enrichment/results/*", Status: 404, Count: 1})
	if _, err := w.program().EnrichBulk(context.Background(), companies(2)); err != nil {
		t.Fatal(err)
	}
	carried := map[string]int{}
	for _, c := range w.calls("/enrichment/enrich/bulk") {
		for _, id := range sentIDs(c) {
			carried[id]++
		}
	}
	if want := map[string]int{"r-0": 2, "r-1": 2}; !reflect.DeepEqual(carried, want) {
		t.Fatalf("submits per record = %v, want each resubmitted once after a 404 on poll", carried)
	}
}

func TestBulkRunsOutOfCredits(t *testing.T) {
	w := newWorld(t, func(c *simulator.Config) { c.Programs[0].Credits = 3 }, func(c *Config) { c.BulkThreshold = 1 })
	all := companies(6) // "Company 3" is in the simulator's no-match bucket
	reqs := []Request{all[0], all[1], all[2], all[4], all[5]}
	results, err := w.program().EnrichBulk(context.Background(), reqs)
	var be *BulkError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v", err)
	}
	for i := range 3 {
		if be.Errs[i] != nil || !results[i].Matched {
			t.Fatalf("record %d: %v", i, be.Errs[i])
		}
	}
	for i := 3; i < 5; i++ {
		wantReason(t, be.Errs[i], ClassCredits, ReasonCreditsExhausted)
	}
}

func TestEnrichSwitchesToBulkUnderBacklog(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.TPS = 20; c.BulkThreshold = 10 })
	p := w.program()
	reqs := companies(300)
	var wg sync.WaitGroup
	errs := make([]error, len(reqs))
	results := make([]Result, len(reqs))
	for i := range reqs {
		wg.Go(func() { results[i], errs[i] = p.Enrich(context.Background(), reqs[i]) })
	}
	wg.Wait()
	for i := range reqs {
		if errs[i] != nil || results[i].ExternalID != reqs[i].ExternalID {
			t.Fatalf("record %d: %+v, %v", i, results[i], errs[i])
		}
	}
	st := p.Stats()
	if st.BulkSubmits == 0 || st.RecordsSent != 300 {
		t.Fatalf("stats = %+v, want bulk submits and each record sent once", st)
	}
	if st.SingleCalls+st.BulkSubmits > 60 {
		t.Fatalf("stats = %+v: backlog should have been batched", st)
	}

	// Light traffic afterwards goes back to single calls.
	before := p.Stats().SingleCalls
	for i := range 3 {
		if _, err := p.Enrich(context.Background(), contoso(fmt.Sprint("late-", i))); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Stats().SingleCalls - before; got != 3 {
		t.Fatalf("single calls = %d, want 3", got)
	}
}

// A caller that gives up while its record is still being gathered takes the
// record back: nothing of it leaves for Leadspace.
func TestCanceledRecordIsNeverSent(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.TPS = 0.5; c.MinTPS = 0.5; c.BulkThreshold = 1 })
	p := w.program()
	if err := p.lim.wait(context.Background()); err != nil { // spend the one token: the next wait is 2 s
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Enrich(ctx, contoso("withdrawn"))
	wantReason(t, err, ClassCanceled, ReasonCanceled)
	// A record enriched after it goes with the next token (2 s on): once it
	// is answered, the dispatcher has passed where the withdrawn one was.
	if _, err := p.Enrich(context.Background(), contoso("after")); err != nil {
		t.Fatal(err)
	}
	if n := w.sim.RecordsReceived(testProgramID); n != 1 {
		t.Fatalf("the gateway received %d records, want only the one enriched after the withdrawal: %+v", n, w.sim.Calls())
	}
	if st := p.Stats(); st.RecordsSent != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// A backlog's first records reach the program a fetch at a time. With a
// token in hand the dispatcher waits a moment for more instead of spending
// a transaction on each as a single call: the first call is a bulk, and
// only a tail too short for one goes single. A record that comes alone
// still goes at once, alone (as the simulator's log shows).
func TestRecordsArrivingInABurstGoInABulkNotAsSingles(t *testing.T) {
	w := newWorld(t, nil, nil) // BulkThreshold 20
	p := w.program()
	reqs := companies(60)
	var wg sync.WaitGroup
	errs := make([]error, len(reqs))
	for i := range reqs {
		wg.Go(func() { _, errs[i] = p.Enrich(context.Background(), reqs[i]) })
		time.Sleep(200 * time.Microsecond) // one record at a time, as a fetch is offered
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	var first simulator.Call
	for _, c := range w.sim.Calls() {
		if strings.HasPrefix(c.Path, "/enrichment/enrich/") {
			first = c
			break
		}
	}
	singles := w.calls("/enrichment/enrich/single")
	if first.Path != "/enrichment/enrich/bulk" || len(singles) >= p.c.cfg.BulkThreshold {
		t.Fatalf("first call %s, %d single calls: the burst should have gone in bulks", first.Path, len(singles))
	}
	before := len(singles)
	if _, err := p.Enrich(context.Background(), contoso("alone")); err != nil {
		t.Fatal(err)
	}
	if got := len(w.calls("/enrichment/enrich/single")) - before; got != 1 {
		t.Fatalf("a record alone: %d single calls, want 1", got)
	}
}
