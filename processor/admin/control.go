package admin

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// ControlLog is the control plane as `enricher control show` shows it:
// each tenant as the service applied it (from its status records), and the
// control records (only the last of each key unless all), each verified
// with the configured keys. Tokens are never shown. tenant "" is every
// tenant.
func (a *Admin) ControlLog(ctx context.Context, tenant string, all bool) (ControlView, error) {
	records, err := controlplane.ReadLog(ctx, a.cfg.Kafka, a.cfg.Topics.Control, a.codec, a.cfg.Auth)
	if err != nil {
		return ControlView{}, err
	}
	applied, err := controlplane.ReadApplied(ctx, a.cfg.Kafka, a.cfg.Topics.Status, a.codec)
	if err != nil {
		return ControlView{}, err
	}
	v := buildControlView(records, applied, tenant, all)
	v.Verified = a.cfg.Auth.Enabled()
	return v, nil
}

// ControlEvent is one control record as `control show` lists it.
type ControlEvent struct {
	Key       string    `json:"key"`
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	Sequence  int64     `json:"sequence,omitempty"`
	EventID   string    `json:"event_id,omitempty"`
	IssuedAt  time.Time `json:"issued_at,omitzero"`
	IssuedBy  string    `json:"issued_by,omitempty"`
	KeyID     string    `json:"key_id,omitempty"`
	// Signed is what the signature covers: bytes (the encoded event), or
	// "canonical text (re-issue)" for the legacy scheme. Empty: unsigned.
	Signed  string `json:"signed,omitempty"`
	Summary string `json:"summary,omitempty"`
	// Signature is verified, unverified (no key here to check it) or the
	// reason the service refuses the record.
	Signature string `json:"signature"`
	Detail    string `json:"detail,omitempty"`
	// Service is what the service did with it, from its control record:
	// applied, refused, superseded, not applied (yet), or unknown.
	Service string `json:"service"`
}

// ControlTenant is one tenant as `control show` shows it: the state and
// events the service applied, never an unverified event as the state.
type ControlTenant struct {
	Tenant string `json:"tenant"`
	// State and StateReason are the service's, from the tenant/control
	// status record: what `enricher status` shows.
	State       string `json:"state"`
	StateReason string `json:"state_reason,omitempty"`
	Reported    bool   `json:"reported"`
	// Applied holds, per kind, the event the service applied; Lost the
	// kinds it applied whose event is no longer on the topic.
	Applied         map[string]*ControlEvent `json:"applied"`
	Lost            []string                 `json:"lost,omitempty"`
	Refused         int64                    `json:"refused_control_events"`
	RefusedByReason map[string]int64         `json:"refused_by_reason,omitempty"`
}

// ControlView is the control plane: tenants and records.
type ControlView struct {
	// Verified: signatures were checked (the admin holds keys).
	Verified bool             `json:"-"`
	Tenants  []*ControlTenant `json:"tenants"`
	Records  []*ControlEvent  `json:"records"`
}

