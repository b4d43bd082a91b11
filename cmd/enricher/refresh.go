package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Leadspace's bulk API moves up to this many records per submit.
const bulkRecords = 500

// refreshFlags are the settings of `enricher refresh`.
type refreshFlags struct {
	staleOnly, force, dryRun, wait, asJSON bool
	timeout                                time.Duration
	tps                                    float64
	bulkFrom                               int
}

// cmdRefresh requests a Run of a tenant (re-enrich its current profiles),
// previews one (--dry-run), follows one (--wait), or cancels one.
func cmdRefresh(args []string) error {
	if len(args) > 0 && args[0] == "cancel" {
		return cmdRefreshCancel(args[1:])
	}
	s, a := newAdmin("refresh")
	var f refreshFlags
	s.BoolVar(&f.staleOnly, "stale-only", false, "only profiles whose mapped inputs changed, never answered, or are stale by the mapping's refresh interval (the default)")
	s.BoolVar(&f.force, "force", false, "every mappable current profile asks Leadspace again, changed or not (spends a record each)")
	s.BoolVar(&f.dryRun, "dry-run", false, "publish nothing: preview the profiles in scope, the calls, the skips and the records and time it would take")
	s.BoolVar(&f.wait, "wait", false, "follow the Run until it ends: exit 0 on COMPLETED, 1 on CANCELLED, STOPPED or --timeout")
	s.BoolVar(&f.asJSON, "json", false, "with --dry-run: print the preview as JSON")
	s.DurationVar(&f.timeout, "timeout", time.Hour, "with --wait: give up (exit 1) after this long")
	s.Float64Var(&f.tps, "leadspace-tps", 30, "for the estimate: transactions per second of the tenant's Leadspace program (the published tier is 30)")
	s.IntVar(&f.bulkFrom, "leadspace-bulk-threshold", 20, "for the estimate: records waiting at which the service switches from single calls to bulk")
	if err := parseFlags(s, args); err != nil {
		return err
	}
	if err := checkTenant(a.tenant); err != nil {
		return err
	}
	switch {
	case f.staleOnly && f.force:
		return badUsage("stale-only, force: choose one")
	case f.tps <= 0 || f.tps > 10_000:
		return badUsage("leadspace-tps: %v is outside (0, 10000]", f.tps)
	case f.bulkFrom < 1:
		return badUsage("leadspace-bulk-threshold: %d is below 1", f.bulkFrom)
	case f.timeout <= 0:
		return badUsage("timeout: must be positive, got %s", f.timeout)
	case f.dryRun && f.wait:
		return badUsage("dry-run, wait: a dry run starts nothing to wait for")
	case f.asJSON && !f.dryRun:
		return badUsage("json: only with --dry-run")
	}
	auth, err := a.auth()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	readCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	codec, err := a.codec(readCtx)
	if err != nil {
		return err
	}
	info, err := loadTenant(readCtx, &a.kafkaFlags, codec, auth, a.tenant)
	if err != nil {
		return err
	}
	if f.dryRun {
		p, err := previewTenant(readCtx, &a.kafkaFlags, codec, info.state, f.force, time.Now())
		if err != nil {
			return err
		}
		p.Estimate = estimateRun(p.WouldCall, f.tps, f.bulkFrom)
		if f.asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(p)
		}
		return printPreview(p)
	}
	if err := runAllowed(info); err != nil {
		return err
	}
	view, err := tenantView(readCtx, &a.kafkaFlags, codec, info, time.Now())
	if err != nil {
		return err
	}
	if r := view.Run; r.Active() {
		done := fmt.Sprintf("%d of %d profiles", r.Done, r.Scope)
		if r.Scope < 0 {
			done = "reading its scope"
		}
		return fmt.Errorf("refused: Run %s of tenant %s is still active (%s, requested %s); wait for it, or stop it with 'enricher refresh cancel --tenant %s'",
			r.RunID, a.tenant, done, r.RequestedAt.UTC().Format(time.RFC3339), a.tenant)
	}
	if pending := pendingRun(info, view); pending != nil {
		return fmt.Errorf("refused: Run %s of tenant %s was requested at %s and has not started yet; wait for the service to start it, or withdraw it with 'enricher refresh cancel --tenant %s'",
			pending.RunID, a.tenant, info.refresh.IssuedAt.UTC().Format(time.RFC3339), a.tenant)
	}
	runID := newRunID(time.Now())
	if err := a.publish(schemas.Control{Refresh: &schemas.Refresh{RunID: runID, Force: f.force}}); err != nil {
		return err
	}
	mode := "stale-only"
	if f.force {
		mode = "force"
	}
	fmt.Printf("run %s requested for tenant %s (%s)\n", runID, a.tenant, mode)
	if !f.wait {
		fmt.Printf("follow it: enricher status --tenant %s (or run refresh with --wait)\n", a.tenant)
		return nil
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, f.timeout)
	defer cancelWait()
	return waitRun(waitCtx, &a.kafkaFlags, codec, a.tenant, runID, f.timeout)
}

