package processor_test

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// tenantWithHistory writes n profiles of a tenant, updates some twice and
// deletes some, as a real tenant's topic looks after a while. It returns
// the keys of the current (not deleted) profiles.
func (e *env) tenantWithHistory(tenant string, n, updated, deleted int) map[string]bool {
	e.t.Helper()
	ps := companies(n, tenant)
	e.produceProfiles(ps...)
	current := map[string]bool{}
	for _, p := range ps {
		current[p.TenantID+"/"+p.ProfileID] = true
	}
	for v := int64(2); v <= 3; v++ {
		var next []schemas.Profile
		for _, p := range ps[:updated] {
			p.Version, p.EventID = v, fmt.Sprintf("%s-v%d", p.EventID, v)
			p.Attributes = maps.Clone(p.Attributes)
			p.Attributes["Website"] = fmt.Sprintf("v%d-%s", v, p.Attributes["Website"])
			next = append(next, p)
		}
		e.produceProfiles(next...)
	}
	var tombstones []kafka.Message
	for _, p := range ps[n-deleted:] {
		key := p.TenantID + "/" + p.ProfileID
		tombstones = append(tombstones, kafka.Message{Key: []byte(key), Value: nil})
		delete(current, key)
	}
	e.produceRaw(tombstones...)
	return current
}

// refresh asks for a Run as `enricher refresh` does.
func (e *env) refresh(tenant, runID string, force bool) time.Time {
	ev := e.control(schemas.Control{TenantID: tenant, Refresh: &schemas.Refresh{RunID: runID, Force: force}})
	return ev.IssuedAt
}

// waitRun waits until every partition reports the Run finished and returns
// the partitions' progress records.
func (e *env) waitRun(tenant, runID string, within time.Duration) []schemas.RunProgress {
	e.t.Helper()
	var runs []schemas.RunProgress
	retrytest.Until(e.t, within, func() (bool, string) {
		records, err := processor.ReadStatus(e.ctx(), e.stack.Kafka, e.stack.Topics.Status, e.stack.Codec)
		if err != nil {
			e.t.Fatal(err)
		}
		runs = runs[:0]
		for _, s := range records {
			if s.TenantID == tenant && s.Partition >= 0 && s.Run != nil && s.Run.RunID == runID && s.Run.Outcome != "" {
				runs = append(runs, *s.Run)
			}
		}
		return len(runs) == 3, fmt.Sprintf("run %s of %s: %d of 3 partitions finished", runID, tenant, len(runs))
	})
	return runs
}

func TestARunReEnrichesEveryCurrentProfileOnce(t *testing.T) {
	e := newEnv(t, tenant("acme"), tenant("globex"))
	e.start()
	const n, updated, deleted = 600, 100, 50
	current := e.tenantWithHistory("acme", n, updated, deleted)
	e.produceProfiles(companies(50, "globex")...)
	// A value that is no profile at all has its dead letter and is no
	// current profile: out of the Run's scope, as in the dry run's preview.
	e.produceRaw(kafka.Message{Key: []byte("acme/not-a-profile"), Value: []byte("not avro")})
	e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == len(current)+50 })
	e.waitCommitted(60*time.Second, n+2*updated+deleted+50+1)
	st := e.waitStatus("acme", 30*time.Second, func(s statusview.Tenant) bool { return s.Profiles == int64(len(current)) })
	before := e.stack.Simulator.RecordsReceived("acme")
	globexBefore := e.stack.Simulator.RecordsReceived("globex")

	// A stale-only Run finds every answer fresh: no call at all.
	e.refresh("acme", "stale-1", false)
	runs := e.waitRun("acme", "stale-1", 60*time.Second)
	if got := e.stack.Simulator.RecordsReceived("acme") - before; got != 0 {
		t.Fatalf("a stale-only Run of fresh profiles sent %d records", got)
	}
	scope := int64(0)
	for _, r := range runs {
		scope += r.Scope
		if r.Outcome != schemas.RunCompleted || r.Done != r.Scope {
			t.Fatalf("stale-only run: %+v", r)
		}
	}
	if scope != int64(len(current)) {
		t.Fatalf("the Run's scope is %d profiles, want the %d current ones", scope, len(current))
	}

	// A forced Run asks Leadspace once for every current profile.
	asked := e.refresh("acme", "force-1", true)
	runs = e.waitRun("acme", "force-1", 90*time.Second)
	spent, called := int64(0), int64(0)
	for _, r := range runs {
		spent += r.RecordsSpent
		called += r.Called
		if r.Outcome != schemas.RunCompleted || r.Done != r.Scope {
			t.Fatalf("forced run: %+v", r)
		}
	}
	got := int64(e.stack.Simulator.RecordsReceived("acme") - before)
	if got != int64(len(current)) || spent != got || called != got {
		t.Fatalf("forced Run: Leadspace got %d records, the Run counts %d spent and %d called, for %d current profiles",
			got, spent, called, len(current))
	}
	if other := e.stack.Simulator.RecordsReceived("globex") - globexBefore; other != 0 {
		t.Fatalf("a Run of acme sent %d records of globex", other)
	}
	out := e.readOutputs()
	for key := range current {
		ev, ok := out.enriched[key]
		switch {
		case !ok:
			t.Errorf("%s has no enrichment after the Run", key)
		case ev.EnrichedAt.Before(asked):
			t.Errorf("%s was not refreshed by the Run", key)
		}
	}
	for key := range out.enriched {
		if !current[key] && key[:5] == "acme/" {
			t.Errorf("deleted profile %s came back", key)
		}
	}
	st2 := e.waitStatus("acme", 30*time.Second, func(s statusview.Tenant) bool { return s.LastRefreshAt != nil })
	if st2.Profiles != st.Profiles || st2.LastRefreshAt.Before(asked) {
		t.Fatalf("status after the Run: %d profiles (was %d), last refresh %s", st2.Profiles, st.Profiles, st2.LastRefreshAt)
	}
	if backwards := e.keysGoingBackwards(); len(backwards) > 0 {
		t.Fatalf("the Run moved keys back: %v", backwards[:min(3, len(backwards))])
	}
}

