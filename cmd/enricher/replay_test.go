package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

func TestPlanReplay(t *testing.T) {
	now := time.Now()
	dl := func(id, tenant, reason string, replayable bool, count int32) *deadEntry {
		return &deadEntry{dead: schemas.Dead{ID: id, TenantID: tenant, Reason: reason, Replayable: replayable, ReplayCount: count,
			Stage: schemas.StageEnrich, ErrorClass: "auth", SourceTopic: "profile-unified", LastFailureAt: now.Add(-time.Hour)}}
	}
	receipted := dl("r", "acme", "gate.paused", true, 0)
	receipted.receipt = &receipt{replayID: "x", count: 1, at: now}
	truncated := dl("t", "acme", "decode.too_large", true, 0)
	truncated.dead.OriginalValueTruncated = true
	headerCount := dl("h", "acme", "gate.paused", true, 1)
	headerCount.dead.OriginalHeaders = []schemas.Header{{Key: processor.HeaderReplayCount, Value: []byte("3")}}
	letters := []*deadEntry{
		dl("a", "acme", "leadspace.unauthorized", true, 0),
		dl("b", "acme", "gate.paused", true, 2),
		dl("c", "acme", "gate.paused", true, 3), // at the limit
		dl("d", "acme", "leadspace.input_rejected", false, 0),
		dl("e", "beta", "gate.paused", true, 0), // another tenant
		receipted, truncated, headerCount,
	}
	p := planReplay(letters, dlqFilter{tenant: "acme"}, replayOptions{maxReplays: 3})
	var ids []string
	for _, e := range p.replay {
		ids = append(ids, e.dead.ID)
	}
	if strings.Join(ids, ",") != "a,b" || p.alreadyReplayed != 1 || p.notReplayable["leadspace.input_rejected"] != 1 ||
		p.truncated != 1 || len(p.loopGuard) != 2 || p.loopGuard[0].dead.ID != "c" || p.loopGuard[1].dead.ID != "h" {
		t.Fatalf("replay %v, already %d, not replayable %v, truncated %d, loop guard %d", ids, p.alreadyReplayed, p.notReplayable, p.truncated, len(p.loopGuard))
	}
	p = planReplay(letters, dlqFilter{tenant: "acme", reasons: "leadspace.input_rejected"}, replayOptions{maxReplays: 3, includeUnreplayable: true})
	if len(p.replay) != 1 || p.replay[0].dead.ID != "d" {
		t.Fatalf("--include-unreplayable --reason: %+v", p.replay)
	}
	var since timeFlag
	_ = since.Set("30m")
	if p := planReplay(letters, dlqFilter{since: since}, replayOptions{maxReplays: 3}); len(p.replay) != 0 {
		t.Fatalf("--since 30m selected dead letters an hour old: %d", len(p.replay))
	}

	// A newer event of the same key supersedes the dead letter.
	p = planReplay(letters, dlqFilter{tenant: "acme"}, replayOptions{maxReplays: 3})
	p.replay[0].dead.OriginalKey, p.replay[0].dead.SourceOffset = []byte("acme/1"), 10
	p.dropSuperseded(map[sourceKey]int64{{"profile-unified", 0, "acme/1"}: 11})
	if len(p.replay) != 1 || p.superseded != 1 {
		t.Fatalf("superseded: %d left, %d superseded", len(p.replay), p.superseded)
	}
}

func TestReplayedMessageKeepsTheInputAndCountsTheReplay(t *testing.T) {
	e := &deadEntry{dead: schemas.Dead{ID: "dl-1", OriginalKey: []byte("acme/p1"), OriginalValue: []byte{0, 1, 2}, SourceTopic: "profile-unified",
		ReplayCount: 1, OriginalHeaders: []schemas.Header{{Key: "trace", Value: []byte("abc")}, {Key: processor.HeaderReplayCount, Value: []byte("1")}}}}
	m := replayedMessage(e, e.replayCount()+1)
	if m.Topic != "profile-unified" || string(m.Key) != "acme/p1" || string(m.Value) != "\x00\x01\x02" {
		t.Fatalf("%+v", m)
	}
	h := map[string]string{}
	for _, x := range m.Headers {
		if _, dup := h[x.Key]; dup {
			t.Fatalf("header %s twice", x.Key)
		}
		h[x.Key] = string(x.Value)
	}
	if h["trace"] != "abc" || h[processor.HeaderReplayCount] != "2" || h[headerReplayOf] != "dl-1" {
		t.Fatalf("headers %v", h)
	}
	r, id, ok := receiptOf(receiptMessage("dlq", e, "replay-1", 2, time.Now()))
	if !ok || id != "dl-1" || r.replayID != "replay-1" || r.count != 2 {
		t.Fatalf("receipt %+v %s %v", r, id, ok)
	}
}