// cmdRefreshCancel stops the tenant's active Run, or withdraws one that
// was requested and has not started.
func cmdRefreshCancel(args []string) error {
	s, a := newAdmin("refresh cancel")
	var runID string
	s.StringVar(&runID, "run-id", "", "the Run to cancel (default: the tenant's active or pending Run)")
	if err := parseFlags(s, args); err != nil {
		return err
	}
	if err := checkTenant(a.tenant); err != nil {
		return err
	}
	auth, err := a.auth()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	codec, err := a.codec(ctx)
	if err != nil {
		return err
	}
	info, err := loadTenant(ctx, &a.kafkaFlags, codec, auth, a.tenant)
	if err != nil {
		return err
	}
	view, err := tenantView(ctx, &a.kafkaFlags, codec, info, time.Now())
	if err != nil {
		return err
	}
	active := ""
	if view.Run.Active() {
		active = view.Run.RunID
	} else if p := pendingRun(info, view); p != nil {
		active = p.RunID
	}
	switch {
	case active == "":
		return fmt.Errorf("no Run of tenant %s is active or pending; nothing to cancel", a.tenant)
	case runID != "" && runID != active:
		return fmt.Errorf("run %s is not the tenant's active or pending Run (that is %s); nothing was published", runID, active)
	}
	if err := a.publish(schemas.Control{Refresh: &schemas.Refresh{RunID: active, Cancel: true}}); err != nil {
		return err
	}
	fmt.Printf("run %s of tenant %s: cancel requested\n", active, a.tenant)
	return nil
}

// tenantInfo is what the control topic says about one tenant.
type tenantInfo struct {
	id    string
	state controlplane.TenantState
	// refresh is the tenant's latest refresh event (a request or a cancel).
	refresh *schemas.Control
}

// loadTenant reads the control topic as the service does (verifying
// signatures when an admin key is given) and refuses a tenant it never saw.
func loadTenant(ctx context.Context, k *kafkaFlags, codec *schemas.Codec, auth controlplane.Auth, tenant string) (tenantInfo, error) {
	info := tenantInfo{id: tenant}
	// Tokens are not needed here: references stay unresolved.
	table := controlplane.NewTable(func(string, string) (string, error) { return "unresolved", nil })
	err := processor.ReadAll(ctx, k.kafka(), k.topics.Control, func(m kafka.Message) {
		ev, err := table.ApplyRecord(codec, auth, m)
		if err == nil && ev != nil && ev.TenantID == tenant && ev.Refresh != nil &&
			(info.refresh == nil || !ev.IssuedAt.Before(info.refresh.IssuedAt)) {
			info.refresh = ev
		}
	})
	if err != nil {
		return info, readErr(k.topics.Control, err)
	}
	for _, st := range table.Snapshot() {
		if st.TenantID == tenant {
			info.state = st
			return info, nil
		}
	}
	return info, fmt.Errorf("unknown tenant %s: %s holds no control event for it (connect it first: enricher connect --tenant %s ...)", tenant, k.topics.Control, tenant)
}

// runAllowed refuses a Run that could send nothing: the tenant must be
// connected, consented and mapped.
func runAllowed(info tenantInfo) error {
	st := info.state
	switch {
	case st.State == schemas.StateActive:
		return nil
	case st.State == schemas.StateRemoved:
		return fmt.Errorf("refused: tenant %s was removed; connect it again before a Run", info.id)
	case st.State == schemas.StateNotConnected:
		return fmt.Errorf("refused: tenant %s is not connected to Leadspace (enricher connect --tenant %s ...)", info.id, info.id)
	case st.State == schemas.StateNoConsent:
		return fmt.Errorf("refused: tenant %s has no consent recorded, so no data may leave for Leadspace (enricher consent give --tenant %s)", info.id, info.id)
	case strings.HasPrefix(st.Reason, controlplane.ReasonNoMapping):
		return fmt.Errorf("refused: tenant %s has no mapping (enricher map --tenant %s --name ATTRIBUTE ...)", info.id, info.id)
	}
	return fmt.Errorf("refused: tenant %s is %s (%s)", info.id, st.State, st.Reason)
}

