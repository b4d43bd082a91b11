package processor_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
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
	st := e.waitStatus("acme", 30*time.Second, func(s statusview.Tenant) bool { return s.Profiles >= n })
	if st.Profiles != n || st.Partitions != 3 {
		t.Fatalf("status counts %d profiles on %d partitions after two rebalances, want %d on 3", st.Profiles, st.Partitions, n)
	}
	// A revoke finishes and commits in-flight work before the member
	// rejoins, and a new owner starts from the old one's table: nothing is
	// published twice, and Leadspace answers every profile exactly once.
	if out.enrichedN != n {
		t.Errorf("%d records on the enriched topic for %d profiles: %d duplicates", out.enrichedN, n, out.enrichedN-n)
	}
	// Credits in status are the records Leadspace accepted, exactly.
	if st.CreditsSpent != int64(e.stack.Simulator.RecordsReceived("acme")) {
		t.Errorf("status counts %d credits; Leadspace received %d records", st.CreditsSpent, e.stack.Simulator.RecordsReceived("acme"))
	}
	if got := e.stack.Simulator.RecordsReceived("acme"); got != n {
		t.Errorf("Leadspace received %d records for %d profiles", got, n)
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if strings.Contains(line, "generation") || strings.Contains(line, "deferred") || strings.Contains(line, "did not finish") || strings.Contains(line, "commit") || strings.Contains(line, "readmitted") {
				t.Log(line)
			}
		}
	}
}

func TestAReplayedTopicCostsNothingAndNeverMovesAKeyBackwards(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	e.start()
	const n, changed = 300, 100
	v1 := companies(n, "acme")
	e.produceProfiles(v1...)
	var v2 []schemas.Profile
	for _, p := range v1[:changed] {
		p.Version, p.EventID = 2, p.EventID+"-v2"
		p.Attributes = maps.Clone(p.Attributes)
		p.Attributes["Website"] = "v2-" + p.Attributes["Website"]
		v2 = append(v2, p)
	}
	e.produceProfiles(v2...)
	first := e.waitOutputs(60*time.Second, func(o outputs) bool {
		newer := 0
		for _, ev := range o.enriched {
			if ev.Lineage.ProfileVersion == 2 {
				newer++
			}
		}
		return len(o.enriched) == n && newer == changed
	})
	e.shutdown()
	records := e.stack.Simulator.RecordsReceived("acme")

	// Ops replay the topic: a new consumer group reads it from the start.
	// Every input is a redelivery of one whose answer is on enriched-company.
	e.group += "-replay"
	e.start()
	e.waitStatus("acme", 30*time.Second, func(s statusview.Tenant) bool { return s.Profiles == n })
	e.waitCommitted(60*time.Second, len(v1)+len(v2))
	out := e.readOutputs()
	if out.enrichedN != first.enrichedN {
		t.Errorf("the replay published %d records; it should publish none", out.enrichedN-first.enrichedN)
	}
	if got := e.stack.Simulator.RecordsReceived("acme"); got != records {
		t.Errorf("the replay sent %d records to Leadspace; it should send none", got-records)
	}
	for key, ev := range out.enriched {
		if strings.HasPrefix(ev.Sent.Website, "v2-") != (ev.Lineage.ProfileVersion == 2) {
			t.Errorf("%s: version %d carries the website %q", key, ev.Lineage.ProfileVersion, ev.Sent.Website)
		}
	}
	if backwards := e.keysGoingBackwards(); len(backwards) > 0 {
		t.Errorf("%d keys went back to an older version, e.g. %s", len(backwards), backwards[0])
	}
}

func TestAnOutageOfOneProgramIsBackpressureAndDoesNotHoldOtherTenants(t *testing.T) {
	e := newEnv(t, tenant("acme"), tenant("globex"))
	e.start(func(c *processor.Config, ls *leadspace.Config) { c.Window = 400 })
	// acme's program answers 503 for 20 s: its records wait (breaker open,
	// then deferred), and globex's go on.
	e.stack.Simulator.InjectFault(simulator.Fault{Program: "acme", Status: 503, For: 20 * time.Second})
	outageEnds := time.Now().Add(20 * time.Second)
	const n = 1500
	e.produceProfiles(companies(n, "acme", "globex")...)

	e.waitOutputs(60*time.Second, func(o outputs) bool {
		got := 0
		for key := range o.enriched {
			if strings.HasPrefix(key, "globex/") {
				got++
			}
		}
		return got == n
	})
	if time.Now().After(outageEnds) {
		t.Fatal("globex's profiles were held until acme's outage ended")
	}
	out := e.waitOutputs(90*time.Second, func(o outputs) bool { return len(o.enriched) == 2*n })
	if len(out.dead) != 0 {
		t.Fatalf("%d dead letters for an outage of 20 s; an outage is backpressure", len(out.dead))
	}
	e.waitCommitted(30*time.Second, 2*n)
	if backwards := e.keysGoingBackwards(); len(backwards) > 0 {
		t.Fatalf("keys went backwards: %v", backwards)
	}
}
