package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// suiteConfig holds every size and duration of the fault suite; each is a
// flag (main.go) with the workload as its default.
type suiteConfig struct {
	repo, binDir, outDir string
	reportOnly           bool
	seed                 uint64

	profiles, updates, partitions int
	writeFor, drainTimeout        time.Duration
	simTPS                        float64
	simLatency, simJitter         time.Duration
	bucket                        time.Duration

	brokerKillAt, brokerDown time.Duration
	brokerInstances          int

	outageAt, outageFor time.Duration
	outageStatus        int
	outageVia           string
	outageMinShare      float64

	kills            int
	killMin, killMax time.Duration
	killStart        time.Duration

	churnEvery time.Duration

	steadyAfter time.Duration

	bulkProfiles int
	withdrawAt   float64

	maxWastedKill, maxWastedChurn, maxDupChurn float64

	instanceArgs, instanceEnv, simArgs []string
	dynamic                            bool
	adminKey                           string
}

// Tenants of the streaming scenarios: A and B on their own programs, C
// connected and mapped but without consent.
const (
	tenantA = "faults-a"
	tenantB = "faults-b"
	tenantC = "faults-c"
)

// check is one assertion of a scenario.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// scenarioReport is one scenario's outcome.
type scenarioReport struct {
	Name     string    `json:"name"`
	Title    string    `json:"title"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Error    string    `json:"error,omitempty"`
	Results  *results  `json:"results,omitempty"`
	Checks   []check   `json:"checks"`
	Commands []string  `json:"notes,omitempty"`
	// firstOut: per tenant, seconds from t0 of each distinct output's first
	// record (for throughput windows compared across scenarios).
	firstOut map[string][]float64
}

// run is one scenario in progress.
type run struct {
	cfg   *suiteConfig
	name  string
	st    *stack
	w     *workload
	watch *watcher
	rules map[string]tenantRule
	t0    time.Time
	rng   *rand.Rand

	mu        sync.Mutex
	lastKill  time.Time
	kills     int
	selfExits int
	extra     map[string]any
	notes     []string

	// Kept from collect for the scenario's own checks.
	firstOut map[string][]float64
	calls    []simCall
	outputs  []record
}

func (r *run) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf("t+%.1fs %s", time.Since(r.t0).Seconds(), msg))
	r.mu.Unlock()
	fmt.Fprintf(os.Stderr, "faults[%s]: t+%.1fs %s\n", r.name, time.Since(r.t0).Seconds(), msg)
}

func (r *run) set(k string, v any) {
	r.mu.Lock()
	r.extra[k] = v
	r.mu.Unlock()
}

// at waits until d after t0.
func (r *run) at(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(r.t0.Add(d))):
		return nil
	}
}

// scenario is one entry of the suite.
type scenario struct {
	name, title string
	instances   int
	// tenants and their token index; nil: the default A, B, C.
	tenants []tenantSetup
	// backlog: write every input before starting the instances.
	backlog bool
	// body injects the fault while the workload is written.
	body func(ctx context.Context, r *run) error
	// checks turns results into assertions.
	checks func(r *run, res *results, all map[string]*scenarioReport) []check
}

func defaultTenants() []tenantSetup {
	return []tenantSetup{{id: tenantA, tokenIx: 0, consent: true}, {id: tenantB, tokenIx: 1, consent: true}, {id: tenantC, tokenIx: 2, consent: false}}
}

// runScenario builds a fresh stack, writes the workload, runs the body,
// waits for the instances to catch up, collects and analyses.
func (c *suiteConfig) runScenario(ctx context.Context, sc scenario, all map[string]*scenarioReport) (rep *scenarioReport) {
	rep = &scenarioReport{Name: sc.name, Title: sc.title, Started: time.Now()}
	defer func() { rep.Seconds = time.Since(rep.Started).Seconds() }()
	workDir := filepath.Join(c.outDir, sc.name)
	_ = os.RemoveAll(workDir)
	tenants := sc.tenants
	if tenants == nil {
		tenants = defaultTenants()
	}
	st := &stack{ps: &procs{}, cfg: stackConfig{repo: c.repo, binDir: c.binDir, workDir: workDir, partitions: c.partitions,
		simTPS: c.simTPS, simLatency: c.simLatency, simJitter: c.simJitter, tokens: []string{"tok-program-1", "tok-program-2", "tok-program-3"},
		proxy: true, instanceArgs: c.instanceArgs, instanceEnv: c.instanceEnv, simArgs: c.simArgs, group: "leadspace-enricher", adminKey: c.adminKey, dynamic: c.dynamic}}
	defer st.down()
	r := &run{cfg: c, name: sc.name, st: st, extra: map[string]any{}, rng: rand.New(rand.NewPCG(c.seed, uint64(len(sc.name)))), t0: time.Now()}
	fail := func(err error) *scenarioReport {
		rep.Error = err.Error()
		rep.Checks = append(rep.Checks, check{Name: "scenario ran", OK: false, Detail: err.Error()})
		rep.Commands = r.notes
		return rep
	}
	fmt.Fprintf(os.Stderr, "faults[%s]: %s\n", sc.name, sc.title)
	if err := st.up(ctx); err != nil {
		return fail(err)
	}
	if err := st.setupTenants(ctx, tenants); err != nil {
		return fail(err)
	}
	r.rules = map[string]tenantRule{}
	var names []string
	for _, t := range tenants {
		r.rules[t.id] = tenantRule{program: fmt.Sprintf("program-%d", t.tokenIx+1), consent: t.consent}
		names = append(names, t.id)
	}
	spec := workloadSpec{tenants: names, profiles: c.profiles, updates: c.updates, updateLag: 1000, seed: c.seed,
		runID: fmt.Sprintf("%d", time.Now().UnixNano()), blankEvery: 40}
	if sc.backlog {
		spec.profiles, spec.updates = c.bulkProfiles, 0
	}
	w, err := buildWorkload(st.codec, spec)
	if err != nil {
		return fail(err)
	}
	r.w = w
	env := st.tokenEnvs(tenants)
	parts, err := partitionsOf(ctx, st.client, topicProfiles)
	if err != nil {
		return fail(err)
	}
	wr := newWriter(st.bootstrap)
	defer wr.close()
	if sc.backlog {
		if err := wr.writePaced(ctx, w.inputs, 0); err != nil {
			return fail(err)
		}
	}
	// Instances first, all ready, then the watch and the clock start.
	var wg sync.WaitGroup
	errs := make([]error, sc.instances)
	for i := 1; i <= sc.instances; i++ {
		wg.Go(func() { _, errs[i-1] = st.startInstance(ctx, i, env, 90*time.Second) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	r.watch = newWatcher(st, st.cfg.group, parts)
	watchCtx, cancelWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() { r.watch.run(watchCtx); close(watchDone) }()
	stopWatch := sync.OnceFunc(func() { cancelWatch(); <-watchDone })
	defer stopWatch()
	r.t0 = time.Now()

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	var bodyErr, writeErr error
	var bg sync.WaitGroup
	if !sc.backlog {
		bg.Go(func() {
			writeErr = wr.writePaced(runCtx, w.inputs, c.writeFor)
			r.note("writing done: %d inputs, %d retried batches", wr.written.Load(), wr.retries.Load())
		})
	}
	if sc.body != nil {
		bg.Go(func() { bodyErr = sc.body(runCtx, r) })
	}
	bg.Wait()
	for _, e := range wr.errors() {
		r.note("write retried: %s", e)
	}
	if ctx.Err() != nil {
		return fail(errAborted)
	}
	if writeErr != nil {
		return fail(fmt.Errorf("writing the workload: %w", writeErr))
	}
	if bodyErr != nil {
		return fail(fmt.Errorf("injecting the fault: %w", bodyErr))
	}
	r.drain(ctx)
	stopWatch()

	res, err := r.collect(ctx, parts)
	if err != nil {
		return fail(err)
	}
	rep.Results = res
	rep.firstOut = r.firstOut
	rep.Checks = sc.checks(r, res, all)
	rep.Commands = r.notes
	return rep
}

// drain waits until every input partition is committed to its end, no
// instance is left alive (for 10 s), or the drain timeout passes.
func (r *run) drain(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.drainTimeout)
	var noneSince time.Time
	for {
		if r.watch.caughtUp() && r.recoveredOrNoKill() {
			r.note("caught up: every input partition committed to its end")
			return
		}
		if len(r.st.alive()) == 0 {
			if noneSince.IsZero() {
				noneSince = time.Now()
			}
			if time.Since(noneSince) > 10*time.Second {
				r.note("no instance alive; stopped waiting")
				return
			}
		} else {
			noneSince = time.Time{}
		}
		if time.Now().After(deadline) {
			r.note("drain timeout (%s) passed before the group caught up", r.cfg.drainTimeout)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// recoveredOrNoKill: no instance was killed, or the samples since the last
// kill already show the group owning and advancing every partition (so the
// drain does not end before that figure can be measured).
func (r *run) recoveredOrNoKill() bool {
	r.mu.Lock()
	lastKill := r.lastKill
	r.mu.Unlock()
	if lastKill.IsZero() {
		return true
	}
	samples, outs := r.watch.snapshot()
	return computeProgress(samples, outs, r.watch.parts, lastKill).RecoveredAfterLastKillS >= 0
}

// collect reads the topics and the call log and analyses them.
func (r *run) collect(ctx context.Context, parts []int) (*results, error) {
	st := r.st
	inputs, err := readAll(ctx, st.bootstrap, st.client, topicProfiles)
	if err != nil {
		return nil, err
	}
	outputs, err := readAll(ctx, st.bootstrap, st.client, topicEnriched)
	if err != nil {
		return nil, err
	}
	dlq, err := readAll(ctx, st.bootstrap, st.client, topicDLQ)
	if err != nil {
		return nil, err
	}
	calls, err := fetchCalls(ctx, st.simURL)
	if err != nil {
		return nil, err
	}
	committed, err := committedOffsets(ctx, st.client, st.cfg.group, topicProfiles, parts)
	if err != nil {
		return nil, err
	}
	samples, outs := r.watch.snapshot()
	var gate map[string]int
	if st.gate != nil {
		gate = st.gate.injectedCalls()
	}
	res, err := analyze(ctx, analysisInput{w: r.w, rules: r.rules, inputs: inputs, outputs: outputs, dlq: dlq, calls: calls,
		t0: r.t0, bucket: r.cfg.bucket, codec: st.codec, gate: gate, progress: computeProgress(samples, outs, parts, r.lastKill),
		committed: committed})
	if err != nil {
		return nil, err
	}
	res.Generations, res.CommitsRefused = st.generations()
	for _, in := range st.allInstances() {
		desc := in.p.name + ": " + in.p.exitText()
		if in.killedBy != "" {
			desc += " (" + in.killedBy + " by the suite)"
		}
		res.InstanceExits = append(res.InstanceExits, desc)
	}
	res.Kills = r.kills
	r.mu.Lock()
	for k, v := range r.extra {
		res.Extra[k] = v
	}
	r.mu.Unlock()
	r.firstOut = firstOutputs(ctx, r, outputs)
	r.calls, r.outputs = calls, outputs
	return res, nil
}

// unexpectedExits counts instance processes that ended without the suite
// asking (a SIGTERM or SIGKILL it sent), i.e. the service gave up.
func unexpectedExits(st *stack) int {
	n := 0
	for _, in := range st.allInstances() {
		if !in.p.alive() && in.killedBy == "" {
			n++
		}
	}
	return n
}

// kill sends sig to the slot's running instance and records it.
func (r *run) kill(in *instance, sig syscall.Signal) {
	if in.p.alive() {
		in.killedBy = map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM"}[sig]
		in.p.signal(sig)
	}
	r.mu.Lock()
	if sig == syscall.SIGKILL {
		r.kills++
		r.lastKill = time.Now()
	}
	r.mu.Unlock()
}

// slotAlive returns the running instance of a slot, if any.
func (r *run) slotAlive(slot int) *instance {
	for _, in := range r.st.alive() {
		if in.slot == slot {
			return in
		}
	}
	return nil
}

// sessionTimeout is the consumer group session timeout the binary uses: the
// default of its --session-timeout flag if it has one, else the 30 s that
// processor.go hard-codes today (issue 11).
func (st *stack) sessionTimeout() time.Duration {
	if st.runFlags["session-timeout"] {
		if d, ok := st.flagDefault("session-timeout"); ok {
			return d
		}
	}
	return 30 * time.Second
}

// flagDefault parses "--NAME (env X, default D)" from `enricher run -h`.
func (st *stack) flagDefault(name string) (time.Duration, bool) {
	m := regexp.MustCompile(`--` + regexp.QuoteMeta(name) + ` \(env [A-Z_]+, default ([^)]+)\)`).FindStringSubmatch(st.runHelp)
	if m == nil {
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(m[1]))
	return d, err == nil
}
