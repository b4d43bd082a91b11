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

// Status is an EnrichmentStatus event: one tenant's counts on one partition.
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
}

// ControlPartition is the partition number of a tenant's control-level status record.
const ControlPartition = -1

// Native is the goavro form of s.
func (s Status) Native() map[string]any {
	return map[string]any{
		"tenant_id": s.TenantID, "partition": s.Partition, "state": s.State, "state_reason": optString(s.StateReason),
		"updated_at": s.UpdatedAt, "last_enriched_at": optTime(s.LastEnrichedAt), "profiles": s.Profiles,
		"enriched": s.Enriched, "not_matched": s.NotMatched, "skipped": s.Skipped, "failed": s.Failed,
		"credits_spent": s.CreditsSpent, "committed_offset": s.CommittedOffset,
		"refused_control_events": s.RefusedControl, "last_refused_reason": optString(s.LastRefused),
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
		CommittedOffset: r.long("committed_offset"), RefusedControl: r.long("refused_control_events"), LastRefused: r.str("last_refused_reason")}
	return s, r.err
}