func TestARunResumesAfterAStopAndCountsNothingTwice(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	e.start()
	const n = 900
	e.produceProfiles(companies(n, "acme")...)
	e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == n })
	before := e.stack.Simulator.RecordsReceived("acme")
	e.shutdown()

	// The Run starts on a slow program and the instance stops mid-way.
	slow := func(_ *processor.Config, ls *leadspace.Config) { ls.TPS, ls.BulkThreshold = 100, 1<<30 }
	e.start(slow)
	e.refresh("acme", "force-2", true)
	retrytest.Wait(t, 60*time.Second, "the Run's first third at Leadspace", func() bool {
		return e.stack.Simulator.RecordsReceived("acme")-before >= n/3
	})
	e.shutdown()

	e.start()
	runs := e.waitRun("acme", "force-2", 90*time.Second)
	done, counted := int64(0), int64(0)
	for _, r := range runs {
		done, counted = done+r.Done, counted+r.RecordsSpent
		if r.Outcome != schemas.RunCompleted || r.Done != r.Scope {
			t.Fatalf("resumed run: %+v", r)
		}
	}
	if done != n {
		t.Fatalf("the Run finished %d profiles, want %d", done, n)
	}
	if got := e.stack.Simulator.RecordsReceived("acme") - before; got < n || got > n+n/50 {
		t.Fatalf("a Run of %d profiles stopped once spent %d records; at most %d allowed", n, got, n+n/50)
	}
	if diff := counted - int64(e.stack.Simulator.RecordsReceived("acme")-before); diff < -n/50 || diff > n/50 {
		t.Fatalf("the Run counts %d records spent, %d off what Leadspace received", counted, diff)
	}
}

func TestAnUnchangedSkipPublishesNothingNew(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	e.start()
	blank := profile("acme", 1, map[string]string{"CompanyName": "  ", "Website": "x.com"})
	e.produceProfiles(blank)
	e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.enriched) == 1 })
	again := blank
	again.EventID, again.Version = "again", 2
	e.produceProfiles(again, profile("acme", 2, company(2)))
	e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.enriched) == 2 })
	e.waitCommitted(30*time.Second, 3)
	if out := e.readOutputs(); out.enrichedN != 2 {
		t.Fatalf("%d records on the enriched topic; the unchanged skip must publish nothing", out.enrichedN)
	}
}

// The acceptance at full size: 20,000 current profiles, some
// deleted, some updated twice.
func TestARunOfTwentyThousandProfiles(t *testing.T) {
	if testing.Short() {
		t.Skip("full-size Run")
	}
	e := newEnv(t, tenant("acme"))
	e.start()
	const n, updated, deleted = 20500, 1000, 500
	current := e.tenantWithHistory("acme", n, updated, deleted)
	e.waitCommitted(5*time.Minute, n+2*updated+deleted)
	st := e.waitStatus("acme", time.Minute, func(s statusview.Tenant) bool { return s.Profiles == int64(len(current)) })
	if st.Profiles != n-deleted {
		t.Fatalf("status shows %d profiles, want %d (deleted ones removed)", st.Profiles, n-deleted)
	}
	before := e.stack.Simulator.RecordsReceived("acme")
	asked := e.refresh("acme", "full", true)
	runs := e.waitRun("acme", "full", 5*time.Minute)
	scope := int64(0)
	for _, r := range runs {
		scope += r.Scope
	}
	out := e.readOutputs()
	fresh := 0
	for key := range current {
		if ev, ok := out.enriched[key]; ok && !ev.EnrichedAt.Before(asked) {
			fresh++
		}
	}
	got := e.stack.Simulator.RecordsReceived("acme") - before
	t.Logf("Run of %d profiles: scope %d, %d fresh outputs, %d records", len(current), scope, fresh, got)
	if scope != int64(len(current)) || fresh != len(current) || got != len(current) {
		t.Fatalf("scope %d, fresh %d, records %d; want %d each", scope, fresh, got, len(current))
	}
}
