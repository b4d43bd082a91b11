package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// benchConfig: every size and duration of `make bench-backlog` (issue 10 §5).
type benchConfig struct {
	repo, binDir, outDir string
	sizes                []int
	cases                map[string]bool
	naiveFor             time.Duration
	trickleRate          float64
	trickleFor           time.Duration
	simTPS               float64
	simLatency           time.Duration
	simJitter            time.Duration
	pollsCount           bool
	minFreeGiB           float64
	simArgs, instArgs    []string
	timeout              time.Duration
	stagger              time.Duration
	seed                 uint64
	manyTenants          int
}

// backlogFigures is one backlog case's outcome.
type backlogFigures struct {
	Case      string  `json:"case"`
	Events    int     `json:"events"`
	Programs  int     `json:"programs"`
	Instances int     `json:"instances"`
	Seconds   float64 `json:"seconds"` // first instance ready -> last output record
	EventsPS  float64 `json:"events_per_s"`
	// FromStartEventsPS: from the first process start (includes loading).
	FromStartEventsPS float64 `json:"events_per_s_from_start"`
	Outputs           int64   `json:"outputs"`
	Calls             int     `json:"calls"`
	Singles           int     `json:"singles"`
	Submits           int     `json:"bulk_submits"`
	Polls             int     `json:"polls"`
	RecordsPerBulk    float64 `json:"records_per_bulk"`
	PollsPerBulk      float64 `json:"polls_per_bulk"`
	Status429         int     `json:"status_429"`
	Received          int     `json:"records_received"`
	PeakRSSMiB        []int   `json:"peak_rss_mib"` // VmHWM of each enricher process
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event"`
	// CPUMicrosPerEventFromStart: all the instances' CPU from process
	// start to the end of the drain (loading included), per event.
	CPUMicrosPerEventFromStart float64   `json:"cpu_us_per_event_from_start"`
	ReadySeconds               []float64 `json:"ready_s"` // process start -> /readyz 200
	Ceiling                    float64   `json:"ceiling_events_per_s"`
	OfCeiling                  float64   `json:"share_of_ceiling"`
	VsNaive                    float64   `json:"x_naive"`
	Note                       string    `json:"note,omitempty"`
}

type benchReport struct {
	Started  time.Time         `json:"started"`
	Machine  string            `json:"machine"`
	EndLoad  string            `json:"end_load"`
	Config   map[string]any    `json:"config"`
	Naive    map[string]any    `json:"naive,omitempty"`
	Backlogs []*backlogFigures `json:"backlogs"`
	Restart  map[string]any    `json:"restart_and_replay,omitempty"`
	Trickle  map[string]any    `json:"trickle,omitempty"`
	Fairness map[string]any    `json:"fairness,omitempty"`
	Many     map[string]any    `json:"many_tenants,omitempty"`
	Errors   []string          `json:"errors,omitempty"`
}

