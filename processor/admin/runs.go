package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Leadspace's bulk API moves up to this many records per submit.
const bulkRecords = 500

// tenantInfo is what the control topic says about one tenant.
type tenantInfo struct {
	id    string
	state controlplane.TenantState
	// refresh is the tenant's latest refresh event (a request or a cancel).
	refresh *schemas.Control
}

// loadTenant reads the control topic as the service does (verifying
// signatures with the configured keys) and refuses a tenant it never saw.
func (a *Admin) loadTenant(ctx context.Context, tenant string) (tenantInfo, error) {
	return loadTenant(ctx, a.cfg.Kafka, a.cfg.Topics.Control, a.codec, a.cfg.Auth, tenant)
}

func loadTenant(ctx context.Context, k processor.Kafka, topic string, codec *schemas.Codec, auth controlplane.Auth, tenant string) (tenantInfo, error) {
	info := tenantInfo{id: tenant}
	// Tokens are not needed here: references stay unresolved.
	table := controlplane.NewTable(func(string, string) (string, error) { return "unresolved", nil })
	err := processor.ReadAll(ctx, k, topic, func(m kafka.Message) {
		ev, err := table.ApplyRecord(codec, auth, m)
		if err == nil && ev != nil && ev.TenantID == tenant && ev.Refresh != nil &&
			(info.refresh == nil || !ev.IssuedAt.Before(info.refresh.IssuedAt)) {
			info.refresh = ev
		}
	})
	if err != nil {
		return info, readErr(topic, err)
	}
	for _, st := range table.Snapshot() {
		if st.TenantID == tenant {
			info.state = st
			return info, nil
		}
	}
	return info, unknownTenant(tenant, topic)
}

func unknownTenant(tenant, topic string) error {
	return fail(ErrUnknownTenant, "unknown tenant %s: %s holds no control event for it (connect it first: enricher connect --tenant %s ...)", tenant, topic, tenant)
}

// runAllowed refuses a Run that could send nothing: the tenant must be
// connected, consented and mapped.
func runAllowed(info tenantInfo) error {
	st := info.state
	switch {
	case st.State == schemas.StateActive:
		return nil
	case st.State == schemas.StateRemoved:
		return fail(ErrRefused, "refused: tenant %s was removed; connect it again before a Run", info.id)
	case st.State == schemas.StateNotConnected:
		return fail(ErrNotConnected, "refused: tenant %s is not connected to Leadspace (enricher connect --tenant %s ...)", info.id, info.id)
	case st.State == schemas.StateNoConsent:
		return fail(ErrRefused, "refused: tenant %s has no consent recorded, so no data may leave for Leadspace (enricher consent give --tenant %s)", info.id, info.id)
	case strings.HasPrefix(st.Reason, controlplane.ReasonNoMapping):
		return fail(ErrRefused, "refused: tenant %s has no mapping (enricher map --tenant %s --name ATTRIBUTE ...)", info.id, info.id)
	}
	return fail(ErrRefused, "refused: tenant %s is %s (%s)", info.id, st.State, st.Reason)
}

