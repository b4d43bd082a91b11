package processor_test

import (
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/processor"
)

func TestInstancesJoiningAndLeavingLoseNothingAndCountOnce(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	first := e.start(singleCallsAt(400))
	const n = 1500
	ps := companies(n, "acme")
	e.produceProfiles(ps...)
	e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) >= n/5 })

	// A second instance joins: the partitions are split between them.
	e.start(singleCallsAt(400))
	e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) >= n/2 })
	// The first one leaves: its partitions move to the second.
	first.shutdown()

	out := e.waitOutputs(90*time.Second, func(o outputs) bool { return len(o.enriched) == n })
	if len(out.dead) != 0 {
		t.Fatalf("%d dead letters across rebalances", len(out.dead))
	}
	st := e.waitStatus("acme", 30*time.Second, func(s processor.TenantStatus) bool { return s.Profiles >= n })
	if st.Profiles != n || st.Partitions != 3 {
		t.Fatalf("status counts %d profiles on %d partitions after two rebalances, want %d on 3", st.Profiles, st.Partitions, n)
	}
	t.Logf("%d records on the enriched topic for %d profiles; %d Leadspace records", out.enrichedN, n, e.stack.Simulator.RecordsReceived("acme"))
}