func benchMain(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("faults bench", flag.ContinueOnError)
	c := &benchConfig{}
	var sizes, cases string
	var simArgs, instArgs listFlag
	fs.StringVar(&c.repo, "repo", ".", "repository root")
	fs.StringVar(&c.binDir, "bin", ".build/bin", "folder with the enricher and leadspace-sim binaries")
	fs.StringVar(&c.outDir, "out", ".build/bench", "folder for logs and bench.json")
	fs.StringVar(&sizes, "sizes", "100000,1000000", "backlog sizes: the first runs every case, the largest adds the restart and the replay")
	fs.StringVar(&cases, "cases", "naive,1p1i,2p1i,4p1i,1p2i,fair,large,trickle", "cases to run (4p1i: 4 programs; fair: 100 small tenants behind a large backlog, and without it; many: --many-tenants tenants: start-up and status)")
	fs.DurationVar(&c.naiveFor, "naive-for", 60*time.Second, "how long the naive loop runs (its rate is measured, not its drain)")
	fs.Float64Var(&c.trickleRate, "trickle-rate", 20, "trickle: events per second")
	fs.DurationVar(&c.trickleFor, "trickle-for", 60*time.Second, "trickle: how long")
	fs.Float64Var(&c.simTPS, "sim-tps", 30, "simulator: transactions per second per program")
	fs.DurationVar(&c.simLatency, "sim-latency", 120*time.Millisecond, "simulator: latency of a single call")
	fs.DurationVar(&c.simJitter, "sim-jitter", 80*time.Millisecond, "simulator: latency jitter (+/-)")
	fs.BoolVar(&c.pollsCount, "polls-count", true, "polls cost a transaction (the simulator's default): ceiling = TPS x 500 / (1 + polls per bulk); false: TPS x 500")
	fs.Float64Var(&c.minFreeGiB, "min-free-gib", 8, "refuse to write the largest backlog with less free disk than this")
	fs.DurationVar(&c.timeout, "case-timeout", 45*time.Minute, "give up on a backlog that has not drained in this time")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the profiles")
	fs.IntVar(&c.manyTenants, "many-tenants", 500, "the many case: tenants, each with its own token and one profile")
	fs.DurationVar(&c.stagger, "stagger", 0, "start each further instance this much after the one before (0: all at once); a late one joins a group at work, and partitions move to it")
	fs.Var(&simArgs, "sim-arg", "extra argument for leadspace-sim (repeatable)")
	fs.Var(&instArgs, "instance-arg", "extra argument for every `enricher run` (repeatable; the benchmark is meant for the shipped defaults)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c.simArgs, c.instArgs = simArgs, instArgs
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "faults bench: bad size %q\n", s)
			return 2
		}
		c.sizes = append(c.sizes, n)
	}
	sort.Ints(c.sizes)
	c.cases = map[string]bool{}
	for _, s := range strings.Split(cases, ",") {
		c.cases[strings.TrimSpace(s)] = true
	}
	c.repo, _ = filepath.Abs(c.repo)
	for _, p := range []*string{&c.binDir, &c.outDir} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(c.repo, *p)
		}
	}
	_ = os.MkdirAll(c.outDir, 0o755)
	rep := &benchReport{Started: time.Now(), Machine: machineNote(), Config: map[string]any{"sizes": c.sizes, "sim_tps": c.simTPS,
		"sim_latency": c.simLatency.String(), "sim_jitter": c.simJitter.String(), "polls_count": c.pollsCount, "naive_for": c.naiveFor.String(),
		"trickle_rate": c.trickleRate, "trickle_for": c.trickleFor.String(), "stagger": c.stagger.String(), "enricher_flags": "only --brokers, --schema-registry-url, --leadspace-url, --http-addr 127.0.0.1:0"}}
	fmt.Printf("backlog benchmark %s on %s\n\n", rep.Started.Format(time.RFC3339), rep.Machine)
	small := c.sizes[0]
	var naivePS float64
	note := func(err error) {
		if err != nil {
			fmt.Fprintf(os.Stderr, "faults bench: %v\n", err)
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	if c.cases["1p1i"] || c.cases["naive"] || c.cases["trickle"] {
		f, err := c.backlogCase(ctx, rep, "1p1i", small, 1, 1, &naivePS)
		note(err)
		if f != nil {
			rep.Backlogs = append(rep.Backlogs, f)
		}
	}
	for _, cs := range []struct {
		name          string
		programs, ins int
	}{{"2p1i", 2, 1}, {"4p1i", 4, 1}, {"1p2i", 1, 2}} {
		if c.cases[cs.name] && ctx.Err() == nil {
			f, err := c.backlogCase(ctx, rep, cs.name, small, cs.programs, cs.ins, nil)
			note(err)
			if f != nil {
				rep.Backlogs = append(rep.Backlogs, f)
			}
		}
	}
	if c.cases["fair"] && ctx.Err() == nil {
		fr, err := c.fairnessCase(ctx)
		note(err)
		rep.Fairness = fr
	}
	if c.cases["many"] && ctx.Err() == nil {
		m, err := c.manyTenantsCase(ctx)
		note(err)
		rep.Many = m
	}
	if c.cases["large"] && ctx.Err() == nil {
		large := c.sizes[len(c.sizes)-1]
		f, err := c.backlogCase(ctx, rep, "large", large, 1, 1, nil)
		note(err)
		if f != nil {
			rep.Backlogs = append(rep.Backlogs, f)
		}
	}
	for _, f := range rep.Backlogs {
		if naivePS > 0 {
			f.VsNaive = round1(f.EventsPS / naivePS)
		}
	}
	rep.EndLoad = loadavg()
	printBench(rep)
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(c.outDir, "bench.json"), b, 0o644)
		fmt.Printf("report: %s\n", filepath.Join(c.outDir, "bench.json"))
	}
	if ctx.Err() != nil {
		return 130
	}
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}

