package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/schemas"
)

func TestPreviewRun(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mapping := &schemas.Mapping{NameAttribute: demoNameAttr, WebsiteAttribute: demoWebsiteAttr, RefreshInterval: 24 * time.Hour}
	active := controlplane.TenantState{TenantID: "acme", State: schemas.StateActive, Mapping: mapping}
	p := func(id, name, site string) currentProfile {
		return currentProfile{key: "acme/" + id, profile: company("acme", id, name, site)}
	}
	fp := func(cp currentProfile) string {
		f, _, err := processor.MapProfile(cp.profile, *mapping)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	fresh, stale, changed, neverAnswered := p("fresh", "A", "a.org"), p("stale", "B", "b.org"), p("changed", "C", "c-new.org"), p("new", "D", "d.org")
	skippedBefore := p("skipped-before", "E", "e.org")
	profiles := []currentProfile{fresh, stale, changed, neverAnswered, skippedBefore,
		p("blank", " ", "x.org"), p("huge", strings.Repeat("n", 600), "h.org"),
		{key: "acme/garbage", err: &schemas.DecodeError{Reason: schemas.ReasonBadAvro, Err: errors.New("bad")}},
		{key: "acme/other", profile: company("acme", "mismatch", "F", "f.org")}}
	prior := map[string]priorAnswer{
		fresh.key:         {fingerprint: fp(fresh), status: schemas.StatusNotMatched, at: now.Add(-time.Hour)},
		stale.key:         {fingerprint: fp(stale), status: schemas.StatusEnriched, at: now.Add(-25 * time.Hour)},
		changed.key:       {fingerprint: "an older fingerprint", status: schemas.StatusEnriched, at: now.Add(-time.Hour)},
		skippedBefore.key: {fingerprint: "-", status: schemas.StatusSkipped, at: now.Add(-time.Hour)},
	}
	cases := []struct {
		name  string
		state controlplane.TenantState
		force bool
		want  runPreview
	}{
		{"stale-only", active, false, runPreview{Profiles: 7, WouldCall: 4, New: 2, Changed: 1, Stale: 1, Unchanged: 1, Skipped: 1, InputErrors: 1, Invalid: 2}},
		{"force", active, true, runPreview{Profiles: 7, WouldCall: 5, New: 2, Changed: 1, Stale: 1, Forced: 1, Skipped: 1, InputErrors: 1, Invalid: 2}},
		{"no consent: all skipped", controlplane.TenantState{TenantID: "acme", State: schemas.StateNoConsent, Mapping: mapping}, true,
			runPreview{Profiles: 7, Skipped: 7, Invalid: 2}},
		{"paused: dead letters", controlplane.TenantState{TenantID: "acme", State: schemas.StatePaused, Reason: "gate.paused: leadspace.unauthorized", Mapping: mapping}, false,
			runPreview{Profiles: 7, InputErrors: 7, Invalid: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := previewRun(c.state, profiles, prior, c.force, now)
			g, w := got, c.want
			if g.Profiles != w.Profiles || g.WouldCall != w.WouldCall || g.New != w.New || g.Changed != w.Changed || g.Stale != w.Stale ||
				g.Forced != w.Forced || g.Unchanged != w.Unchanged || g.Skipped != w.Skipped || g.InputErrors != w.InputErrors || g.Invalid != w.Invalid {
				t.Fatalf("got  %+v\nwant %+v", g, w)
			}
			if g.Profiles != g.WouldCall+g.Unchanged+g.Skipped+g.InputErrors {
				t.Fatalf("in scope %d != calls + unchanged + skipped + input errors", g.Profiles)
			}
		})
	}
	got := previewRun(active, profiles, prior, false, now)
	if got.SkippedReasons[processor.ReasonMissingName] != 1 || got.InputErrorReasons[processor.ReasonFieldTooLong] != 1 ||
		got.InvalidReasons[schemas.ReasonBadAvro] != 1 || got.InvalidReasons[processor.ReasonKeyMismatch] != 1 {
		t.Fatalf("reasons: skipped %v, input errors %v, invalid %v", got.SkippedReasons, got.InputErrorReasons, got.InvalidReasons)
	}
}

func TestEstimateRun(t *testing.T) {
	for _, c := range []struct {
		calls, tx int
		mode      string
		seconds   float64
	}{{0, 0, "single", 0}, {15, 15, "single", 0.5}, {20, 2, "bulk", 0.07}, {500, 2, "bulk", 0.07}, {501, 4, "bulk", 0.13}, {20000, 80, "bulk", 2.67}} {
		e := estimateRun(c.calls, 30, 20)
		if e.Records != c.calls || e.Transactions != c.tx || e.Mode != c.mode || e.Seconds != c.seconds || e.Assumption == "" {
			t.Errorf("%d calls: %+v, want %d transactions (%s), %gs", c.calls, e, c.tx, c.mode, c.seconds)
		}
	}
}

// The preview of a tenant with changed, unchanged, deleted, skipped and new
// profiles predicts exactly the records the pipeline then spends.
func TestRefreshDryRunMatchesWhatThePipelineSpends(t *testing.T) {
	stack := newStack(t)
	addTenant(t, stack, "acme", "env:LEADSPACE_TOKEN_ACME", true)
	p := func(i int, site string) schemas.Profile {
		return company("acme", fmt.Sprintf("p%02d", i), fmt.Sprintf("Northwind %d", i), site)
	}
	var first []schemas.Profile
	for i := 0; i < 60; i++ {
		first = append(first, p(i, fmt.Sprintf("northwind%d.example.org", i)))
	}
	first = append(first, company("acme", "p60", "", "blank.example.org"))
	writeProfiles(t, stack, first)
	svc := startRun(t, stack, cliEnv())
	processedAll(t, stack, svc)
	svc.stop(t)
	before := stack.Simulator.RecordsReceived("acme")

	var second []schemas.Profile
	for i := 0; i < 10; i++ { // changed website: a new question
		second = append(second, p(i, fmt.Sprintf("northwind%d.example.com", i)))
	}
	for i := 10; i < 20; i++ { // re-sent unchanged: no call
		second = append(second, p(i, fmt.Sprintf("northwind%d.example.org", i)))
	}
	second = append(second, company("acme", "p25", " ", "northwind25.example.org")) // name blanked: skipped
	for i := 61; i < 71; i++ {                                                      // new
		second = append(second, p(i, fmt.Sprintf("northwind%d.example.org", i)))
	}
	second = append(second, company("acme", "p71", "", "x.example.org"), company("acme", "p72", strings.Repeat("N", 600), "y.example.org"))
	writeProfiles(t, stack, second, "acme/p20", "acme/p21", "acme/p22", "acme/p23", "acme/p24")
	controlBefore := len(records(t, stack, stack.Topics.Control))

	out := runOK(t, stack, "refresh", "--tenant", "acme", "--dry-run", "--json")
	var pv runPreview
	if err := json.Unmarshal([]byte(out), &pv); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// In scope: 61 - 5 deleted + 12 new = 68; calls: 10 changed + 10 new.
	if pv.Profiles != 68 || pv.WouldCall != 20 || pv.Changed != 10 || pv.New != 10 || pv.Skipped != 3 || pv.InputErrors != 1 ||
		pv.Unchanged != 44 || pv.Estimate.Records != 20 || pv.SkippedReasons[processor.ReasonMissingName] != 3 {
		t.Fatalf("preview: %s", out)
	}
	human := runOK(t, stack, "refresh", "--tenant", "acme", "--dry-run")
	for _, want := range []string{"nothing was published", "would call Leadspace", "estimated records", "assumption: bulk"} {
		if !strings.Contains(human, want) {
			t.Errorf("refresh --dry-run lacks %q:\n%s", want, human)
		}
	}
	if got := len(records(t, stack, stack.Topics.Control)); got != controlBefore {
		t.Fatalf("the dry run published %d control events", got-controlBefore)
	}

	svc = startRun(t, stack, cliEnv())
	processedAll(t, stack, svc)
	svc.stop(t)
	if spent := stack.Simulator.RecordsReceived("acme") - before; spent != pv.WouldCall {
		t.Fatalf("the pipeline sent %d records to Leadspace; the preview said %d", spent, pv.WouldCall)
	}
}

// refresh publishes a Run request, refuses what it must, follows a Run to
// its end and cancels. The service side of a Run is played by this test,
// writing the status records a Run writes.
func TestRefreshRequestsRefusesWaitsAndCancels(t *testing.T) {
	stack := newStack(t)
	addTenant(t, stack, "acme", "env:LEADSPACE_TOKEN_ACME", true)
	addTenant(t, stack, "quiet", "env:LEADSPACE_TOKEN_ACME", false)
	publish(t, stack, schemas.Control{TenantID: "nomap", IssuedBy: "admin", Connection: &schemas.Connection{TokenRef: "env:LEADSPACE_TOKEN_ACME"}},
		schemas.Control{TenantID: "nomap", IssuedBy: "admin", Consent: &schemas.Consent{Given: true}})

	runRefused(t, stack, 1, "unknown tenant nobody", "refresh", "--tenant", "nobody")
	runRefused(t, stack, 1, "tenant quiet has no consent", "refresh", "--tenant", "quiet")
	runRefused(t, stack, 1, "tenant nomap has no mapping", "refresh", "--tenant", "nomap")
	runRefused(t, stack, 2, "tenant: required", "refresh")
	runRefused(t, stack, 2, "stale-only, force: choose one", "refresh", "--tenant", "acme", "--force", "--stale-only")
	runRefused(t, stack, 2, "leadspace-tps: 0 is outside", "refresh", "--tenant", "acme", "--leadspace-tps", "0")
	runRefused(t, stack, 2, "dry-run, wait", "refresh", "--tenant", "acme", "--dry-run", "--wait")
	runRefused(t, stack, 2, "unexpected argument \"now\"", "refresh", "--tenant", "acme", "now")
	runRefused(t, stack, 1, "no Run of tenant acme is active or pending", "refresh", "cancel", "--tenant", "acme")

	// A request: a signed refresh event with a fresh run id.
	out := runOK(t, stack, "refresh", "--tenant", "acme", "--force")
	ev := latestRefresh(t, stack, "acme")
	if ev == nil || !ev.Refresh.Force || ev.Refresh.Cancel || ev.Signature == "" || !strings.Contains(out, "run "+ev.Refresh.RunID+" requested") {
		t.Fatalf("refresh published %+v; printed:\n%s", ev, out)
	}
	runRefused(t, stack, 1, "Run "+ev.Refresh.RunID+" of tenant acme was requested at", "refresh", "--tenant", "acme")
	runOK(t, stack, "refresh", "cancel", "--tenant", "acme")
	if c := latestRefresh(t, stack, "acme"); !c.Refresh.Cancel || c.Refresh.RunID != ev.Refresh.RunID {
		t.Fatalf("cancel published %+v", c.Refresh)
	}

	// --wait follows the Run to COMPLETED, in plain lines through a pipe.
	stdout, stderr, code := waitWithRunner(t, stack, []string{"refresh", "--tenant", "acme", "--wait"}, func(runID string) []runStep {
		return []runStep{{scope: -1}, {scope: 10, done: 0}, {scope: 10, done: 5}, {scope: 10, done: 10, outcome: schemas.RunCompleted}}
	})
	if code != 0 || strings.Contains(stdout, "\r") || !strings.Contains(stdout, "20 of 20 profiles") || !strings.Contains(stdout, schemas.RunCompleted) {
		t.Fatalf("refresh --wait: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if strings.Contains(line, "%") && !strings.Contains(line, "] ") {
			t.Fatalf("a progress line without a bar: %q", line)
		}
	}

	// An active Run refuses a second one; cancel names it.
	running := writeRun(t, stack, "acme", "run-active-1", runStep{scope: 10, done: 3})
	runRefused(t, stack, 1, "Run "+running+" of tenant acme is still active (6 of 20 profiles", "refresh", "--tenant", "acme")
	runOK(t, stack, "refresh", "cancel", "--tenant", "acme")
	if c := latestRefresh(t, stack, "acme"); !c.Refresh.Cancel || c.Refresh.RunID != running {
		t.Fatalf("cancel published %+v", c.Refresh)
	}
	writeRun(t, stack, "acme", running, runStep{scope: 10, done: 3, outcome: schemas.RunCancelled})

	// STOPPED exits non-zero, and so does a timeout.
	_, stderr, code = waitWithRunner(t, stack, []string{"refresh", "--tenant", "acme", "--wait"}, func(string) []runStep {
		return []runStep{{scope: 10, done: 2}, {scope: 10, done: 4, outcome: "STOPPED: gate.no_consent"}}
	})
	if code != 1 || !strings.Contains(stderr, "ended STOPPED: gate.no_consent after 8 of 20 profiles") {
		t.Fatalf("refresh --wait of a stopped Run: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = waitWithRunner(t, stack, []string{"refresh", "--tenant", "acme", "--wait", "--timeout", "1s"}, nil)
	if code != 1 || !strings.Contains(stderr, "timeout: run ") {
		t.Fatalf("refresh --wait --timeout 1s without a service: exit %d, stderr %q", code, stderr)
	}
}

// latestRefresh is the tenant's latest refresh event on the control topic.
func latestRefresh(t *testing.T, stack *embedded.Stack, tenant string) *schemas.Control {
	t.Helper()
	var ev *schemas.Control
	for _, m := range records(t, stack, stack.Topics.Control) {
		if string(m.Key) != tenant+"/refresh" {
			continue
		}
		c, err := stack.Codec.DecodeControl(context.Background(), m.Value)
		if err != nil {
			t.Fatal(err)
		}
		ev = &c
	}
	return ev
}

type runStep struct {
	scope, done int64
	outcome     string
}

// writeRun writes the tenant's status records of a Run on partitions 0
// and 1, each at step (as the service's instances would).
func writeRun(t *testing.T, stack *embedded.Stack, tenant, runID string, step runStep) string {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var msgs []kafka.Message
	for p := int32(0); p < 2; p++ {
		run := &schemas.RunProgress{RunID: runID, RequestedAt: now.Add(-time.Minute), StartedAt: now.Add(-time.Minute),
			Scope: step.scope, Done: step.done, Called: step.done, RecordsSpent: step.done, Outcome: step.outcome}
		if step.outcome != "" {
			run.FinishedAt = now
		}
		s := schemas.Status{TenantID: tenant, Partition: p, State: schemas.StateActive, UpdatedAt: now, Profiles: max(step.scope, 1), Run: run}
		v, err := stack.Codec.Encode(schemas.EnrichmentStatus, s.Native())
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Topic: stack.Topics.Status, Key: []byte(fmt.Sprintf("%s/%d", tenant, p)), Value: v})
	}
	produce(t, stack, func(ctx context.Context, prod *processor.Producer) error { return prod.Write(ctx, msgs...) })
	return runID
}