// buildControlView matches the control records with what the service says
// it applied. A tenant row shows only applied events (or, before the
// service reported on the tenant, verified ones marked so).
func buildControlView(records []controlplane.Record, applied map[string]schemas.Status, only string, all bool) ControlView {
	tenants := map[string]*ControlTenant{}
	row := func(id string) *ControlTenant {
		t := tenants[id]
		if t == nil {
			t = &ControlTenant{Tenant: id, State: "-", Applied: map[string]*ControlEvent{}}
			tenants[id] = t
		}
		return t
	}
	for id, s := range applied {
		t := row(id)
		t.State, t.StateReason, t.Reported = s.State, s.StateReason, true
		t.Refused, t.RefusedByReason = s.RefusedControl, s.RefusedByReason
	}
	last := map[string]int{} // key -> index of its last record: what compaction keeps
	for i, rec := range records {
		last[rec.Key] = i
	}
	seen := map[string]int64{} // key -> highest trusted sequence so far, as the service orders them
	rows := make([]*ControlEvent, len(records))
	for i, rec := range records {
		r := &ControlEvent{Key: rec.Key, Partition: rec.Partition, Offset: rec.Offset, Signature: rec.Verdict, Detail: rec.Detail}
		rows[i] = r
		tenant, kind, _ := strings.Cut(rec.Key, "/")
		s, reported := applied[tenant]
		if ev := rec.Event; ev != nil {
			r.Sequence, r.EventID, r.IssuedAt, r.IssuedBy, r.KeyID, r.Summary = ev.Sequence, ev.EventID, ev.IssuedAt, ev.IssuedBy, ev.KeyID, Summarize(*ev)
			r.Signed = controlplane.SchemeLabel(*ev)
			if ev.Connection != nil {
				r.Detail = controlplane.RedactTokenRef(ev.Connection.TokenRef)
			}
		}
		before := seen[rec.Key]
		if rec.Event != nil && rec.Trusted() {
			seen[rec.Key] = max(before, rec.Event.Sequence)
		}
		signedHere := rec.Verdict == controlplane.VerdictVerified || rec.Verdict == controlplane.VerdictUnverified
		switch bar := max(before, s.ControlSequences[kind]); {
		case !reported:
			r.Service = "unknown (not reported)"
		case signedHere && rec.Event.Key() == rec.Key && rec.Event.EventID == s.AppliedControl[kind] && rec.Event.Sequence == s.ControlSequences[kind]:
			r.Service = "applied"
			row(tenant).Applied[kind] = r
		case !signedHere:
			r.Service = "refused"
		case !rec.Trusted():
			// Signed by a key this admin does not hold: pending, or refused
			// for it (the tenant's refusal counts say which).
			r.Service = "not applied"
		case rec.Event.Sequence <= before || (i == last[rec.Key] && rec.Event.Sequence <= bar):
			r.Service = fmt.Sprintf("refused (replay: sequence not above %d)", bar)
		case i < last[rec.Key] && rec.Verdict == controlplane.VerdictVerified:
			r.Service = "superseded"
		default:
			r.Service = "not applied (yet)"
		}
	}
	for id, s := range applied {
		t := tenants[id]
		for kind, eventID := range s.AppliedControl {
			if schemas.ValidKind(kind) && eventID != "" && t.Applied[kind] == nil {
				t.Lost = append(t.Lost, kind)
			}
		}
		slices.Sort(t.Lost)
	}
	// Before the service reported on a tenant, show its verified events,
	// marked: never an unverified one as the tenant's state.
	for key, i := range last {
		tenant, kind, _ := strings.Cut(key, "/")
		if rec := records[i]; rec.Event == nil || rec.Verdict != controlplane.VerdictVerified {
			continue
		}
		if t := row(tenant); !t.Reported {
			r := *rows[i]
			r.Summary += " (not applied yet)"
			t.Applied[kind] = &r
		}
	}
	var view ControlView
	for id, t := range tenants {
		if only == "" || id == only {
			view.Tenants = append(view.Tenants, t)
		}
	}
	sort.Slice(view.Tenants, func(i, j int) bool { return view.Tenants[i].Tenant < view.Tenants[j].Tenant })
	for i, r := range rows {
		if tenant, _, ok := strings.Cut(r.Key, "/"); (all || i == last[r.Key]) && (only == "" || ok && tenant == only) {
			view.Records = append(view.Records, r)
		}
	}
	return view
}

// Summarize says what an event sets, without any token.
func Summarize(ev schemas.Control) string {
	switch {
	case ev.Connection != nil:
		return ev.Connection.DisplayName
	case ev.Consent != nil:
		if ev.Consent.Given {
			return "given"
		}
		return "withdrawn"
	case ev.Mapping != nil:
		m := ev.Mapping
		s := "name=" + m.NameAttribute
		if m.WebsiteAttribute != "" {
			s += " website=" + m.WebsiteAttribute
		}
		if m.LocationAttribute != "" {
			s += " location=" + m.LocationAttribute
		}
		if m.MinConfidence != "" {
			s += " min=" + m.MinConfidence
		}
		return s
	case ev.Removal != nil:
		if ev.Removal.Purge {
			return "removed with purge"
		}
		return "removed"
	case ev.Refresh != nil:
		switch {
		case ev.Refresh.Cancel:
			return "cancel run " + ev.Refresh.RunID
		case ev.Refresh.Force:
			return "run " + ev.Refresh.RunID + " (force)"
		}
		return "run " + ev.Refresh.RunID
	}
	return ""
}
