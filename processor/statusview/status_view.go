// Package statusview is the status of tenants as the product shows it,
// folded from the enrichment-status records that every instance writes and
// the control table's tenant states: what 'enricher status' and refresh's
// progress read. It imports nothing of the pipeline.
package statusview

import (
	"sort"
	"strings"
	"time"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// ReasonMissingName is the map stage's skip of a profile whose mapped
// company name is blank (processor.ReasonMissingName is this constant): a
// tenant whose every profile is skipped for it gets a hint about the mapping.
const ReasonMissingName = "map.missing_company_name"

// StateNeedsAttention is shown instead of ACTIVE when a tenant is allowed
// to enrich but none of its current profiles can be: every one is skipped at
// the map stage (typically a mapped attribute that no profile has). It is a
// view-only state; the status topic never carries it.
const StateNeedsAttention = "NEEDS_ATTENTION"

// Tenant is one tenant's status as the product shows it: the tenant's
// state, its current profiles (Y) and what became of them, what Leadspace
// accepted, the last and next refresh, and the current Run. JSON names
// follow the EnrichmentStatus Avro fields, so `status --json` reads like the
// topic.
type Tenant struct {
	TenantID               string           `json:"tenant_id"`
	State                  string           `json:"state"`
	StateReason            string           `json:"state_reason,omitempty"`
	Profiles               int64            `json:"profiles"`
	Enriched               int64            `json:"enriched"`
	NotMatched             int64            `json:"not_matched"`
	Skipped                int64            `json:"skipped"`
	SkippedReasons         map[string]int64 `json:"skipped_reasons"`
	Failed                 int64            `json:"failed"`
	CreditsSpent           int64            `json:"credits_spent"`
	LastEnrichedAt         *time.Time       `json:"last_enriched_at,omitempty"`
	LastRefreshAt          *time.Time       `json:"last_refresh_at,omitempty"`
	NextRefreshAt          *time.Time       `json:"next_refresh_at,omitempty"`
	RefreshIntervalSeconds int64            `json:"refresh_interval_seconds,omitempty"`
	UpdatedAt              *time.Time       `json:"updated_at,omitempty"`
	Partitions             int              `json:"partitions"`
	RefusedControlEvents   int64            `json:"refused_control_events"`
	LastRefusedReason      string           `json:"last_refused_reason,omitempty"`
	RefusedByReason        map[string]int64 `json:"refused_by_reason,omitempty"`
	Run                    *Run             `json:"run,omitempty"`
}

// Run is a Run summed over the partitions that report it.
type Run struct {
	RunID        string     `json:"run_id"`
	Force        bool       `json:"force"`
	Scheduled    bool       `json:"scheduled"`
	RequestedAt  time.Time  `json:"requested_at"`
	Scope        int64      `json:"scope"` // -1 while a partition still reads its scope
	Done         int64      `json:"done"`
	Called       int64      `json:"called"`
	RecordsSpent int64      `json:"records_spent"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	// Outcome is COMPLETED, CANCELLED or "STOPPED: reason" once every
	// partition of the tenant finished the Run; "" while it runs.
	Outcome string     `json:"outcome,omitempty"`
	ETA     *time.Time `json:"eta,omitempty"`
	// Partitions report the Run; Pending of the tenant's partitions have
	// not finished it (or not started it yet).
	Partitions int `json:"partitions"`
	Pending    int `json:"pending_partitions"`
}

// Active is whether the Run has not ended.
func (r *Run) Active() bool { return r != nil && r.Outcome == "" }

// Succeeded is whether the Run ended COMPLETED.
func (r *Run) Succeeded() bool { return r != nil && r.Outcome == schemas.RunCompleted }

// Tenants folds the status topic's records (the latest per key) and the
// control table into one view per tenant, sorted by tenant:
//   - counts add up over the tenant's partition records;
//   - state comes from the tenant's control record (the service's view,
//     which includes a 401/427 pause), else from the control table;
//   - an ACTIVE tenant whose every current profile was skipped at the map
//     stage shows NEEDS_ATTENTION with the reason;
//   - the current Run is the most recently requested one any partition
//     reports; it has ended once every partition holding the tenant's
//     profiles reports an outcome for it;
//   - last refresh is the latest end of a Run on any partition, next is
//     last plus the mapping's refresh interval (when one is set).
func Tenants(records []schemas.Status, control []controlplane.TenantState, now time.Time) []Tenant {
	type acc struct {
		view    Tenant
		control *schemas.Status
		parts   []schemas.Status
		mapping *schemas.Mapping
		table   *controlplane.TenantState
	}
	tenants := map[string]*acc{}
	get := func(id string) *acc {
		a := tenants[id]
		if a == nil {
			a = &acc{view: Tenant{TenantID: id, SkippedReasons: map[string]int64{}}}
			tenants[id] = a
		}
		return a
	}
	for i := range control {
		a := get(control[i].TenantID)
		a.table = &control[i]
		a.mapping = control[i].Mapping
	}
	for _, s := range records {
		a := get(s.TenantID)
		if s.Partition == schemas.ControlPartition {
			s := s
			a.control = &s
			continue
		}
		a.parts = append(a.parts, s)
	}
	out := make([]Tenant, 0, len(tenants))
	for _, a := range tenants {
		v := &a.view
		var lastEnriched, lastRefresh, updated time.Time
		for _, s := range a.parts {
			v.Partitions++
			v.Profiles += s.Profiles
			v.Enriched += s.Enriched
			v.NotMatched += s.NotMatched
			v.Skipped += s.Skipped
			v.Failed += s.Failed
			v.CreditsSpent += s.CreditsSpent
			for r, n := range s.SkippedReasons {
				v.SkippedReasons[r] += n
			}
			lastEnriched = later(lastEnriched, s.LastEnrichedAt)
			lastRefresh = later(lastRefresh, s.LastRefreshAt)
			updated = later(updated, s.UpdatedAt)
		}
		switch {
		case a.control != nil:
			v.State, v.StateReason = a.control.State, a.control.StateReason
			v.RefusedControlEvents, v.LastRefusedReason = a.control.RefusedControl, a.control.LastRefused
			v.RefusedByReason = a.control.RefusedByReason
			updated = later(updated, a.control.UpdatedAt)
		case a.table != nil:
			v.State, v.StateReason = a.table.State, a.table.Reason
			v.RefusedControlEvents, v.LastRefusedReason = a.table.Refused, a.table.LastRefused
		default:
			v.State = schemas.StateNotConnected
		}
		if v.State == schemas.StateActive {
			if reason, ok := needsAttention(*v, a.mapping); ok {
				v.State, v.StateReason = StateNeedsAttention, reason
			}
		}
		v.LastEnrichedAt, v.LastRefreshAt, v.UpdatedAt = optTime(lastEnriched), optTime(lastRefresh), optTime(updated)
		if a.mapping != nil && a.mapping.RefreshInterval > 0 {
			v.RefreshIntervalSeconds = int64(a.mapping.RefreshInterval / time.Second)
			if !lastRefresh.IsZero() {
				v.NextRefreshAt = optTime(lastRefresh.Add(a.mapping.RefreshInterval))
			}
		}
		v.Run = viewRun(a.parts, now)
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TenantID < out[j].TenantID })
	return out
}

// needsAttention is why an ACTIVE tenant cannot enrich anything: every
// current profile skipped at the map stage.
func needsAttention(v Tenant, m *schemas.Mapping) (string, bool) {
	if v.Profiles == 0 {
		return "", false
	}
	var mapSkips int64
	for r, n := range v.SkippedReasons {
		if strings.HasPrefix(r, "map.") {
			mapSkips += n
		}
	}
	if mapSkips < v.Profiles {
		return "", false
	}
	top := TopReasons(v.SkippedReasons, 1)[0].Reason
	reason := "every current profile is skipped: " + top
	if top == ReasonMissingName && m != nil {
		reason += " (the mapped name attribute " + m.NameAttribute + " is blank or absent in every profile; check the mapping)"
	}
	return reason, true
}

// viewRun sums the most recently requested Run over the partitions.
func viewRun(parts []schemas.Status, now time.Time) *Run {
	var cur *schemas.RunProgress
	for _, s := range parts {
		if r := s.Run; r != nil && (cur == nil || r.RequestedAt.After(cur.RequestedAt) ||
			(r.RequestedAt.Equal(cur.RequestedAt) && r.RunID > cur.RunID)) {
			cur = r
		}
	}
	if cur == nil {
		return nil
	}
	v := &Run{RunID: cur.RunID, Force: cur.Force, Scheduled: cur.Scheduled, RequestedAt: cur.RequestedAt}
	var started, finished time.Time
	var stopped, cancelled string
	for _, s := range parts {
		r := s.Run
		if r == nil || r.RunID != cur.RunID {
			// A partition holding the tenant's profiles that does not report
			// the Run yet has not started it.
			if s.Profiles > 0 {
				v.Pending++
			}
			continue
		}
		v.Partitions++
		if r.Scope < 0 || v.Scope < 0 {
			v.Scope = -1
		} else {
			v.Scope += r.Scope
		}
		v.Done += r.Done
		v.Called += r.Called
		v.RecordsSpent += r.RecordsSpent
		if !r.StartedAt.IsZero() && (started.IsZero() || r.StartedAt.Before(started)) {
			started = r.StartedAt
		}
		switch {
		case r.Outcome == "":
			v.Pending++
		case strings.HasPrefix(r.Outcome, schemas.RunStopped):
			stopped = r.Outcome
		case r.Outcome == schemas.RunCancelled:
			cancelled = r.Outcome
		}
		finished = later(finished, r.FinishedAt)
	}
	v.StartedAt = optTime(started)
	if v.Pending == 0 {
		v.Outcome = schemas.RunCompleted
		switch {
		case stopped != "":
			v.Outcome = stopped
		case cancelled != "":
			v.Outcome = cancelled
		}
		v.FinishedAt = optTime(finished)
		return v
	}
	if v.Scope >= 0 {
		if at, ok := ETA(v.Done, v.Scope, started, now); ok {
			v.ETA = &at
		}
	}
	return v
}

// ETA estimates when total is done, at the rate at which done took since
// started; false when there is no rate yet.
func ETA(done, total int64, started, now time.Time) (time.Time, bool) {
	elapsed := now.Sub(started)
	if done <= 0 || started.IsZero() || elapsed <= 0 {
		return time.Time{}, false
	}
	if done >= total {
		return now, true
	}
	return now.Add(elapsed / time.Duration(done) * time.Duration(total-done)), true
}

// ReasonCount is one reason and how many profiles it holds.
type ReasonCount struct {
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// TopReasons lists the n most frequent reasons, most frequent first (ties
// by name, so the order is stable); at least one entry when m is not empty.
func TopReasons(m map[string]int64, n int) []ReasonCount {
	out := make([]ReasonCount, 0, len(m))
	for r, c := range m {
		if c > 0 {
			out = append(out, ReasonCount{r, c})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	if len(out) == 0 {
		return []ReasonCount{{Reason: "-"}}
	}
	return out[:min(n, len(out))]
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
