package leadspace

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

// A process dies while its bulk is being processed; the one taking over
// reads the bulk again and pays nothing twice.
func TestResumeReadsAnEarlierBulkInsteadOfPayingAgain(t *testing.T) {
	var mu sync.Mutex
	accepted := map[string][]string{} // path -> the records' refs: their external ids
	slowBulks := func(c *simulator.Config) { c.BulkReadyAfterPolls, c.BulkReadyAfter = 0, 500*time.Millisecond }
	w := newWorld(t, slowBulks, func(c *Config) {
		c.BulkThreshold = 1
		c.BulkAccepted = func(_, path string, refs []any) {
			mu.Lock()
			for _, ref := range refs {
				accepted[path] = append(accepted[path], ref.(string))
			}
			mu.Unlock()
		}
	})
	const n = 300
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{ExternalID: fmt.Sprintf("ext-%d", i), Ref: fmt.Sprintf("ext-%d", i), Company: CompanyInput{Name: fmt.Sprintf("Contoso %d", i), Website: fmt.Sprintf("contoso%d.com", i)}}
	}
	first := w.program()
	ctx, cancel := context.WithCancel(context.Background())
	for _, r := range reqs {
		first.Submit(ctx, r, func(Outcome) {})
	}
	retrytest.Wait(t, 10*time.Second, "the bulks to be accepted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		got := 0
		for _, ids := range accepted {
			got += len(ids)
		}
		return got == n
	})
	cancel() // the process is gone: its answers never arrive
	_ = w.client.Close()
	paid := w.sim.RecordsReceived(testProgramID)
	if paid != n {
		t.Fatalf("the first process sent %d records, want %d", paid, n)
	}

	// The process taking over knows the bulks from the journal.
	next, err := New(Config{BaseURL: w.client.cfg.BaseURL, TPS: 1000, BulkPollMin: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	prog := next.Program(Credentials{Token: testToken})
	col := newCollector(t)
	byID := map[string]Request{}
	for _, r := range reqs {
		byID[r.ExternalID] = r
	}
	mu.Lock()
	for path, ids := range accepted {
		for _, id := range ids {
			prog.Resume(context.Background(), byID[id], path, col.done(id))
		}
	}
	mu.Unlock()
	// A record of a bulk that is gone is sent again, as Submit would.
	lost := Request{ExternalID: "ext-lost", Company: CompanyInput{Name: "Fabrikam"}}
	prog.Resume(context.Background(), lost, "/v3/enrichment/results/no-such-bulk", col.done(lost.ExternalID))
	retrytest.Wait(t, 10*time.Second, "every outcome", func() bool { return col.n.Load() == n+1 })
	for _, r := range reqs {
		o, _ := col.get(r.ExternalID)
		if o.Err != nil || o.Sent != 1 || o.ExternalID != r.ExternalID {
			t.Fatalf("%s: %+v", r.ExternalID, o)
		}
	}
	if got := w.sim.RecordsReceived(testProgramID); got != paid+1 {
		t.Fatalf("Leadspace received %d records in all, want the %d of the first process and 1 for the lost bulk's record", got, paid)
	}
	if o, _ := col.get(lost.ExternalID); o.Err != nil || o.Sent != 1 {
		t.Fatalf("the record of a gone bulk: %+v", o)
	}
}
