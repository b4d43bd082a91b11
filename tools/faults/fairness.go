package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The fairness case (issue 21): 100 small tenants, each on its own
// program, whose profiles were written behind one tenant's 20,000-profile
// backlog on the same partitions; once with that backlog and once without
// it, each on a fresh stack. A small tenant's time to output runs from the
// instance's /readyz to the tenant's last output record; the figure is the
// median over the small tenants, and the goal is at most 1.5 x the median
// without the large tenant.

const (
	fairSmallTenants = 100
	fairPerSmall     = 10
	fairLarge        = 20000
)

func (c *benchConfig) fairnessCase(ctx context.Context) (map[string]any, error) {
	out := map[string]any{"small_tenants": fairSmallTenants, "profiles_per_small_tenant": fairPerSmall, "large_backlog": fairLarge}
	var medians [2]float64
	for i, withLarge := range []bool{true, false} {
		name := "fair-without"
		if withLarge {
			name = "fair-with"
		}
		m, f, err := c.fairnessRun(ctx, name, withLarge)
		if f != nil {
			out[name] = map[string]any{"small_median_s": round1(m), "events": f.Events, "seconds": f.Seconds,
				"cpu_us_per_event": f.CPUMicrosPerEvent, "cpu_us_per_event_from_start": f.CPUMicrosPerEventFromStart,
				"peak_rss_mib": f.PeakRSSMiB, "ready_s": f.ReadySeconds}
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", name, err)
		}
		medians[i] = m
	}
	if medians[1] > 0 {
		out["x_without"] = float64(int64(medians[0]/medians[1]*100+0.5)) / 100
	}
	return out, nil
}

// fairnessRun writes the backlog (the large tenant's first, when asked,
// then the small tenants' interleaved), drains it with one instance and
// returns the small tenants' median time to output in seconds.
func (c *benchConfig) fairnessRun(ctx context.Context, name string, withLarge bool) (float64, *backlogFigures, error) {
	fmt.Fprintf(os.Stderr, "bench[%s]: %d small tenants x %d profiles, large backlog %v\n", name, fairSmallTenants, fairPerSmall, withLarge)
	st, tenants, err := c.benchStack(ctx, name, fairSmallTenants+1)
	defer st.down()
	if err != nil {
		return 0, nil, err
	}
	large, small := tenants[0].id, tenants[1:]
	var smallIDs []string
	for _, t := range small {
		smallIDs = append(smallIDs, t.id)
	}
	wr := newWriter(st.bootstrap)
	defer wr.close()
	events := 0
	if withLarge {
		w, err := buildWorkload(st.codec, workloadSpec{tenants: []string{large}, profiles: fairLarge, seed: c.seed, runID: name + "-large"})
		if err != nil {
			return 0, nil, err
		}
		if err := wr.writePaced(ctx, w.inputs, 0); err != nil {
			return 0, nil, err
		}
		events += len(w.inputs)
	}
	w, err := buildWorkload(st.codec, workloadSpec{tenants: smallIDs, profiles: fairSmallTenants * fairPerSmall, seed: c.seed + 1, runID: name + "-small"})
	if err != nil {
		return 0, nil, err
	}
	if err := wr.writePaced(ctx, w.inputs, 0); err != nil {
		return 0, nil, err
	}
	events += len(w.inputs)
	parts, err := partitionsOf(ctx, st.client, topicProfiles)
	if err != nil {
		return 0, nil, err
	}
	f := &backlogFigures{Case: name, Events: events, Programs: len(tenants), Instances: 1}
	if err := c.drainWith(ctx, st, st.tokenEnvs(tenants), 1, parts, events, map[int]int64{}, f); err != nil {
		return 0, f, err
	}
	ready := st.allInstances()[0].readyAt
	last := map[string]time.Time{}
	outParts, err := partitionsOf(ctx, st.client, topicEnriched)
	if err != nil {
		return 0, f, err
	}
	ends, err := endOffsets(ctx, st.client, topicEnriched, outParts)
	if err != nil {
		return 0, f, err
	}
	for _, p := range outParts {
		recs, err := readPartition(ctx, st.bootstrap, topicEnriched, p, 0, ends[p])
		if err != nil {
			return 0, f, err
		}
		for _, r := range recs {
			tenant, _, _ := strings.Cut(r.key, "/")
			if r.at.After(last[tenant]) {
				last[tenant] = r.at
			}
		}
	}
	var ds []float64
	for _, id := range smallIDs {
		at, ok := last[id]
		if !ok {
			return 0, f, fmt.Errorf("small tenant %s has no output", id)
		}
		ds = append(ds, at.Sub(ready).Seconds())
	}
	sort.Float64s(ds)
	median := ds[len(ds)/2]
	// Where the time went: each small program's first and last call, from
	// the simulator's log (program names follow the tokens: program-N).
	if calls, err := fetchCalls(ctx, st.simURL); err == nil {
		var b strings.Builder
		b.WriteString("time\tprogram\tkind\tstatus\trecords\n")
		first, lastCall := map[string]time.Time{}, map[string]time.Time{}
		for _, cl := range calls {
			fmt.Fprintf(&b, "%.3f\t%s\t%s\t%d\t%d\n", cl.Time.Sub(ready).Seconds(), cl.Program, cl.kind(), cl.Status, len(cl.Records))
			if _, ok := first[cl.Program]; !ok {
				first[cl.Program] = cl.Time
			}
			lastCall[cl.Program] = cl.Time
		}
		_ = os.WriteFile(filepath.Join(st.cfg.workDir, "calls.tsv"), []byte(b.String()), 0o644)
		var fs, ls []float64
		for i := 2; i <= fairSmallTenants+1; i++ {
			prog := fmt.Sprintf("program-%d", i)
			if t, ok := first[prog]; ok {
				fs = append(fs, t.Sub(ready).Seconds())
				ls = append(ls, lastCall[prog].Sub(ready).Seconds())
			}
		}
		if len(fs) > 0 {
			sort.Float64s(fs)
			sort.Float64s(ls)
			fmt.Fprintf(os.Stderr, "bench[%s]: small programs' first call at a median %.2f s, last call %.2f s after /readyz\n", name, fs[len(fs)/2], ls[len(ls)/2])
		}
	}
	fmt.Fprintf(os.Stderr, "bench[%s]: small tenants' median time to output %.2f s (min %.2f, max %.2f); %d events in %.1f s, CPU %.1f us/event, RSS %v MiB\n",
		name, median, ds[0], ds[len(ds)-1], events, f.Seconds, f.CPUMicrosPerEventFromStart, f.PeakRSSMiB)
	return median, f, nil
}