// benchStack is a fresh broker, registry and simulator with one program per
// tenant, tenants connected with consent.
func (c *benchConfig) benchStack(ctx context.Context, name string, programs int) (*stack, []tenantSetup, error) {
	var tokens []string
	var tenants []tenantSetup
	for i := 0; i < programs; i++ {
		tokens = append(tokens, fmt.Sprintf("tok-bench-%d", i+1))
		tenants = append(tenants, tenantSetup{id: fmt.Sprintf("bench-%d", i+1), tokenIx: i, consent: true})
	}
	workDir := filepath.Join(c.outDir, name)
	_ = os.RemoveAll(workDir)
	st := &stack{ps: &procs{}, cfg: stackConfig{repo: c.repo, binDir: c.binDir, workDir: workDir, partitions: 6,
		simTPS: c.simTPS, simLatency: c.simLatency, simJitter: c.simJitter, tokens: tokens, group: "leadspace-enricher",
		simArgs: c.simArgs, instanceArgs: c.instArgs}}
	if err := st.up(ctx); err != nil {
		return st, nil, err
	}
	if err := warmGroupCoordinator(ctx, st.client, st.cfg.group); err != nil {
		return st, nil, err
	}
	return st, tenants, st.setupTenants(ctx, tenants)
}

// warmGroupCoordinator waits until the broker's group coordinator answers
// for group. On a fresh broker the first group creates __consumer_offsets
// and its coordinator loads it: 0.1 to 0.2 s that the first instance's
// join would pay, and a case run after the naive loop (whose group had
// done it) would not. Production brokers did it long ago.
func warmGroupCoordinator(ctx context.Context, client *kafka.Client, group string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: group, KeyType: kafka.CoordinatorKeyTypeConsumer})
		if err == nil && res.Error == nil {
			d, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
			if err == nil && len(d.Groups) == 1 && (d.Groups[0].Error == nil || errors.Is(d.Groups[0].Error, kafka.GroupIdNotFound)) {
				return nil // the coordinator answers for the group (which does not exist yet)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the group coordinator of %s did not answer in 30 s", group)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// backlogCase writes a backlog of size events over the programs' tenants,
// then starts the instances and times the drain. The 1p1i case also runs the
// naive loop (before the service) and the trickle (after it); the large case
// adds the restart and the replay.
func (c *benchConfig) backlogCase(ctx context.Context, rep *benchReport, name string, size, programs, instances int, naivePS *float64) (*backlogFigures, error) {
	fmt.Fprintf(os.Stderr, "bench[%s]: %d events, %d program(s), %d instance(s)\n", name, size, programs, instances)
	st, tenants, err := c.benchStack(ctx, name, programs)
	defer st.down()
	if err != nil {
		return nil, err
	}
	if name == "large" {
		if err := checkDisk(filepath.Join(c.repo, ".build"), c.minFreeGiB); err != nil {
			return nil, err
		}
	}
	var ids []string
	for _, t := range tenants {
		ids = append(ids, t.id)
	}
	t := time.Now()
	w, err := buildWorkload(st.codec, workloadSpec{tenants: ids, profiles: size, seed: c.seed, runID: name, blankEvery: 40})
	if err != nil {
		return nil, err
	}
	wr := newWriter(st.bootstrap)
	defer wr.close()
	if err := wr.writePaced(ctx, w.inputs, 0); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench[%s]: backlog of %d written in %s\n", name, size, time.Since(t).Round(time.Millisecond))
	parts, err := partitionsOf(ctx, st.client, topicProfiles)
	if err != nil {
		return nil, err
	}
	env := st.tokenEnvs(tenants)

	if naivePS != nil && c.cases["naive"] {
		n, d, n429, err := naiveLoop(ctx, st, c.naiveFor)
		if err != nil {
			return nil, fmt.Errorf("naive loop: %w", err)
		}
		*naivePS = float64(n) / d.Seconds()
		rep.Naive = map[string]any{"events": n, "seconds": round1(d.Seconds()), "events_per_s": round1(*naivePS), "status_429": n429,
			"loop": "kafka-go Reader (group), fetch one, decode, Leadspace single call, encode, produce (acks=all, batch of 1), commit"}
		fmt.Fprintf(os.Stderr, "bench[naive]: %d events in %s: %.1f events/s\n", n, d.Round(time.Millisecond), *naivePS)
		if err := resetSim(ctx, st.simURL); err != nil {
			return nil, err
		}
	}

	f := &backlogFigures{Case: fmt.Sprintf("%s %d", name, size), Events: size, Programs: programs, Instances: instances}
	ends0 := map[int]int64{}
	if err := c.drainWith(ctx, st, env, instances, parts, size, ends0, f); err != nil {
		return f, err
	}
	calls, err := fetchCalls(ctx, st.simURL)
	if err != nil {
		return f, err
	}
	c.callFigures(calls, f)
	writeCallLog(filepath.Join(st.cfg.workDir, "calls.tsv"), calls)
	fmt.Fprintf(os.Stderr, "bench[%s]: %.0f events/s, %.1f records/bulk, %.2f polls/bulk, %d x 429, RSS %v MiB\n",
		name, f.EventsPS, f.RecordsPerBulk, f.PollsPerBulk, f.Status429, f.PeakRSSMiB)

	if name == "1p1i" && c.cases["trickle"] && ctx.Err() == nil {
		tr, err := c.trickle(ctx, st, tenants[0].id, parts)
		if err != nil {
			return f, fmt.Errorf("trickle: %w", err)
		}
		rep.Trickle = tr
	}
	if name == "large" && ctx.Err() == nil {
		rr, err := c.restartAndReplay(ctx, st, env, w, parts)
		rep.Restart = rr
		if err != nil {
			return f, fmt.Errorf("restart and replay: %w", err)
		}
	}
	return f, nil
}

// drainWith starts the instances and waits until the group has committed
// every input partition to its end; it fills the timing, RSS and CPU.
func (c *benchConfig) drainWith(ctx context.Context, st *stack, env []string, instances int, parts []int, events int, ends0 map[int]int64, f *backlogFigures) error {
	type started struct {
		in  *instance
		err error
	}
	ch := make(chan started, instances)
	t0 := time.Now()
	for i := 1; i <= instances; i++ {
		go func() {
			select { // time.After: at most a few, and the case ends long after
			case <-time.After(time.Duration(i-1) * c.stagger):
			case <-ctx.Done():
			}
			in, err := st.startInstance(ctx, i, env, 5*time.Minute)
			ch <- started{in, err}
		}()
	}
	var ins []*instance
	for i := 0; i < instances; i++ {
		s := <-ch
		if s.err != nil {
			return s.err
		}
		ins = append(ins, s.in)
	}
	ready := ins[0].readyAt
	for _, in := range ins {
		f.ReadySeconds = append(f.ReadySeconds, round1(in.readyAt.Sub(in.p.started).Seconds()))
		if in.readyAt.Before(ready) {
			ready = in.readyAt
		}
	}
	cpu0 := 0.0
	for _, in := range ins {
		cpu0 += cpuSeconds(in.p.pid())
	}
	if err := waitCaughtUp(ctx, st, parts, c.timeout, ins); err != nil {
		return err
	}
	doneAt := time.Now()
	cpu1 := 0.0
	for _, in := range ins {
		cpu1 += cpuSeconds(in.p.pid())
		f.PeakRSSMiB = append(f.PeakRSSMiB, peakRSSMiB(in.p.pid()))
	}
	f.CPUMicrosPerEventFromStart = round1(cpu1 * 1e6 / float64(events))
	last, outputs, err := lastOutput(ctx, st, ends0)
	if err != nil {
		return err
	}
	if last.IsZero() || last.Before(ready) {
		last = doneAt
	}
	f.Outputs = outputs
	f.Seconds = round1(last.Sub(ready).Seconds())
	f.EventsPS = round1(float64(events) / last.Sub(ready).Seconds())
	f.FromStartEventsPS = round1(float64(events) / last.Sub(t0).Seconds())
	f.CPUMicrosPerEvent = round1((cpu1 - cpu0) * 1e6 / float64(events))
	return nil
}

// writeCallLog keeps a case's calls, one line each (time, kind, status,
// records), for a look at where its transactions went; best effort.
func writeCallLog(path string, calls []simCall) {
	var b strings.Builder
	b.WriteString("time\tkind\tstatus\trecords\n")
	for _, cl := range calls {
		fmt.Fprintf(&b, "%s\t%s\t%d\t%d\n", cl.Time.Format("15:04:05.000"), cl.kind(), cl.Status, len(cl.Records))
	}
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
}

// callFigures fills the Leadspace figures from the simulator's log.
func (c *benchConfig) callFigures(calls []simCall, f *backlogFigures) {
	for _, cl := range calls {
		if cl.Program == "" {
			continue
		}
		f.Calls++
		switch {
		case cl.isSingle():
			f.Singles++
		case cl.isSubmit():
			f.Submits++
		case cl.isPoll():
			f.Polls++
		}
		if cl.Status == 429 {
			f.Status429++
		}
		f.Received += cl.received()
	}
	if f.Submits > 0 {
		f.RecordsPerBulk = round1(float64(f.Received-f.Singles) / float64(f.Submits))
		f.PollsPerBulk = round3(float64(f.Polls) / float64(f.Submits))
	}
	perTx := 500.0
	if c.pollsCount {
		perTx = 500 / (1 + f.PollsPerBulk)
	}
	f.Ceiling = round1(float64(f.Programs) * c.simTPS * perTx)
	if f.Ceiling > 0 {
		f.OfCeiling = round3(f.EventsPS / f.Ceiling)
	}
}

// waitCaughtUp polls the group's committed offsets until they reach the end
// of every input partition.
func waitCaughtUp(ctx context.Context, st *stack, parts []int, timeout time.Duration, ins []*instance) error {
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		committed, err1 := committedOffsets(cctx, st.client, st.cfg.group, topicProfiles, parts)
		ends, err2 := endOffsets(cctx, st.client, topicProfiles, parts)
		cancel()
		if err1 == nil && err2 == nil {
			done := true
			for _, p := range parts {
				if committed[p] < ends[p] {
					done = false
				}
			}
			if done {
				return nil
			}
		}
		for _, in := range ins {
			if !in.p.alive() {
				return fmt.Errorf("%s exited (%s) before the backlog drained; log %s", in.p.name, in.p.exitText(), in.p.logPath)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("backlog not drained in %s (committed %v of %v)", timeout, committed, ends)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// lastOutput returns the latest record time on enriched-company past the
// given start offsets, and how many records lie past them.
func lastOutput(ctx context.Context, st *stack, from map[int]int64) (time.Time, int64, error) {
	parts, err := partitionsOf(ctx, st.client, topicEnriched)
	if err != nil {
		return time.Time{}, 0, err
	}
	ends, err := endOffsets(ctx, st.client, topicEnriched, parts)
	if err != nil {
		return time.Time{}, 0, err
	}
	var last time.Time
	var n int64
	for _, p := range parts {
		if ends[p] <= from[p] {
			continue
		}
		n += ends[p] - from[p]
		recs, err := readPartition(ctx, st.bootstrap, topicEnriched, p, ends[p]-1, ends[p])
		if err != nil {
			return last, n, err
		}
		for _, r := range recs {
			if r.at.After(last) {
				last = r.at
			}
		}
	}
	return last, n, nil
}

// restartAndReplay: stop the instance that drained the large backlog, write
// a few new profiles (probes) and then the same profiles again (a replay:
// unchanged, so no call and no new output is expected), start a fresh
// instance and time process start -> /readyz 200, -> the first output, and
// the replay's drain.
func (c *benchConfig) restartAndReplay(ctx context.Context, st *stack, env []string, w *workload, parts []int) (map[string]any, error) {
	out := map[string]any{}
	for _, in := range st.alive() {
		in.p.stop(60 * time.Second)
	}
	if err := resetSim(ctx, st.simURL); err != nil {
		return out, err
	}
	outParts, err := partitionsOf(ctx, st.client, topicEnriched)
	if err != nil {
		return out, err
	}
	before, err := endOffsets(ctx, st.client, topicEnriched, outParts)
	if err != nil {
		return out, err
	}
	var tenantIDs []string
	seen := map[string]bool{}
	for _, in := range w.inputs {
		if !seen[in.tenant] {
			seen[in.tenant] = true
			tenantIDs = append(tenantIDs, in.tenant)
		}
	}
	probes, err := buildWorkload(st.codec, workloadSpec{tenants: tenantIDs, profiles: 24, seed: c.seed + 1, runID: "probe", startAt: len(w.inputs) + 1})
	if err != nil {
		return out, err
	}
	replay, err := replayOf(st.codec, w, "replay")
	if err != nil {
		return out, err
	}
	if err := checkDisk(filepath.Join(c.repo, ".build"), c.minFreeGiB/2); err != nil {
		return out, err
	}
	wr := newWriter(st.bootstrap)
	defer wr.close()
	if err := wr.writePaced(ctx, probes.inputs, 0); err != nil {
		return out, err
	}
	t := time.Now()
	if err := wr.writePaced(ctx, replay.inputs, 0); err != nil {
		return out, err
	}
	fmt.Fprintf(os.Stderr, "bench[replay]: %d unchanged profiles written again in %s\n", len(replay.inputs), time.Since(t).Round(time.Millisecond))
	f := &backlogFigures{Case: fmt.Sprintf("replay %d", len(replay.inputs)), Programs: len(tenantIDs), Instances: 1}
	if err := c.drainWith(ctx, st, env, 1, parts, len(replay.inputs)+len(probes.inputs), before, f); err != nil {
		return out, err
	}
	in := st.alive()[0]
	first, err := firstOutputAfter(ctx, st, before)
	if err != nil {
		return out, err
	}
	calls, err := fetchCalls(ctx, st.simURL)
	if err != nil {
		return out, err
	}
	c.callFigures(calls, f)
	probeNeeded := 0
	for _, p := range probes.inputs {
		if p.name != "" {
			probeNeeded++
		}
	}
	out["replay_events"] = len(replay.inputs)
	out["replay_events_per_s"] = f.EventsPS
	out["replay_seconds"] = f.Seconds
	out["records_received"] = f.Received
	out["records_expected_for_probes"] = probeNeeded
	out["new_outputs"] = f.Outputs - int64(len(probes.inputs))
	out["probe_outputs_expected"] = len(probes.inputs)
	out["ready_s"] = f.ReadySeconds
	if !first.IsZero() {
		out["first_output_s"] = round1(first.Sub(in.p.started).Seconds())
	}
	out["peak_rss_mib"] = f.PeakRSSMiB
	out["cpu_us_per_event"] = f.CPUMicrosPerEvent
	out["status_429"] = f.Status429
	return out, nil
}

// firstOutputAfter is the earliest record time on enriched-company past from.
func firstOutputAfter(ctx context.Context, st *stack, from map[int]int64) (time.Time, error) {
	parts, err := partitionsOf(ctx, st.client, topicEnriched)
	if err != nil {
		return time.Time{}, err
	}
	ends, err := endOffsets(ctx, st.client, topicEnriched, parts)
	if err != nil {
		return time.Time{}, err
	}
	var first time.Time
	for _, p := range parts {
		if ends[p] <= from[p] {
			continue
		}
		recs, err := readPartition(ctx, st.bootstrap, topicEnriched, p, from[p], from[p]+1)
		if err != nil {
			return first, err
		}
		if len(recs) > 0 && (first.IsZero() || recs[0].at.Before(first)) {
			first = recs[0].at
		}
	}
	return first, nil
}

// trickle writes new profiles at a low rate to a caught-up instance and
// measures input record time -> output record time per event.
func (c *benchConfig) trickle(ctx context.Context, st *stack, tenant string, parts []int) (map[string]any, error) {
	n := int(c.trickleRate * c.trickleFor.Seconds())
	w, err := buildWorkload(st.codec, workloadSpec{tenants: []string{tenant}, profiles: n, seed: c.seed + 2, runID: "trickle", startAt: 10_000_000})
	if err != nil {
		return nil, err
	}
	inBefore, err := endOffsets(ctx, st.client, topicProfiles, parts)
	if err != nil {
		return nil, err
	}
	outParts, _ := partitionsOf(ctx, st.client, topicEnriched)
	outBefore, err := endOffsets(ctx, st.client, topicEnriched, outParts)
	if err != nil {
		return nil, err
	}
	wr := newWriter(st.bootstrap)
	defer wr.close()
	// One event per write, evenly spaced.
	start := time.Now()
	for i, in := range w.inputs {
		at := start.Add(time.Duration(float64(i) / c.trickleRate * float64(time.Second)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Until(at)):
		}
		if err := wr.write(ctx, []*input{in}); err != nil {
			return nil, err
		}
	}
	if err := waitCaughtUp(ctx, st, parts, 5*time.Minute, st.alive()); err != nil {
		return nil, err
	}
	inAt := map[string]time.Time{}
	for _, p := range parts {
		ends, _ := endOffsets(ctx, st.client, topicProfiles, []int{p})
		if ends[p] <= inBefore[p] {
			continue
		}
		recs, err := readPartition(ctx, st.bootstrap, topicProfiles, p, inBefore[p], ends[p])
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			pr, err := st.codec.DecodeProfile(ctx, r.value)
			if err == nil {
				inAt[pr.EventID] = r.at
			}
		}
	}
	var lat []float64
	for _, p := range outParts {
		ends, _ := endOffsets(ctx, st.client, topicEnriched, []int{p})
		if ends[p] <= outBefore[p] {
			continue
		}
		recs, err := readPartition(ctx, st.bootstrap, topicEnriched, p, outBefore[p], ends[p])
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			e, err := st.codec.DecodeEnriched(ctx, r.value)
			if err != nil || e.Status == "SKIPPED" {
				continue
			}
			if t, ok := inAt[e.Lineage.SourceEventID]; ok {
				lat = append(lat, float64(r.at.Sub(t).Microseconds())/1000)
			}
		}
	}
	sort.Float64s(lat)
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return -1
		}
		return round1(lat[min(len(lat)-1, int(q*float64(len(lat))))])
	}
	return map[string]any{"events": n, "rate_per_s": c.trickleRate, "measured": len(lat), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
		"max_ms": pct(1), "sim_latency": fmt.Sprintf("%s +/- %s", c.simLatency, c.simJitter),
		"p99_over_sim_latency_ms": round1(pct(0.99) - float64(c.simLatency.Milliseconds())),
		"note":                    "input record time (set by the harness's producer) -> output record time (set by the enricher's producer); ENRICHED and NOT_MATCHED only"}, nil
}

// checkDisk refuses to go on with less than minGiB free where the broker writes.
func checkDisk(dir string, minGiB float64) error {
	_ = os.MkdirAll(dir, 0o755)
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return err
	}
	free := float64(s.Bavail) * float64(s.Bsize) / (1 << 30)
	if free < minGiB {
		return fmt.Errorf("only %.1f GiB free under %s; the large backlog needs %.0f GiB (--min-free-gib)", free, dir, minGiB)
	}
	fmt.Fprintf(os.Stderr, "bench: %.1f GiB free under %s\n", free, dir)
	return nil
}

