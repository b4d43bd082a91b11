package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// The many-tenants case (issue 21): --many-tenants tenants (500), each
// connected with its own token (its own program), one profile each. It
// times the instance from process start to /readyz 200, its drain, and
// `enricher status` over every tenant once the status records are out; it
// reports the instance's RSS once idle (the control plane with every
// tenant's program, besides the tables) and its peak.
func (c *benchConfig) manyTenantsCase(ctx context.Context) (map[string]any, error) {
	n := c.manyTenants
	fmt.Fprintf(os.Stderr, "bench[many]: %d tenants, each its own token\n", n)
	out := map[string]any{"tenants": n}
	t0 := time.Now()
	st, tenants, err := c.benchStack(ctx, "many", n)
	defer st.down()
	if err != nil {
		return out, err
	}
	out["setup_s"] = round1(time.Since(t0).Seconds())
	var ids []string
	for _, t := range tenants {
		ids = append(ids, t.id)
	}
	w, err := buildWorkload(st.codec, workloadSpec{tenants: ids, profiles: n, seed: c.seed, runID: "many"})
	if err != nil {
		return out, err
	}
	wr := newWriter(st.bootstrap)
	defer wr.close()
	if err := wr.writePaced(ctx, w.inputs, 0); err != nil {
		return out, err
	}
	parts, err := partitionsOf(ctx, st.client, topicProfiles)
	if err != nil {
		return out, err
	}
	f := &backlogFigures{Case: "many", Events: n, Programs: n, Instances: 1}
	if err := c.drainWith(ctx, st, st.tokenEnvs(tenants), 1, parts, n, map[int]int64{}, f); err != nil {
		return out, err
	}
	out["ready_s"] = f.ReadySeconds
	out["drain_s"] = f.Seconds
	out["peak_rss_mib"] = f.PeakRSSMiB
	// Every tenant's status record is out within a status interval or two.
	var took time.Duration
	rows := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		start := time.Now()
		text, err := st.admin(ctx, "status")
		took = time.Since(start)
		if err != nil {
			return out, err
		}
		// Counted from the JSON form, timed in the table form above.
		js, err := st.admin(ctx, "status", "--json")
		if err != nil {
			return out, err
		}
		var views []struct {
			TenantID string `json:"tenant_id"`
			Profiles int64  `json:"profiles"`
		}
		if i, j := strings.IndexByte(js, '['), strings.LastIndexByte(js, ']'); i >= 0 && j > i {
			js = js[i : j+1] // warnings on stderr come with the output
		}
		if err := json.Unmarshal([]byte(js), &views); err != nil {
			return out, fmt.Errorf("status --json: %w", err)
		}
		rows = 0
		for _, v := range views {
			if strings.HasPrefix(v.TenantID, "bench-") && v.Profiles >= 1 {
				rows++
			}
		}
		out["status_lines"] = strings.Count(text, "\n")
		if rows >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	out["status_s"] = round2f(took.Seconds())
	out["status_rows_enriched"] = rows
	in := st.allInstances()[0]
	out["idle_rss_mib"] = rssMiB(in.p.pid())
	fmt.Fprintf(os.Stderr, "bench[many]: ready %v s, drain %.1f s, status %.2f s (%d of %d tenants with their profile), RSS idle %v MiB, peak %v MiB\n",
		f.ReadySeconds, f.Seconds, took.Seconds(), rows, n, out["idle_rss_mib"], f.PeakRSSMiB)
	return out, nil
}

func round2f(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// rssMiB is a process's current VmRSS.
func rssMiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb int
			fmt.Sscanf(strings.TrimPrefix(line, "VmRSS:"), "%d", &kb)
			return kb / 1024
		}
	}
	return -1
}