// tenantView reads the status topic and returns the tenant's view.
func tenantView(ctx context.Context, k *kafkaFlags, codec *schemas.Codec, info tenantInfo, now time.Time) (statusview.Tenant, error) {
	records, err := processor.ReadStatus(ctx, k.kafka(), k.topics.Status, codec)
	if err != nil {
		return statusview.Tenant{}, err
	}
	for _, v := range statusview.Tenants(records, []controlplane.TenantState{info.state}, now) {
		if v.TenantID == info.id {
			return v, nil
		}
	}
	return statusview.Tenant{TenantID: info.id}, nil
}

// pendingRun is a Run requested on the control topic that no partition
// reports yet: the latest refresh event asks for a Run the status does not show.
func pendingRun(info tenantInfo, view statusview.Tenant) *schemas.Refresh {
	r := info.refresh
	if r == nil || r.Refresh.Cancel || (view.Run != nil && view.Run.RunID == r.Refresh.RunID) {
		return nil
	}
	return r.Refresh
}

func newRunID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "run-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// runPreview is the credits preview of a Run: what the pipeline would do
// with each of the tenant's current profiles.
type runPreview struct {
	TenantID string `json:"tenant_id"`
	Force    bool   `json:"force"`
	// Profiles in scope: the latest value per key on the profiles topic,
	// deleted ones (tombstones) excluded; Profiles = WouldCall + Unchanged +
	// Skipped + InputErrors.
	Profiles int `json:"profiles"`
	// Invalid are latest values that are no valid profile (they do not
	// decode, or their ids do not match the key): dead letters, no call,
	// and not in scope.
	Invalid        int            `json:"invalid_records"`
	InvalidReasons map[string]int `json:"invalid_reasons"`
	WouldCall      int            `json:"would_call"`
	// Why they would call: never answered, mapped inputs changed, answer
	// older than the refresh interval, or --force.
	New     int `json:"new"`
	Changed int `json:"changed"`
	Stale   int `json:"stale"`
	Forced  int `json:"forced"`
	// Unchanged and fresh: no call.
	Unchanged      int            `json:"unchanged"`
	Skipped        int            `json:"skipped"`
	SkippedReasons map[string]int `json:"skipped_reasons"`
	// InputErrors are profiles whose mapped values Leadspace would refuse
	// (too long, not UTF-8): dead letters without a call.
	InputErrors       int            `json:"input_errors"`
	InputErrorReasons map[string]int `json:"input_error_reasons"`
	Estimate          runEstimate    `json:"estimate"`
}

// runEstimate is the records and time a Run would take at the program's rate.
type runEstimate struct {
	Records      int     `json:"records"`
	Transactions int     `json:"transactions"`
	Seconds      float64 `json:"seconds"`
	TPS          float64 `json:"leadspace_tps"`
	Mode         string  `json:"mode"`
	Assumption   string  `json:"assumption"`
}

// currentProfile is one key's latest value on the profiles topic.
type currentProfile struct {
	key     string
	profile schemas.Profile
	err     error // the value did not decode
}

// priorAnswer is a profile's standing enrichment, as the pipeline's dedupe
// reads it from the enriched topic.
type priorAnswer struct {
	fingerprint, status string
	at                  time.Time
}

// previewTenant reads the tenant's current profiles and enrichments.
func previewTenant(ctx context.Context, k *kafkaFlags, codec *schemas.Codec, state controlplane.TenantState, force bool, now time.Time) (runPreview, error) {
	prefix := state.TenantID + "/"
	latest, err := latestByKey(ctx, k.kafka(), k.topics.Profiles, prefix)
	if err != nil {
		return runPreview{}, err
	}
	profiles := make([]currentProfile, 0, len(latest))
	for key, m := range latest {
		p, err := codec.DecodeProfile(ctx, m.Value)
		profiles = append(profiles, currentProfile{key: key, profile: p, err: err})
	}
	enriched, err := currentEnrichments(ctx, k.kafka(), k.topics.Enriched, codec, state.TenantID)
	if err != nil {
		return runPreview{}, err
	}
	prior := make(map[string]priorAnswer, len(enriched))
	for _, e := range enriched {
		prior[e.TenantID+"/"+e.ProfileID] = priorAnswer{fingerprint: e.InputFingerprint, status: e.Status, at: e.EnrichedAt}
	}
	return previewRun(state, profiles, prior, force, now), nil
}

