package schemas

import (
	"context"
	"time"
)

// Tenant states shown in status.
const (
	StateActive       = "ACTIVE"
	StatePaused       = "PAUSED"
	StateNoConsent    = "NO_CONSENT"
	StateNotConnected = "NOT_CONNECTED"
	StateRemoved      = "REMOVED"
)

// Run outcomes, as written in RunProgress.Outcome (STOPPED carries its
// reason after a colon, e.g. "STOPPED: gate.no_consent").
const (
	RunCompleted = "COMPLETED"
	RunCancelled = "CANCELLED"
	RunStopped   = "STOPPED"
)

// Status is an EnrichmentStatus event: one tenant's counts on one partition,
// or (Partition == ControlPartition) the tenant's control-plane record.
type Status struct {
	TenantID        string
	Partition       int32
	State           string
	StateReason     string
	UpdatedAt       time.Time
	LastEnrichedAt  time.Time
	Profiles        int64
	Enriched        int64
	NotMatched      int64
	Skipped         int64
	Failed          int64
	CreditsSpent    int64
	CommittedOffset int64
	RefusedControl  int64
	LastRefused     string
	SkippedReasons  map[string]int64
	LastRefreshAt   time.Time
	Run             *RunProgress
	// Control record only.
	RefusedByReason  map[string]int64
	ControlSequences map[string]int64
	AppliedControl   map[string]string
}

// RunProgress is a Run's progress on one partition.
type RunProgress struct {
	RunID        string
	Force        bool
	Scheduled    bool
	RequestedAt  time.Time
	Scope        int64 // -1 while the scope is being read
	Done         int64
	Called       int64
	RecordsSpent int64
	StartedAt    time.Time
	FinishedAt   time.Time
	Outcome      string // "" while running
}

// ControlPartition is the partition number of a tenant's control-level status record.
const ControlPartition = -1

// Native is the goavro form of s.
func (s Status) Native() map[string]any {
	var run map[string]any
	if r := s.Run; r != nil {
		run = map[string]any{"run_id": r.RunID, "force": r.Force, "scheduled": r.Scheduled, "requested_at": r.RequestedAt,
			"scope": r.Scope, "done": r.Done, "called": r.Called, "records_spent": r.RecordsSpent,
			"started_at": optTime(r.StartedAt), "finished_at": optTime(r.FinishedAt), "outcome": optString(r.Outcome)}
	}
	return map[string]any{
		"tenant_id": s.TenantID, "partition": s.Partition, "state": s.State, "state_reason": optString(s.StateReason),
		"updated_at": s.UpdatedAt, "last_enriched_at": optTime(s.LastEnrichedAt), "profiles": s.Profiles,
		"enriched": s.Enriched, "not_matched": s.NotMatched, "skipped": s.Skipped, "failed": s.Failed,
		"credits_spent": s.CreditsSpent, "committed_offset": s.CommittedOffset,
		"refused_control_events": s.RefusedControl, "last_refused_reason": optString(s.LastRefused),
		"skipped_reasons": longMap(s.SkippedReasons), "last_refresh_at": optTime(s.LastRefreshAt),
		"run":               optRecord("com.enrichment.leadspace.RunProgress", run),
		"refused_by_reason": longMap(s.RefusedByReason), "control_sequences": longMap(s.ControlSequences),
		"applied_control": stringMap(s.AppliedControl),
	}
}

// DecodeStatus decodes a framed EnrichmentStatus value.
func (c *Codec) DecodeStatus(ctx context.Context, value []byte) (Status, error) {
	m, err := c.Decode(ctx, EnrichmentStatus, value)
	if err != nil {
		return Status{}, err
	}
	r := &record{m: m}
	s := Status{TenantID: r.str("tenant_id"), Partition: int32(r.long("partition")), State: r.str("state"),
		StateReason: r.str("state_reason"), UpdatedAt: r.time("updated_at"), LastEnrichedAt: r.time("last_enriched_at"),
		Profiles: r.long("profiles"), Enriched: r.long("enriched"), NotMatched: r.long("not_matched"),
		Skipped: r.long("skipped"), Failed: r.long("failed"), CreditsSpent: r.long("credits_spent"),
		CommittedOffset: r.long("committed_offset"), RefusedControl: r.long("refused_control_events"), LastRefused: r.str("last_refused_reason"),
		SkippedReasons: r.longMap("skipped_reasons"), LastRefreshAt: r.time("last_refresh_at"),
		RefusedByReason: r.longMap("refused_by_reason"), ControlSequences: r.longMap("control_sequences"),
		AppliedControl: r.optStringMap("applied_control")}
	if run := r.sub("run"); run != nil {
		s.Run = &RunProgress{RunID: run.str("run_id"), Force: run.boolean("force"), Scheduled: run.boolean("scheduled"),
			RequestedAt: run.time("requested_at"), Scope: run.long("scope"), Done: run.long("done"), Called: run.long("called"),
			RecordsSpent: run.long("records_spent"), StartedAt: run.time("started_at"), FinishedAt: run.time("finished_at"),
			Outcome: run.str("outcome")}
		if run.err != nil && r.err == nil {
			r.err = run.err
		}
	}
	return s, r.err
}
