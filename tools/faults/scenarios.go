package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"syscall"
	"time"
)

// scenarios returns the suite in the order it runs: the baseline first, as
// the outage scenario compares its throughput with it.
func (c *suiteConfig) suiteScenarios() []scenario {
	return []scenario{
		{name: "baseline", title: "no fault: 1 instance, the workload written at a steady rate", instances: 1,
			checks: func(r *run, res *results, _ map[string]*scenarioReport) []check {
				return basicChecks(r, res)
			}},
		{name: "broker-kill", title: fmt.Sprintf("broker kill -9 at t+%s, down %s, restarted on the same ports and data", c.brokerKillAt, c.brokerDown),
			instances: c.brokerInstances, body: brokerKill,
			checks: func(r *run, res *results, _ map[string]*scenarioReport) []check {
				return basicChecks(r, res)
			}},
		{name: "outage", title: fmt.Sprintf("program-1 (tenant A) answers %d for %s from t+%s", c.outageStatus, c.outageFor, c.outageAt),
			instances: 1, body: outage, checks: outageChecks},
		{name: "kill-loop", title: fmt.Sprintf("%d SIGKILLs across 3 instances, one every %s-%s, each restarted", c.kills, c.killMin, c.killMax),
			instances: 3, body: killLoop, checks: killLoopChecks},
		{name: "churn", title: fmt.Sprintf("instances 1 -> 3 -> 1, twice, every %s, SIGTERM", c.churnEvery),
			instances: 1, body: churn, checks: churnChecks},
		{name: "shared-token", title: "3 instances, tenants A and B on one token (one program)", instances: 3,
			tenants: []tenantSetup{{id: tenantA, tokenIx: 0, consent: true}, {id: tenantB, tokenIx: 0, consent: true}, {id: tenantC, tokenIx: 2}},
			checks:  sharedTokenChecks},
		{name: "bulk-withdraw", title: fmt.Sprintf("a %d-event backlog of tenant A in bulk mode; consent withdrawn at %.0f%% of its outputs", c.bulkProfiles, c.withdrawAt*100),
			instances: 1, backlog: true, tenants: []tenantSetup{{id: tenantA, tokenIx: 0, consent: true}},
			body: bulkWithdraw, checks: bulkWithdrawChecks},
		{name: "run-kill", title: fmt.Sprintf("a forced Run of a %d-profile tenant on 3 instances, one SIGKILLed and restarted twice during it", c.bulkProfiles),
			instances: 3, backlog: true, tenants: []tenantSetup{{id: tenantA, tokenIx: 0, consent: true}},
			body: runKill, checks: runKillChecks},
	}
}

// basicChecks: lost 0, no key backwards, nothing of a tenant without consent
// left, no dead letter and no instance that gave up.
func basicChecks(r *run, res *results) []check {
	cs := []check{
		{Name: "lost = 0", OK: res.Lost == 0, Detail: lostDetail(res)},
		{Name: "no key going backwards", OK: res.Backwards == 0, Detail: fmt.Sprintf("%d keys, %d records", res.Backwards, res.BackwardsRecords)},
		{Name: "nothing left for a tenant without consent", OK: res.Leaked == 0, Detail: fmt.Sprintf("%d records", res.Leaked)},
		{Name: "dead letters = 0", OK: res.DeadLetters == 0, Detail: fmt.Sprintf("%d %v", res.DeadLetters, res.DeadLetterReasons)},
		{Name: "no instance exited by itself", OK: unexpectedExits(r.st) == 0, Detail: fmt.Sprintf("%d: %v", unexpectedExits(r.st), res.InstanceExits)},
	}
	return cs
}

func brokerKill(ctx context.Context, r *run) error {
	if err := r.at(ctx, r.cfg.brokerKillAt); err != nil {
		return err
	}
	out, err := r.st.broker(ctx, "kill")
	if err != nil {
		return err
	}
	killed := time.Now()
	r.note("broker: %s", firstLine(out))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.cfg.brokerDown):
	}
	if _, err := r.st.broker(ctx, "restart"); err != nil {
		return err
	}
	r.set("broker_unavailable_s", round1(time.Since(killed).Seconds()))
	r.note("broker restarted and answering, %.1fs after the kill", time.Since(killed).Seconds())
	return nil
}