// 500 dead letters made by a 401, a new connection, then replay: 500
// outputs; the same replay again writes nothing.
func TestReplayOf401DeadLettersGivesOutputsOnce(t *testing.T) {
	const n = 500
	stack := newStack(t)
	addTenant(t, stack, "acme", "env:LEADSPACE_TOKEN_ACME", true)
	stack.Simulator.InjectFault(simulator.Fault{Status: 401, Count: -1})
	var ps []schemas.Profile
	for i := 0; i < n; i++ {
		ps = append(ps, company("acme", fmt.Sprintf("p%03d", i), fmt.Sprintf("Contoso %d", i), fmt.Sprintf("contoso%d.example.org", i)))
	}
	writeProfiles(t, stack, ps)
	svc := startRun(t, stack, cliEnv())
	processedAll(t, stack, svc)
	if got := distinctDead(t, stack, "acme"); got != n {
		t.Fatalf("%d dead letters after the 401, want %d", got, n)
	}
	if out := records(t, stack, stack.Topics.Enriched); len(out) != 0 {
		t.Fatalf("%d outputs on the enriched topic before the replay", len(out))
	}

	// The token works again; a new connection event lifts the pause.
	stack.Simulator.Reset()
	runOK(t, stack, "connect", "--tenant", "acme", "--token-ref", "env:LEADSPACE_TOKEN_ACME")
	retrytest.Until(t, 30*time.Second, func() (bool, string) {
		v := statusOf(t, stack, "acme")
		return v.State == schemas.StateActive, "state " + v.State + " " + v.StateReason
	})
	verifyRecords := stack.Simulator.RecordsReceived("acme")

	dry := replayJSON(t, stack, 0, "replay", "--tenant", "acme", "--dry-run", "--json")
	if !dry.DryRun || dry.Replayed != n || sum(dry.ByReason) != n {
		t.Fatalf("replay --dry-run: %+v", dry)
	}
	if got := len(records(t, stack, stack.Topics.Profiles)); got != n {
		t.Fatalf("the dry run wrote: %d records on the profiles topic", got)
	}
	first := replayJSON(t, stack, 0, "replay", "--tenant", "acme", "--json")
	if first.Replayed != n || first.AlreadyReplayed != 0 || len(first.LoopGuard) != 0 {
		t.Fatalf("replay: %+v", first)
	}
	processedAll(t, stack, svc)
	answered := map[string]string{}
	for _, m := range records(t, stack, stack.Topics.Enriched) {
		e, err := stack.Codec.DecodeEnriched(context.Background(), m.Value)
		if err != nil {
			t.Fatal(err)
		}
		answered[string(m.Key)] = e.Status
	}
	for key, status := range answered {
		if status != schemas.StatusEnriched && status != schemas.StatusNotMatched {
			t.Fatalf("%s came out %s", key, status)
		}
	}
	if len(answered) != n {
		t.Fatalf("%d profiles have an answer after the replay, want %d", len(answered), n)
	}
	if got := stack.Simulator.RecordsReceived("acme") - verifyRecords; got != n {
		t.Fatalf("the replay sent %d records to Leadspace, want %d", got, n)
	}

	// Again: nothing is written, and dlq list shows them replayed.
	profilesBefore, dlqBefore := len(records(t, stack, stack.Topics.Profiles)), len(records(t, stack, stack.Topics.DeadLetters))
	second := replayJSON(t, stack, 0, "replay", "--tenant", "acme", "--json")
	if second.Replayed != 0 || second.AlreadyReplayed != n {
		t.Fatalf("second replay: %+v", second)
	}
	if p, d := len(records(t, stack, stack.Topics.Profiles)), len(records(t, stack, stack.Topics.DeadLetters)); p != profilesBefore || d != dlqBefore {
		t.Fatalf("the second replay wrote: profiles %d -> %d, DLQ %d -> %d", profilesBefore, p, dlqBefore, d)
	}
	var listed []deadJSON
	if err := json.Unmarshal([]byte(runOK(t, stack, "dlq", "list", "--tenant", "acme", "--limit", "0", "--json")), &listed); err != nil {
		t.Fatal(err)
	}
	for _, d := range listed {
		if d.ReplayedAt == nil || d.ReplayID != first.ReplayID {
			t.Fatalf("dlq list: %+v not shown as replayed by %s", d, first.ReplayID)
		}
	}
	if len(listed) != n {
		t.Fatalf("dlq list: %d dead letters, want %d", len(listed), n)
	}
	svc.stop(t)
}

