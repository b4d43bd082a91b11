package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// runKill is issue 9's acceptance for a Run: 3 instances, a tenant whose
// profiles are all enriched, its credits preview (`refresh --dry-run
// --force`), then the forced Run with one instance SIGKILLed and restarted
// twice while it runs. The Run must finish, every profile be done, and the
// records it spends stay within 2% of the preview.
func runKill(ctx context.Context, r *run) error {
	env := r.st.tokenEnvs([]tenantSetup{{id: tenantA, tokenIx: 0, consent: true}})
	if err := r.waitFor(ctx, 10*time.Minute, "the backlog enriched", r.watch.caughtUp); err != nil {
		return err
	}
	out, err := r.st.admin(ctx, "refresh", "--tenant", tenantA, "--dry-run", "--force", "--json")
	if err != nil {
		return fmt.Errorf("refresh --dry-run: %w", err)
	}
	var preview struct {
		Profiles  int `json:"profiles"`
		WouldCall int `json:"would_call"`
		Estimate  struct {
			Records int `json:"records"`
		} `json:"estimate"`
	}
	if err := json.Unmarshal([]byte(out), &preview); err != nil {
		return fmt.Errorf("refresh --dry-run --json: %w: %s", err, firstLine(out))
	}
	before, err := r.st.simRecords(ctx, "program-1")
	if err != nil {
		return err
	}
	if _, err := r.st.admin(ctx, "refresh", "--tenant", tenantA, "--force"); err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	r.note("Run requested: preview %d profiles, %d records", preview.Profiles, preview.Estimate.Records)
	for i, at := range []float64{0.3, 0.6} {
		if err := r.waitFor(ctx, 10*time.Minute, fmt.Sprintf("the Run at %.0f%%", at*100), func() bool {
			v, _ := r.st.runView(ctx, tenantA)
			return v.Scope > 0 && float64(v.Done) >= at*float64(v.Scope)
		}); err != nil {
			return err
		}
		slot := 2 + i%2
		if in := r.slotAlive(slot); in != nil {
			r.kill(in, syscall.SIGKILL)
			in.p.wait(10 * time.Second)
		}
		if _, err := r.st.startInstance(ctx, slot, env, 0); err != nil {
			return err
		}
		r.note("SIGKILL slot %d at %.0f%% of the Run, restarted", slot, at*100)
	}
	var final runView
	if err := r.waitFor(ctx, 10*time.Minute, "the Run to finish", func() bool {
		final, _ = r.st.runView(ctx, tenantA)
		return final.Outcome != ""
	}); err != nil {
		return err
	}
	after, err := r.st.simRecords(ctx, "program-1")
	if err != nil {
		return err
	}
	r.set("run_outcome", final.Outcome)
	r.set("run_scope", final.Scope)
	r.set("run_done", final.Done)
	r.set("run_records_spent", final.RecordsSpent)
	r.set("preview_profiles", preview.Profiles)
	r.set("preview_records", preview.Estimate.Records)
	r.set("records_received", after-before)
	return nil
}

func runKillChecks(r *run, res *results, _ map[string]*scenarioReport) []check {
	get := func(k string) int {
		switch v := res.Extra[k].(type) {
		case int:
			return v
		case int64:
			return int(v)
		case float64:
			return int(v)
		}
		return -1
	}
	outcome, _ := res.Extra["run_outcome"].(string)
	scope, done, preview, received := get("run_scope"), get("run_done"), get("preview_records"), get("records_received")
	limit := float64(preview) * 1.02
	return []check{
		{Name: "the Run finishes", OK: outcome == "COMPLETED", Detail: outcome},
		{Name: "every profile of the Run is done", OK: scope > 0 && done == scope && scope == get("preview_profiles"),
			Detail: fmt.Sprintf("%d of %d (preview: %d profiles)", done, scope, get("preview_profiles"))},
		{Name: "records spent <= 1.02 x the preview", OK: preview > 0 && float64(received) <= limit,
			Detail: fmt.Sprintf("%d records received by Leadspace for a preview of %d (%.3f x); the Run counts %d",
				received, preview, float64(received)/float64(max(preview, 1)), get("run_records_spent"))},
		{Name: "the Run's records spent = what Leadspace received, within 2%", OK: received > 0 &&
			math.Abs(float64(get("run_records_spent")-received)) <= 0.02*float64(received),
			Detail: fmt.Sprintf("the Run counts %d, Leadspace received %d", get("run_records_spent"), received)},
		{Name: "lost = 0", OK: res.Lost == 0, Detail: lostDetail(res)},
		{Name: "no key going backwards", OK: res.Backwards == 0, Detail: fmt.Sprintf("%d keys", res.Backwards)},
	}
}

// waitFor polls cond until it holds.
func (r *run) waitFor(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

// runView is the Run of `enricher status --json`.
type runView struct {
	RunID        string `json:"run_id"`
	Scope        int64  `json:"scope"`
	Done         int64  `json:"done"`
	RecordsSpent int64  `json:"records_spent"`
	Outcome      string `json:"outcome"`
}

func (s *stack) runView(ctx context.Context, tenant string) (runView, error) {
	out, err := s.admin(ctx, "status", "--json", "--tenant", tenant)
	if err != nil {
		return runView{}, err
	}
	var rows []struct {
		Run *runView `json:"run"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].Run == nil {
		return runView{}, fmt.Errorf("status: %v", err)
	}
	return *rows[0].Run, nil
}

// simRecords is what the simulator counts as received for a program.
func (s *stack) simRecords(ctx context.Context, program string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.simURL, "/")+"/__sim/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var stats map[string]struct {
		RecordsReceived int `json:"records_received"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		return 0, err
	}
	return stats[program].RecordsReceived, nil
}