func outage(ctx context.Context, r *run) error {
	if err := r.at(ctx, r.cfg.outageAt); err != nil {
		return err
	}
	switch r.cfg.outageVia {
	case "sim":
		// The simulator's own fault, once it has a program match and a
		// duration (issue 8): every call of program-1 for for_ms.
		body, _ := json.Marshal(map[string]any{"match": map[string]any{"program": "program-1"}, "status": r.cfg.outageStatus,
			"for_ms": r.cfg.outageFor.Milliseconds(), "count": -1})
		resp, err := http.Post(r.st.simURL+"/__sim/faults", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("POST /__sim/faults: %s", resp.Status)
		}
	default:
		r.st.gate.failFor("program-1", r.cfg.outageStatus, r.cfg.outageFor)
	}
	r.note("program-1 answers %d for %s (via %s)", r.cfg.outageStatus, r.cfg.outageFor, r.cfg.outageVia)
	return r.at(ctx, r.cfg.outageAt+r.cfg.outageFor)
}

func outageChecks(r *run, res *results, all map[string]*scenarioReport) []check {
	cs := basicChecks(r, res)
	from, to := r.cfg.outageAt.Seconds(), (r.cfg.outageAt + r.cfg.outageFor).Seconds()
	got := countIn(r.firstOut[tenantB], from, to)
	var want float64
	basis := "baseline scenario"
	if b := all["baseline"]; b != nil && b.firstOut != nil {
		want = float64(countIn(b.firstOut[tenantB], from, to))
	} else {
		basis = "tenant B's inputs written in the window"
		n := 0
		for _, in := range r.w.inputs {
			if in.tenant == tenantB {
				n++
			}
		}
		want = float64(n) * (to - from) / r.cfg.writeFor.Seconds()
	}
	share := 0.0
	if want > 0 {
		share = float64(got) / want
	}
	res.Extra["tenant_b_outputs_in_outage"] = got
	res.Extra["tenant_b_outputs_reference"] = want
	res.Extra["tenant_b_share"] = round3(share)
	cs = append(cs, check{Name: fmt.Sprintf("other program's tenant keeps >= %.0f%% of its throughput", r.cfg.outageMinShare*100),
		OK: share >= r.cfg.outageMinShare, Detail: fmt.Sprintf("tenant B: %d outputs in t+%.0f..%.0fs vs %.0f in the %s (%.0f%%)", got, from, to, want, basis, share*100)})
	return cs
}

func countIn(ts []float64, from, to float64) int {
	n := 0
	for _, t := range ts {
		if t >= from && t < to {
			n++
		}
	}
	return n
}

func killLoop(ctx context.Context, r *run) error {
	if err := r.at(ctx, r.cfg.killStart); err != nil {
		return err
	}
	for i := 0; i < r.cfg.kills; i++ {
		wait := r.cfg.killMin + time.Duration(r.rng.Int64N(int64(r.cfg.killMax-r.cfg.killMin)+1))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		// Like a supervisor, bring back an instance that exited by itself
		// (e.g. it could not reach the registry at start); counted apart.
		for s := 1; s <= 3; s++ {
			if r.slotAlive(s) == nil {
				r.selfExits++
				if _, err := r.st.startInstance(ctx, s, r.st.tokenEnvs(defaultTenants()), 0); err != nil {
					return err
				}
				r.note("slot %d had exited by itself; restarted", s)
			}
		}
		slot := 1 + r.rng.IntN(3)
		if in := r.slotAlive(slot); in != nil {
			r.kill(in, syscall.SIGKILL)
			if !in.p.wait(10 * time.Second) {
				return fmt.Errorf("%s did not die of SIGKILL", in.p.name)
			}
		} else {
			r.mu.Lock()
			r.kills++
			r.lastKill = time.Now()
			r.mu.Unlock()
		}
		if _, err := r.st.startInstance(ctx, slot, r.st.tokenEnvs(defaultTenants()), 0); err != nil {
			return err
		}
		r.note("kill %d: SIGKILL slot %d, restarted", i+1, slot)
	}
	return nil
}

func killLoopChecks(r *run, res *results, _ map[string]*scenarioReport) []check {
	session := r.st.sessionTimeout()
	cs := []check{
		{Name: "lost = 0", OK: res.Lost == 0, Detail: lostDetail(res)},
		{Name: "no key going backwards", OK: res.Backwards == 0, Detail: fmt.Sprintf("%d keys, %d records", res.Backwards, res.BackwardsRecords)},
		{Name: fmt.Sprintf("extra records <= %.0f%% of needed", r.cfg.maxWastedKill*100), OK: res.WastedRatio <= r.cfg.maxWastedKill,
			Detail: fmt.Sprintf("%d extra of %d needed (%.2f%%), %d re-sent after their answer was published", res.Wasted, res.Needed, res.WastedRatio*100, res.ResentPublished)},
		{Name: fmt.Sprintf("longest stall <= 2 x session timeout (%s)", 2*session), OK: res.Progress.LongestStallS <= (2 * session).Seconds(),
			Detail: fmt.Sprintf("%.1fs from t+%.1fs", res.Progress.LongestStallS, res.Progress.StallFromS)},
		{Name: fmt.Sprintf("every partition owned and advancing <= session timeout + 10s (%s) after the last kill", session+10*time.Second),
			OK:     res.Progress.RecoveredAfterLastKillS >= 0 && res.Progress.RecoveredAfterLastKillS <= (session+10*time.Second).Seconds(),
			Detail: fmt.Sprintf("%.1fs (-1: not within the run)", res.Progress.RecoveredAfterLastKillS)},
		{Name: "nothing left for a tenant without consent", OK: res.Leaked == 0, Detail: fmt.Sprintf("%d records", res.Leaked)},
	}
	res.Extra["session_timeout_s"] = session.Seconds()
	res.Extra["restarted_after_exiting_by_themselves"] = r.selfExits
	return cs
}