// previewRun predicts, profile by profile, what the pipeline does: decode
// and validate (input errors), the gate, the mapping (skips), then the
// dedupe by input fingerprint against the standing ENRICHED or NOT_MATCHED
// answer, fresh within the mapping's refresh interval.
func previewRun(state controlplane.TenantState, profiles []currentProfile, prior map[string]priorAnswer, force bool, now time.Time) runPreview {
	p := runPreview{TenantID: state.TenantID, Force: force, SkippedReasons: map[string]int{},
		InputErrorReasons: map[string]int{}, InvalidReasons: map[string]int{}}
	invalid := func(reason string) {
		p.Invalid++
		p.InvalidReasons[reason]++
	}
	inputError := func(reason string) {
		p.InputErrors++
		p.InputErrorReasons[reason]++
	}
	skip := func(reason string) {
		p.Skipped++
		p.SkippedReasons[reason]++
	}
	var mapping schemas.Mapping
	if state.Mapping != nil {
		mapping = *state.Mapping
	}
	for _, cp := range profiles {
		if cp.err != nil {
			reason := schemas.ReasonBadAvro
			var de *schemas.DecodeError
			if errors.As(cp.err, &de) {
				reason = de.Reason
			}
			invalid(reason)
			continue
		}
		pr := cp.profile
		switch {
		case pr.EventID == "" || pr.TenantID == "" || pr.ProfileID == "":
			invalid(processor.ReasonMissingIDs)
			continue
		case cp.key != pr.TenantID+"/"+pr.ProfileID:
			invalid(processor.ReasonKeyMismatch)
			continue
		}
		p.Profiles++
		if reason, dead := gateOf(state); reason != "" { // the gate comes before the mapping
			if dead {
				inputError(reason)
			} else {
				skip(reason)
			}
			continue
		}
		fp, skipReason, err := processor.MapProfile(pr, mapping)
		switch {
		case err != nil:
			reason, _ := processor.ReasonOf(err)
			inputError(reason)
			continue
		case skipReason != "":
			skip(skipReason)
			continue
		}
		a, answered := prior[cp.key]
		answered = answered && (a.status == schemas.StatusEnriched || a.status == schemas.StatusNotMatched)
		fresh := mapping.RefreshInterval <= 0 || now.Sub(a.at) < mapping.RefreshInterval
		switch {
		case !answered:
			p.New++
		case a.fingerprint != fp:
			p.Changed++
		case !fresh:
			p.Stale++
		case force:
			p.Forced++
		default:
			p.Unchanged++
			continue
		}
		p.WouldCall++
	}
	return p
}

// gateOf is why the gate lets nothing of this tenant leave: a skip reason,
// or (dead) a reason its events go to the dead letter topic.
func gateOf(st controlplane.TenantState) (reason string, dead bool) {
	switch {
	case st.State == schemas.StateActive:
		return "", false
	case st.State == schemas.StateNoConsent:
		return controlplane.ReasonNoConsent, false
	case strings.HasPrefix(st.Reason, controlplane.ReasonNoMapping):
		return controlplane.ReasonNoMapping, false
	case st.State == schemas.StatePaused:
		return controlplane.ReasonPaused, true
	case st.State == schemas.StateRemoved:
		return controlplane.ReasonRemoved, false
	}
	return controlplane.ReasonNotConnected, false
}

// estimateRun turns the calls into records, transactions and time at the
// program's rate. Every call sends one record. Below the bulk threshold the
// service makes single calls, one transaction each; above it, bulk submits
// of up to 500 records, and we assume each needs about one poll for its
// results (the simulator's default; whether polls count against the rate is
// UNCERTAIN in the research notes, so we count them).
func estimateRun(calls int, tps float64, bulkFrom int) runEstimate {
	e := runEstimate{Records: calls, TPS: tps}
	if calls < bulkFrom {
		e.Mode, e.Transactions = "single", calls
		e.Assumption = fmt.Sprintf("single calls (fewer than %d records waiting), one transaction each, at %g transactions/s; retries of failed calls would add records", bulkFrom, tps)
	} else {
		bulks := int(math.Ceil(float64(calls) / bulkRecords))
		e.Mode, e.Transactions = "bulk", 2*bulks
		e.Assumption = fmt.Sprintf("bulk: %d bulk submit(s) of up to %d records, each with about one poll, at %g transactions/s; Leadspace's processing time is not included; retries would add records", bulks, bulkRecords, tps)
	}
	e.Seconds = math.Round(float64(e.Transactions)/tps*100) / 100
	return e
}