// A record that keeps failing is replayed until the loop guard refuses it.
func TestReplayLoopGuardRefusesAndReports(t *testing.T) {
	stack := newStack(t)
	// The token reference cannot be resolved: the tenant is paused, and
	// every event goes to the DLQ as replayable, without a Leadspace call.
	addTenant(t, stack, "loop", "env:LEADSPACE_TOKEN_NO_SUCH_TOKEN", true)
	writeProfiles(t, stack, []schemas.Profile{company("loop", "a", "Loop A", "a.example.org"), company("loop", "b", "Loop B", "b.example.org")})
	svc := startRun(t, stack, cliEnv())
	processedAll(t, stack, svc)
	for round := 1; round <= 3; round++ {
		if got := distinctDead(t, stack, "loop"); got != 2*round {
			t.Fatalf("round %d: %d dead letters, want %d", round, got, 2*round)
		}
		if s := replayJSON(t, stack, 0, "replay", "--tenant", "loop", "--json"); s.Replayed != 2 || s.AlreadyReplayed != 2*(round-1) {
			t.Fatalf("round %d: %+v", round, s)
		}
		processedAll(t, stack, svc)
	}
	profiles := len(records(t, stack, stack.Topics.Profiles))
	s := replayJSON(t, stack, exitPartial, "replay", "--tenant", "loop", "--json")
	if s.Replayed != 0 || len(s.LoopGuard) != 2 || s.LoopGuard[0].ReplayCount != 3 || s.LoopGuard[0].Reason != controlplane.ReasonPaused {
		t.Fatalf("at the limit: %+v", s)
	}
	if got := len(records(t, stack, stack.Topics.Profiles)); got != profiles {
		t.Fatalf("the loop guard let %d records through", got-profiles)
	}
	out, errOut, code := cli(t, stack, cliEnv(), "replay", "--tenant", "loop")
	if code != exitPartial || !strings.Contains(out, "refused: dead letter "+s.LoopGuard[0].DeadLetterID) ||
		!strings.Contains(errOut, "2 dead letters refused by the loop guard") {
		t.Fatalf("replay at the limit: exit %d\n%s%s", code, out, errOut)
	}
	// A higher limit lets them through once more.
	if s := replayJSON(t, stack, 0, "replay", "--tenant", "loop", "--max-replays", "4", "--json"); s.Replayed != 2 {
		t.Fatalf("--max-replays 4: %+v", s)
	}

	runRefused(t, stack, 2, `stage: "NOPE" is not one of`, "replay", "--stage", "nope")
	runRefused(t, stack, 2, `error-class: "fatal" is not one of`, "replay", "--error-class", "fatal")
	runRefused(t, stack, 2, `reason: "Bad Reason!" is not a reason code`, "replay", "--reason", "Bad Reason!")
	runRefused(t, stack, 2, "since, until: since", "replay", "--since", "1h", "--until", "2h")
	runRefused(t, stack, 2, "max-replays: 0 is below 1", "replay", "--max-replays", "0")
	runRefused(t, stack, 2, "invalid value \"soon\" for flag -until", "replay", "--until", "soon")
	runRefused(t, stack, 1, "unknown tenant nobody", "replay", "--tenant", "nobody")
	svc.stop(t)
}

// distinctDead counts a tenant's dead letters by id.
func distinctDead(t *testing.T, stack *embedded.Stack, tenant string) int {
	t.Helper()
	ids := map[string]bool{}
	for _, m := range records(t, stack, stack.Topics.DeadLetters) {
		if m.Value == nil {
			continue // a replay receipt
		}
		d, err := stack.Codec.DecodeDead(context.Background(), m.Value)
		if err != nil {
			t.Fatal(err)
		}
		if d.TenantID == tenant {
			ids[d.ID] = true
		}
	}
	return len(ids)
}

// statusOf is a tenant's `enricher status --json`.
func statusOf(t *testing.T, stack *embedded.Stack, tenant string) statusview.Tenant {
	t.Helper()
	var rows []statusview.Tenant
	if err := json.Unmarshal([]byte(runOK(t, stack, "status", "--json", "--tenant", tenant)), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("status --json: %v %+v", err, rows)
	}
	return rows[0]
}

// replayJSON runs a replay with --json that must exit with code.
func replayJSON(t *testing.T, stack *embedded.Stack, code int, args ...string) replaySummary {
	t.Helper()
	out, errOut, got := cli(t, stack, cliEnv(), args...)
	var s replaySummary
	if got != code {
		t.Fatalf("enricher %s: exit %d, want %d\n%s%s", strings.Join(args, " "), got, code, out, errOut)
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("enricher %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return s
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