func churn(ctx context.Context, r *run) error {
	env := r.st.tokenEnvs(defaultTenants())
	step := r.cfg.churnEvery
	for cycle := 0; cycle < 2; cycle++ {
		if err := r.at(ctx, step*time.Duration(2*cycle+1)); err != nil {
			return err
		}
		for _, slot := range []int{2, 3} {
			// Same slot, same instance id: the previous process must be gone.
			for _, in := range r.st.allInstances() {
				if in.slot == slot {
					in.p.wait(45 * time.Second)
				}
			}
			if _, err := r.st.startInstance(ctx, slot, env, 0); err != nil {
				return err
			}
		}
		r.note("cycle %d: started slots 2 and 3 (3 instances)", cycle+1)
		if err := r.at(ctx, step*time.Duration(2*cycle+2)); err != nil {
			return err
		}
		for _, slot := range []int{2, 3} {
			if in := r.slotAlive(slot); in != nil {
				r.kill(in, syscall.SIGTERM)
			}
		}
		r.note("cycle %d: SIGTERM to slots 2 and 3 (back to 1 instance)", cycle+1)
	}
	return nil
}

func churnChecks(r *run, res *results, _ map[string]*scenarioReport) []check {
	distinct := res.Outputs - res.Duplicates
	dupRatio := 0.0
	if distinct > 0 {
		dupRatio = float64(res.Duplicates) / float64(distinct)
	}
	res.Extra["duplicate_ratio"] = round3(dupRatio)
	return []check{
		{Name: "lost = 0", OK: res.Lost == 0, Detail: lostDetail(res)},
		{Name: "no key going backwards", OK: res.Backwards == 0, Detail: fmt.Sprintf("%d keys, %d records", res.Backwards, res.BackwardsRecords)},
		{Name: fmt.Sprintf("wasted records <= %.0f%%", r.cfg.maxWastedChurn*100), OK: res.WastedRatio <= r.cfg.maxWastedChurn,
			Detail: fmt.Sprintf("%d of %d needed (%.2f%%), %d re-sent after their answer was published", res.Wasted, res.Needed, res.WastedRatio*100, res.ResentPublished)},
		{Name: fmt.Sprintf("duplicate outputs <= %.0f%%", r.cfg.maxDupChurn*100), OK: dupRatio <= r.cfg.maxDupChurn,
			Detail: fmt.Sprintf("%d of %d distinct outputs (%.2f%%)", res.Duplicates, distinct, dupRatio*100)},
		{Name: "dead letters = 0", OK: res.DeadLetters == 0, Detail: fmt.Sprintf("%d %v", res.DeadLetters, res.DeadLetterReasons)},
		{Name: "no instance exited by itself", OK: unexpectedExits(r.st) == 0, Detail: fmt.Sprintf("%v", res.InstanceExits)},
	}
}

func sharedTokenChecks(r *run, res *results, _ map[string]*scenarioReport) []check {
	steadyFrom := r.t0.Add(r.cfg.steadyAfter)
	total, steady := 0, 0
	perSec := map[int64]int{}
	var firstSteady time.Time
	for _, c := range r.calls {
		if c.Program != "program-1" {
			continue
		}
		if c.Status == 429 {
			total++
			if !c.Time.Before(steadyFrom) {
				steady++
				if firstSteady.IsZero() {
					firstSteady = c.Time
				}
			}
		}
		perSec[c.Time.Unix()]++
	}
	over := 0
	for _, n := range perSec {
		if float64(n) > r.cfg.simTPS {
			over++
		}
	}
	res.Extra["status_429_total"] = total
	res.Extra["status_429_steady"] = steady
	res.Extra["seconds_over_tps"] = over
	cs := basicChecks(r, res)
	detail := fmt.Sprintf("%d 429s after t+%s (%d in all); %d seconds with more than %.0f calls; max %d calls in a second",
		steady, r.cfg.steadyAfter, total, over, r.cfg.simTPS, res.Programs["program-1"].maxPerSecond())
	return append(cs, check{Name: "0 429s in steady state", OK: steady == 0, Detail: detail})
}