func printPreview(p runPreview) error {
	mode := "stale-only"
	if p.Force {
		mode = "force"
	}
	fmt.Printf("Run preview for tenant %s (%s); nothing was published\n\n", p.TenantID, mode)
	row := func(label string, n int, note string) { fmt.Printf("  %-24s %7d   %s\n", label, n, note) }
	row("profiles in scope", p.Profiles, "the tenant's current profiles (latest per key, deleted ones excluded)")
	row("would call Leadspace", p.WouldCall, fmt.Sprintf("new %d, changed %d, stale %d, forced %d", p.New, p.Changed, p.Stale, p.Forced))
	row("unchanged, no call", p.Unchanged, "same mapped inputs as the standing answer, still fresh")
	row("skipped, no call", p.Skipped, reasonList(p.SkippedReasons))
	row("input errors, no call", p.InputErrors, reasonList(p.InputErrorReasons)+" (dead letters)")
	if p.Invalid > 0 {
		row("not valid profiles", p.Invalid, reasonList(p.InvalidReasons)+" (dead letters, not in scope)")
	}
	fmt.Println()
	row("estimated records", p.Estimate.Records, "sent to Leadspace: what may cost credits")
	fmt.Printf("  %-24s %7s   %d transactions at %g/s\n", "estimated duration", short(time.Duration(p.Estimate.Seconds*float64(time.Second))),
		p.Estimate.Transactions, p.Estimate.TPS)
	fmt.Printf("\nassumption: %s\n", p.Estimate.Assumption)
	return nil
}

// reasonList prints reasons by count, most first: "a 3, b 1".
func reasonList(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	type rc struct {
		r string
		n int
	}
	var l []rc
	for r, n := range m {
		l = append(l, rc{r, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n || (l[i].n == l[j].n && l[i].r < l[j].r) })
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i] = fmt.Sprintf("%s %d", x.r, x.n)
	}
	return strings.Join(parts, ", ")
}

// waitRun follows the status topic until the Run ends, drawing its
// progress on stderr: a bar on a terminal, plain lines otherwise.
func waitRun(ctx context.Context, k *kafkaFlags, codec *schemas.Codec, tenant, runID string, timeout time.Duration) error {
	var mu sync.Mutex
	latest := map[string]schemas.Status{}
	followErr := make(chan error, 1)
	go func() {
		followErr <- processor.Follow(ctx, k.kafka(), k.topics.Status, func(m kafka.Message) {
			if !strings.HasPrefix(string(m.Key), tenant+"/") || m.Value == nil {
				return
			}
			if s, err := codec.DecodeStatus(ctx, m.Value); err == nil {
				mu.Lock()
				latest[string(m.Key)] = s
				mu.Unlock()
			}
		}, func() {})
	}()
	prog := newProgress(os.Stdout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	last := "waiting for the service to start run " + runID
	for {
		mu.Lock()
		records := make([]schemas.Status, 0, len(latest))
		for _, s := range latest {
			records = append(records, s)
		}
		mu.Unlock()
		now := time.Now()
		var run *statusview.Run
		for _, v := range statusview.Tenants(records, nil, now) {
			if v.TenantID == tenant && v.Run != nil && v.Run.RunID == runID {
				run = v.Run
			}
		}
		if run != nil {
			last = runLine(run, now)
			if !run.Active() {
				prog.done(last)
				if run.Succeeded() {
					return nil
				}
				return fmt.Errorf("run %s ended %s after %d of %d profiles", runID, run.Outcome, run.Done, run.Scope)
			}
		}
		prog.update(last)
		select {
		case <-ctx.Done():
			prog.done(last)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timeout: run %s has not ended after %s (%s); it goes on in the service", runID, timeout, last)
			}
			return fmt.Errorf("stopped waiting for run %s; it goes on in the service", runID)
		case err := <-followErr:
			if ctx.Err() == nil {
				return fmt.Errorf("follow %s: %w", k.topics.Status, err)
			}
		case <-tick.C:
		}
	}
}

// runLine is one line of a Run's progress.
func runLine(r *statusview.Run, now time.Time) string {
	if r.Scope < 0 {
		return fmt.Sprintf("run %s: reading the tenant's current profiles...", r.RunID)
	}
	line := fmt.Sprintf("run %s %s %d of %d profiles, %d records spent", r.RunID, bar(r.Done, r.Scope, 20), min(r.Done, r.Scope), r.Scope, r.RecordsSpent)
	switch {
	case !r.Active():
		line += ", " + r.Outcome
	case r.ETA != nil:
		line += fmt.Sprintf(", ETA %s (in %s)", r.ETA.Local().Format("15:04:05"), short(r.ETA.Sub(now)))
	}
	return line
}