// cpuSeconds is the user+system CPU time of a process so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	stt, _ := strconv.ParseFloat(f[12], 64)
	return (ut + stt) / 100 // USER_HZ is 100 on Linux
}

// peakRSSMiB is a process's VmHWM.
func peakRSSMiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int
			fmt.Sscanf(strings.TrimPrefix(line, "VmHWM:"), "%d", &kb)
			return kb / 1024
		}
	}
	return -1
}

func printBench(rep *benchReport) {
	fmt.Printf("\n=== backlog benchmark (%s; load at the end %s)\n", rep.Machine, rep.EndLoad)
	if rep.Naive != nil {
		fmt.Printf("naive loop: %v events in %vs = %v events/s (%v x 429)\n", rep.Naive["events"], rep.Naive["seconds"], rep.Naive["events_per_s"], rep.Naive["status_429"])
	}
	fmt.Printf("%-14s %9s %8s %9s %8s %6s %5s %12s %8s %8s %8s %8s %7s %9s\n", "case", "events", "events/s", "rec/bulk", "polls/bk", "429s", "calls", "peak RSS MiB", "cpu us/e", "cpu all", "ready s", "x naive", "ceiling", "of ceil.")
	for _, f := range rep.Backlogs {
		fmt.Printf("%-14s %9d %8.0f %9.1f %8.2f %6d %5d %12v %8.1f %8.1f %8v %8.1f %7.0f %8.0f%%\n", f.Case, f.Events, f.EventsPS, f.RecordsPerBulk, f.PollsPerBulk,
			f.Status429, f.Calls, f.PeakRSSMiB, f.CPUMicrosPerEvent, f.CPUMicrosPerEventFromStart, f.ReadySeconds, f.VsNaive, f.Ceiling, f.OfCeiling*100)
	}
	if rep.Fairness != nil {
		fmt.Printf("fairness: %v\n", rep.Fairness)
	}
	if rep.Many != nil {
		fmt.Printf("many tenants: %v\n", rep.Many)
	}
	if rep.Restart != nil {
		fmt.Printf("restart + replay: %v\n", rep.Restart)
	}
	if rep.Trickle != nil {
		fmt.Printf("trickle: %v\n", rep.Trickle)
	}
	for _, e := range rep.Errors {
		fmt.Printf("error: %s\n", e)
	}
}