func (p *programCalls) maxPerSecond() int {
	if p == nil {
		return 0
	}
	return p.MaxPerSecond
}

func bulkWithdraw(ctx context.Context, r *run) error {
	want := int(r.cfg.withdrawAt * float64(r.cfg.bulkProfiles))
	deadline := time.Now().Add(10 * time.Minute)
	for r.watch.outputs(tenantA) < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("tenant A reached only %d of %d outputs in 10 minutes", r.watch.outputs(tenantA), want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	sent := time.Now()
	if _, err := r.st.admin(ctx, "consent", "withdraw", "--tenant", tenantA, "--by", "faults@"+tenantA); err != nil {
		return err
	}
	acked := time.Now()
	r.mu.Lock()
	r.rules[tenantA] = tenantRule{program: "program-1", consent: true, anyStatus: true}
	r.extra["withdraw_sent"] = sent
	r.extra["withdraw_acked"] = acked
	r.mu.Unlock()
	r.note("consent withdrawn for %s at %d outputs; the command took %s", tenantA, r.watch.outputs(tenantA), acked.Sub(sent).Round(time.Millisecond))
	return nil
}

func bulkWithdrawChecks(r *run, res *results, _ map[string]*scenarioReport) []check {
	acked, _ := res.Extra["withdraw_acked"].(time.Time)
	sent, _ := res.Extra["withdraw_sent"].(time.Time)
	var after, recsAfter, between, singlesAfter int
	var lastAfter time.Duration
	for _, c := range r.calls {
		n := 0
		for _, rec := range c.Records {
			if in := r.w.byName[rec.Company.Name]; in != nil && in.tenant == tenantA {
				n++
			}
		}
		if n == 0 || acked.IsZero() {
			continue
		}
		switch {
		case c.Time.After(acked):
			if c.isSubmit() {
				after++
			} else {
				singlesAfter++
			}
			recsAfter += n
			lastAfter = max(lastAfter, c.Time.Sub(acked))
		case c.Time.After(sent):
			between++
		}
	}
	res.Extra["submits_after_ack"] = after
	res.Extra["singles_after_ack"] = singlesAfter
	res.Extra["records_after_ack"] = recsAfter
	res.Extra["submits_while_command_ran"] = between
	res.Extra["last_call_after_ack_ms"] = float64(lastAfter.Microseconds()) / 1000
	res.Extra["withdraw_command_ms"] = acked.Sub(sent).Milliseconds()
	delete(res.Extra, "withdraw_sent")
	delete(res.Extra, "withdraw_acked")
	return []check{
		{Name: "no call carries the tenant's records after the withdrawal returned", OK: after == 0 && singlesAfter == 0,
			Detail: fmt.Sprintf("%d bulk submits and %d single calls with %d records, the last %s after the command returned; %d submits while it ran",
				after, singlesAfter, recsAfter, lastAfter.Round(time.Microsecond), between)},
		{Name: "lost = 0", OK: res.Lost == 0, Detail: lostDetail(res)},
		{Name: "no instance exited by itself", OK: unexpectedExits(r.st) == 0, Detail: fmt.Sprintf("%v", res.InstanceExits)},
	}
}

// firstOutputs: per tenant, seconds from t0 of each distinct output's first record.
func firstOutputs(ctx context.Context, r *run, outputs []record) map[string][]float64 {
	first := map[string]time.Time{}
	tenant := map[string]string{}
	for _, rec := range outputs {
		if rec.value == nil {
			continue
		}
		e, err := r.st.codec.DecodeEnriched(ctx, rec.value)
		if err != nil {
			continue
		}
		if t, ok := first[e.EventID]; !ok || rec.at.Before(t) {
			first[e.EventID], tenant[e.EventID] = rec.at, e.TenantID
		}
	}
	out := map[string][]float64{}
	for id, t := range first {
		out[tenant[id]] = append(out[tenant[id]], t.Sub(r.t0).Seconds())
	}
	for _, v := range out {
		sort.Float64s(v)
	}
	return out
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

func lostDetail(res *results) string {
	return fmt.Sprintf("lost %d (final state %d, events %d); %d of them below the committed offset (never redelivered), %d not committed (stalled)",
		res.Lost, res.LostFinal, res.LostEvents, res.LostCommitted, res.Lost-res.LostCommitted)
}
