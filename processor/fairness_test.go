package processor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// TestSmallTenantsAreNotStuckBehindABigTenantsBacklog (issue 21): one
// tenant's backlog, then 100 small tenants' profiles on the same
// partitions, each tenant on its own program. The big program is at its
// share of the window almost at once; its further records are parked, not
// waited for, so the small tenants' profiles behind them are enriched at
// their own programs' rate while the backlog is still draining, and
// nothing is lost or reordered on the way.
func TestSmallTenantsAreNotStuckBehindABigTenantsBacklog(t *testing.T) {
	const (
		bigProfiles = 240 // at 20 calls/s: 12 s of work
		bigUpdates  = 40  // version 2 of the first ones, written after them
		smalls      = 100
		perSmall    = 2
		tps         = 20
	)
	tenants := []tenantProgram{tenant("big")}
	for i := range smalls {
		tenants = append(tenants, tenant(fmt.Sprintf("small-%03d", i)))
	}
	e := newEnv(t, tenants...)
	// Single calls at 20/s per program; a window of 40 gives the big
	// program a share of 20 records in flight.
	e.start(singleCallsAt(tps), func(c *processor.Config, _ *leadspace.Config) { c.Window = 40 })

	big := companies(bigProfiles, "big")
	for i := range bigUpdates {
		p := profile("big", i, company(1000+i))
		p.EventID, p.Version = p.EventID+"-v2", 2
		big = append(big, p)
	}
	e.produceProfiles(big...)
	var small []schemas.Profile
	for i := range perSmall {
		for s := range smalls {
			small = append(small, profile(fmt.Sprintf("small-%03d", s), i, company(i)))
		}
	}
	written := time.Now()
	e.produceProfiles(small...)

	// Each small tenant needs perSmall calls at 20/s: 0.1 s. The bound
	// leaves room for a loaded machine, and is far below the 12 s the big
	// backlog needs.
	const bound = 6 * time.Second
	out := e.waitOutputs(bound, func(o outputs) bool {
		n := 0
		for k := range o.enriched {
			if strings.HasPrefix(k, "small-") {
				n++
			}
		}
		return n == smalls*perSmall
	})
	took := time.Since(written)
	bigDone := 0
	for k := range out.enriched {
		if strings.HasPrefix(k, "big/") {
			bigDone++
		}
	}
	t.Logf("small tenants' %d profiles enriched %s after they were written; the big tenant had %d of %d keys",
		smalls*perSmall, took.Round(time.Millisecond), bigDone, bigProfiles)
	if bigDone >= bigProfiles {
		t.Fatalf("the big backlog (%d keys) was done before the small tenants: the test proves nothing", bigProfiles)
	}

	// The backlog itself completes, in order per key, versions included.
	e.waitOutputs(60*time.Second, func(o outputs) bool {
		done := 0
		for i := range bigProfiles {
			ev, ok := o.enriched[fmt.Sprintf("big/p%04d", i)]
			if ok && (i >= bigUpdates || ev.Lineage.ProfileVersion == 2) {
				done++
			}
		}
		return done == bigProfiles
	})
	if back := e.keysGoingBackwards(); len(back) > 0 {
		t.Fatalf("keys went backwards: %v", back)
	}
	e.waitCommitted(30*time.Second, len(big)+len(small))
}