// waitWithRunner runs `refresh --wait` and plays the service: once the
// refresh event appears, it writes the Run's steps, each after the command
// printed the one before.
func waitWithRunner(t *testing.T, stack *embedded.Stack, args []string, steps func(runID string) []runStep) (string, string, int) {
	t.Helper()
	prior := latestRefresh(t, stack, "acme")
	cmd := exec.Command(enricherBin, args...)
	cmd.Env = stackEnv(stack, cliEnv())
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	if steps != nil {
		var ev *schemas.Control
		retrytest.Until(t, 30*time.Second, func() (bool, string) {
			ev = latestRefresh(t, stack, "acme")
			return ev != nil && !ev.Refresh.Cancel && (prior == nil || ev.EventID != prior.EventID), "no new refresh event"
		})
		runID := ev.Refresh.RunID
		for _, step := range steps(runID) {
			writeRun(t, stack, "acme", runID, step)
			want := "reading the tenant's current profiles"
			if step.scope >= 0 {
				want = fmt.Sprintf("%d of %d profiles", 2*min(step.done, step.scope), 2*step.scope)
			}
			retrytest.Until(t, 30*time.Second, func() (bool, string) {
				return strings.Contains(out.String(), want), fmt.Sprintf("refresh --wait never printed %q:\n%s", want, out.String())
			})
		}
	}
	select {
	case err := <-exited:
		var exit *exec.ExitError
		code := 0
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	case <-time.After(60 * time.Second):
		t.Fatalf("refresh --wait did not end:\n%s%s", out.String(), errb.String())
	}
	return "", "", -1
}
