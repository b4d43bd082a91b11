package main

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// The suite's figures are only as good as their definitions: these tests
// pin them on small, hand-built topics, without a broker.

func testCodec(t *testing.T) *schemas.Codec {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	codec, err := schemas.NewCodec(context.Background(), cl, map[schemas.Type]string{
		schemas.ProfileUnified: topicProfiles + "-value", schemas.EnrichedCompany: topicEnriched + "-value", schemas.DeadLetter: topicDLQ + "-value"})
	if err != nil {
		t.Fatal(err)
	}
	return codec
}

func TestAnalyzeCountsLostDuplicatesBackwardsAndWaste(t *testing.T) {
	codec := testCodec(t)
	w, err := buildWorkload(codec, workloadSpec{tenants: []string{"t"}, profiles: 4, updates: 2, updateLag: 1, seed: 1, runID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	// inputs: p0 v1, p1 v1, p0 v2 ... find them by key and version.
	find := func(profile string, v int64) *input {
		for _, in := range w.inputs {
			if in.profile == profile && in.version == v {
				return in
			}
		}
		t.Fatalf("no input %s v%d", profile, v)
		return nil
	}
	t0 := time.Now()
	var inputs []record
	for i, in := range w.inputs {
		inputs = append(inputs, record{partition: 0, offset: int64(i), at: t0, key: in.key, value: in.value})
	}
	out := func(in *input, status string, at time.Duration) record {
		e := schemas.Enriched{EventID: outputEventID(in.eventID), TenantID: in.tenant, ProfileID: in.profile, Status: status,
			InputFingerprint: "-", EnrichedAt: t0, Lineage: schemas.Lineage{SourceEventID: in.eventID, ProfileVersion: in.version}}
		v, err := codec.Encode(schemas.EnrichedCompany, e.Native())
		if err != nil {
			t.Fatal(err)
		}
		return record{key: in.key, at: t0.Add(at), value: v}
	}
	// Profiles 1 and 3 get a version 2.
	p0v1, p0v2 := find("cust-0000001", 1), find("cust-0000001", 2)
	p2v1, p2v2 := find("cust-0000003", 1), find("cust-0000003", 2)
	p1 := find("cust-0000000", 1)
	_ = find("cust-0000002", 1) // gets no output at all: lost
	outputs := []record{
		out(p0v1, schemas.StatusEnriched, time.Second),
		out(p0v2, schemas.StatusEnriched, 2*time.Second), // p0: fine
		out(p2v2, schemas.StatusEnriched, 2*time.Second),
		out(p2v1, schemas.StatusEnriched, 3*time.Second), // p2 goes back to v1: backwards, and its final state is lost
		out(p1, schemas.StatusNotMatched, time.Second),
		out(p1, schemas.StatusNotMatched, 4*time.Second), // a duplicate
	}
	for i := range outputs {
		outputs[i].offset = int64(i)
	}
	rec := func(in *input) struct {
		ExternalID string `json:"external_id"`
		Company    struct {
			Name string `json:"name"`
		} `json:"company"`
	} {
		var r struct {
			ExternalID string `json:"external_id"`
			Company    struct {
				Name string `json:"name"`
			} `json:"company"`
		}
		r.Company.Name = in.name
		return r
	}
	calls := []simCall{
		{Time: t0, Program: "program-1", Path: "/enrichment/enrich/single", Status: 200},
		{Time: t0.Add(5 * time.Second), Program: "program-1", Path: "/enrichment/enrich/single", Status: 200}, // p0 v1 again, after its answer
		{Time: t0, Program: "program-1", Path: "/enrichment/enrich/single", Status: 429},                      // refused: not received
	}
	calls[0].Records = append(calls[0].Records, rec(p0v1))
	calls[1].Records = append(calls[1].Records, rec(p0v1))
	calls[2].Records = append(calls[2].Records, rec(p1))

	res, err := analyze(context.Background(), analysisInput{w: w, rules: map[string]tenantRule{"t": {program: "program-1", consent: true}},
		inputs: inputs, outputs: outputs, calls: calls, t0: t0, bucket: 10 * time.Second, codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	if res.Inputs != 6 || res.Keys != 4 {
		t.Errorf("inputs %d keys %d, want 6 and 4", res.Inputs, res.Keys)
	}
	if res.LostFinal != 2 || res.Lost != 2 { // profile 3 (final v1, latest v2) and profile 2 (nothing)
		t.Errorf("lost %d (final %d, events %d), want 2 (2 final): %v", res.Lost, res.LostFinal, res.LostEvents, res.LostExamples)
	}
	if res.LostEvents != 1 { // profile 2
		t.Errorf("lost events %d, want 1", res.LostEvents)
	}
	if res.Duplicates != 1 || res.Backwards != 1 || res.BackwardsRecords != 1 {
		t.Errorf("duplicates %d backwards %d/%d, want 1 and 1/1", res.Duplicates, res.Backwards, res.BackwardsRecords)
	}
	if res.Received != 2 || res.Wasted != 1 || res.ResentPublished != 1 {
		t.Errorf("received %d wasted %d resent %d, want 2, 1, 1", res.Received, res.Wasted, res.ResentPublished)
	}
	if res.Needed != 6 || res.NeededNotSent != 5 {
		t.Errorf("needed %d (never sent %d), want 6 (5)", res.Needed, res.NeededNotSent)
	}
	if p := res.Programs["program-1"]; p == nil || p.Status429 != 1 || p.Singles != 3 {
		t.Errorf("program-1 calls %+v, want 3 singles and one 429", p)
	}
}

func TestProgressMeasuresTheLongestStallAndTheRecovery(t *testing.T) {
	t0 := time.Now()
	parts := []int{0, 1}
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	sm := func(s float64, c0, c1 int64, state string, assigned ...int) sample {
		a := map[int]bool{}
		for _, p := range assigned {
			a[p] = true
		}
		return sample{at: at(s), ok: true, committed: map[int]int64{0: c0, 1: c1}, end: map[int]int64{0: 100, 1: 100},
			state: state, assigned: a, alive: 1}
	}
	samples := []sample{
		sm(0, 0, 0, "Stable", 0, 1),
		sm(1, 10, 10, "Stable", 0, 1),
		sm(2, 10, 10, "PreparingRebalance"), // the kill at 1.5 s: nothing moves from 1 s ...
		sm(3, 10, 10, "PreparingRebalance"),
		sm(4, 10, 10, "Stable", 0, 1),
		sm(5, 20, 10, "Stable", 0, 1), // ... to 5 s: a 4 s stall; partition 1 still idle
		sm(6, 30, 10, "Stable", 0, 1),
	}
	outs := []outSeen{{seen: at(6.5), partition: 1}}
	samples = append(samples, sm(7, 40, 10, "Stable", 0, 1))
	pr := computeProgress(samples, outs, parts, at(1.5))
	if pr.LongestStallS != 4 || pr.StallFromS != 1 {
		t.Errorf("longest stall %.1fs from %.1fs, want 4s from 1s", pr.LongestStallS, pr.StallFromS)
	}
	// Partition 1 advanced (an output answering it) only at 6.5 s, seen by the 7 s sample.
	if pr.RecoveredAfterLastKillS != 5.5 {
		t.Errorf("recovered %.1fs after the kill, want 5.5s", pr.RecoveredAfterLastKillS)
	}
}

func TestAStandingSkipAnswersEveryVersionOfATenantWithoutConsent(t *testing.T) {
	codec := testCodec(t)
	w, err := buildWorkload(codec, workloadSpec{tenants: []string{"c"}, profiles: 2, updates: 1, updateLag: 1, seed: 1, runID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var inputs []record
	for i, in := range w.inputs {
		inputs = append(inputs, record{offset: int64(i), at: t0, key: in.key, value: in.value})
	}
	// Only version 1 of each profile has an output: the service kept the
	// standing skip for profile 1's version 2.
	var outputs []record
	for _, in := range w.inputs {
		if in.version != 1 {
			continue
		}
		e := schemas.Enriched{EventID: outputEventID(in.eventID), TenantID: in.tenant, ProfileID: in.profile, Status: schemas.StatusSkipped,
			SkipReason: "gate.no_consent", InputFingerprint: "-", EnrichedAt: t0, Lineage: schemas.Lineage{SourceEventID: in.eventID, ProfileVersion: 1}}
		v, err := codec.Encode(schemas.EnrichedCompany, e.Native())
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, record{offset: int64(len(outputs)), key: in.key, at: t0, value: v})
	}
	res, err := analyze(context.Background(), analysisInput{w: w, rules: map[string]tenantRule{"c": {program: "program-3"}},
		inputs: inputs, outputs: outputs, t0: t0, bucket: 10 * time.Second, codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	if res.Lost != 0 || res.SkipsStanding != 1 || res.Needed != 0 {
		t.Errorf("lost %d (%v), standing skips %d, needed %d; want 0, 1, 0", res.Lost, res.LostExamples, res.SkipsStanding, res.Needed)
	}
}