// tenantView reads the status topic and returns the tenant's view.
func (a *Admin) tenantView(ctx context.Context, info tenantInfo, now time.Time) (statusview.Tenant, error) {
	records, err := processor.ReadStatus(ctx, a.cfg.Kafka, a.cfg.Topics.Status, a.codec)
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

// NewRunID makes a Run id that sorts by time: run-20260301T120000Z-1a2b3c4d.
func NewRunID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "run-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// StartRun requests a Run of the tenant (re-enrich its current profiles;
// force asks Leadspace again for unchanged ones too). It is refused unless
// the tenant is active and no Run is active or pending. The Run's id is in
// the published event (Event.Refresh.RunID).
func (a *Admin) StartRun(ctx context.Context, tenant string, force bool, by string) (Published, error) {
	if err := CheckTenant(tenant); err != nil {
		return Published{}, err
	}
	info, err := a.loadTenant(ctx, tenant)
	if err != nil {
		return Published{}, err
	}
	if err := runAllowed(info); err != nil {
		return Published{}, err
	}
	view, err := a.tenantView(ctx, info, time.Now())
	if err != nil {
		return Published{}, err
	}
	if r := view.Run; r.Active() {
		done := fmt.Sprintf("%d of %d profiles", r.Done, r.Scope)
		if r.Scope < 0 {
			done = "reading its scope"
		}
		return Published{}, fail(ErrRefused, "refused: Run %s of tenant %s is still active (%s, requested %s); wait for it, or stop it with 'enricher refresh cancel --tenant %s'",
			r.RunID, tenant, done, r.RequestedAt.UTC().Format(time.RFC3339), tenant)
	}
	if pending := pendingRun(info, view); pending != nil {
		return Published{}, fail(ErrRefused, "refused: Run %s of tenant %s was requested at %s and has not started yet; wait for the service to start it, or withdraw it with 'enricher refresh cancel --tenant %s'",
			pending.RunID, tenant, info.refresh.IssuedAt.UTC().Format(time.RFC3339), tenant)
	}
	return a.change(ctx, tenant, by, schemas.Control{Refresh: &schemas.Refresh{RunID: NewRunID(time.Now()), Force: force}})
}

// CancelRun stops the tenant's active Run, or withdraws one that was
// requested and has not started. runID, when given, must name that Run.
func (a *Admin) CancelRun(ctx context.Context, tenant, runID, by string) (Published, error) {
	if err := CheckTenant(tenant); err != nil {
		return Published{}, err
	}
	info, err := a.loadTenant(ctx, tenant)
	if err != nil {
		return Published{}, err
	}
	view, err := a.tenantView(ctx, info, time.Now())
	if err != nil {
		return Published{}, err
	}
	active := ""
	if view.Run.Active() {
		active = view.Run.RunID
	} else if p := pendingRun(info, view); p != nil {
		active = p.RunID
	}
	switch {
	case active == "":
		return Published{}, fail(ErrRefused, "no Run of tenant %s is active or pending; nothing to cancel", tenant)
	case runID != "" && runID != active:
		return Published{}, fail(ErrRefused, "run %s is not the tenant's active or pending Run (that is %s); nothing was published", runID, active)
	}
	return a.change(ctx, tenant, by, schemas.Control{Refresh: &schemas.Refresh{RunID: active, Cancel: true}})
}

// WaitRun follows the status topic until the Run ends, calling progress
// (when not nil) with each new view of it, at most every 250 ms. It
// returns the final view: nil error when the Run COMPLETED, an error when
// it ended otherwise or ctx ended first (the Run goes on in the service).
func (a *Admin) WaitRun(ctx context.Context, tenant, runID string, progress func(*statusview.Run)) (*statusview.Run, error) {
	var mu sync.Mutex
	latest := map[string]schemas.Status{}
	followCtx, stop := context.WithCancel(ctx)
	defer stop()
	followErr := make(chan error, 1)
	go func() {
		followErr <- processor.Follow(followCtx, a.cfg.Kafka, a.cfg.Topics.Status, func(m kafka.Message) {
			if !strings.HasPrefix(string(m.Key), tenant+"/") || m.Value == nil {
				return
			}
			if s, err := a.codec.DecodeStatus(followCtx, m.Value); err == nil {
				mu.Lock()
				latest[string(m.Key)] = s
				mu.Unlock()
			}
		}, func() {})
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last *statusview.Run
	for {
		mu.Lock()
		records := make([]schemas.Status, 0, len(latest))
		for _, s := range latest {
			records = append(records, s)
		}
		mu.Unlock()
		var run *statusview.Run
		for _, v := range statusview.Tenants(records, nil, time.Now()) {
			if v.TenantID == tenant && v.Run != nil && v.Run.RunID == runID {
				run = v.Run
			}
		}
		if run != nil {
			last = run
			if progress != nil {
				progress(run)
			}
			if !run.Active() {
				if run.Succeeded() {
					return run, nil
				}
				return run, fmt.Errorf("run %s ended %s after %d of %d profiles", runID, run.Outcome, run.Done, run.Scope)
			}
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case err := <-followErr:
			if ctx.Err() == nil {
				return last, fmt.Errorf("follow %s: %w", a.cfg.Topics.Status, err)
			}
		case <-tick.C:
		}
	}
}

// RunPreview is the credits preview of a Run: what the pipeline would do
// with each of the tenant's current profiles.
type RunPreview struct {
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
	// older than the refresh interval, or force.
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
	Estimate          RunEstimate    `json:"estimate"`
}

// RunEstimate is the records and time a Run would take at the program's rate.
type RunEstimate struct {
	Records      int     `json:"records"`
	Transactions int     `json:"transactions"`
	Seconds      float64 `json:"seconds"`
	TPS          float64 `json:"leadspace_tps"`
	Mode         string  `json:"mode"`
	Assumption   string  `json:"assumption"`
}

// PreviewRun reads the tenant's current profiles and enrichments and
// predicts what a Run would do and cost; it publishes nothing.
func (a *Admin) PreviewRun(ctx context.Context, tenant string, force bool) (RunPreview, error) {
	if err := CheckTenant(tenant); err != nil {
		return RunPreview{}, err
	}
	info, err := a.loadTenant(ctx, tenant)
	if err != nil {
		return RunPreview{}, err
	}
	state := info.state
	latest, err := latestByKey(ctx, a.cfg.Kafka, a.cfg.Topics.Profiles, tenant+"/")
	if err != nil {
		return RunPreview{}, err
	}
	profiles := make([]currentProfile, 0, len(latest))
	for key, m := range latest {
		p, err := a.codec.DecodeProfile(ctx, m.Value)
		profiles = append(profiles, currentProfile{key: key, profile: p, err: err})
	}
	enriched, err := a.Enrichments(ctx, tenant)
	if err != nil {
		return RunPreview{}, err
	}
	prior := make(map[string]priorAnswer, len(enriched))
	for _, e := range enriched {
		prior[e.TenantID+"/"+e.ProfileID] = priorAnswer{fingerprint: e.InputFingerprint, status: e.Status, at: e.EnrichedAt}
	}
	p := previewRun(state, profiles, prior, force, time.Now())
	p.Estimate = estimateRun(p.WouldCall, a.cfg.LeadspaceTPS, a.cfg.BulkThreshold)
	return p, nil
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

// previewRun predicts, profile by profile, what the pipeline does: decode
// and validate (input errors), the gate, the mapping (skips), then the
// dedupe by input fingerprint against the standing ENRICHED or NOT_MATCHED
// answer, fresh within the mapping's refresh interval.
func previewRun(state controlplane.TenantState, profiles []currentProfile, prior map[string]priorAnswer, force bool, now time.Time) RunPreview {
	p := RunPreview{TenantID: state.TenantID, Force: force, SkippedReasons: map[string]int{},
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
func estimateRun(calls int, tps float64, bulkFrom int) RunEstimate {
	e := RunEstimate{Records: calls, TPS: tps}
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
