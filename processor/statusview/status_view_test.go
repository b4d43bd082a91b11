package statusview

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

func TestViewStatus(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	ctl := func(tenant, state, reason string) schemas.Status {
		return schemas.Status{TenantID: tenant, Partition: schemas.ControlPartition, State: state, StateReason: reason, UpdatedAt: ago(time.Minute)}
	}
	part := func(tenant string, p int32, profiles, enriched, notMatched, skipped, failed int64, reasons map[string]int64, run *schemas.RunProgress) schemas.Status {
		return schemas.Status{TenantID: tenant, Partition: p, Profiles: profiles, Enriched: enriched, NotMatched: notMatched,
			Skipped: skipped, Failed: failed, SkippedReasons: reasons, CreditsSpent: enriched + notMatched, Run: run}
	}
	run := func(id string, scope, done int64, outcome string) *schemas.RunProgress {
		r := &schemas.RunProgress{RunID: id, RequestedAt: ago(10 * time.Minute), StartedAt: ago(10 * time.Minute), Scope: scope, Done: done, Outcome: outcome}
		if outcome != "" {
			r.FinishedAt = ago(time.Minute)
		}
		return r
	}
	mapping := &schemas.Mapping{NameAttribute: "NoSuchField", RefreshInterval: 7 * 24 * time.Hour}

	cases := []struct {
		name    string
		records []schemas.Status
		control []controlplane.TenantState
		check   func(t *testing.T, v Tenant)
	}{{
		name: "counts add up over partitions; state from the control record",
		records: []schemas.Status{ctl("acme", schemas.StateActive, ""),
			part("acme", 0, 10, 7, 1, 2, 0, map[string]int64{"map.missing_company_name": 2}, nil),
			part("acme", 1, 5, 4, 0, 0, 1, nil, nil)},
		check: func(t *testing.T, v Tenant) {
			if v.State != schemas.StateActive || v.Profiles != 15 || v.Enriched != 11 || v.NotMatched != 1 || v.Skipped != 2 ||
				v.Failed != 1 || v.CreditsSpent != 12 || v.Partitions != 2 || v.SkippedReasons["map.missing_company_name"] != 2 {
				t.Fatalf("%+v", v)
			}
		},
	}, {
		name: "every profile skipped for a missing mapped field: NEEDS_ATTENTION, not ACTIVE",
		records: []schemas.Status{ctl("acme", schemas.StateActive, ""),
			part("acme", 0, 3, 0, 0, 3, 0, map[string]int64{ReasonMissingName: 3}, nil),
			part("acme", 2, 2, 0, 0, 2, 0, map[string]int64{ReasonMissingName: 2}, nil)},
		control: []controlplane.TenantState{{TenantID: "acme", State: schemas.StateActive, Mapping: mapping}},
		check: func(t *testing.T, v Tenant) {
			if v.State != StateNeedsAttention || !strings.Contains(v.StateReason, ReasonMissingName) || !strings.Contains(v.StateReason, "NoSuchField") {
				t.Fatalf("state %q (%s)", v.State, v.StateReason)
			}
		},
	}, {
		name: "some profiles enriched: still ACTIVE",
		records: []schemas.Status{ctl("acme", schemas.StateActive, ""),
			part("acme", 0, 3, 1, 0, 2, 0, map[string]int64{ReasonMissingName: 2}, nil)},
		check: func(t *testing.T, v Tenant) {
			if v.State != schemas.StateActive {
				t.Fatalf("state %q (%s)", v.State, v.StateReason)
			}
		},
	}, {
		name: "a paused tenant stays PAUSED with its reason, even when every profile is skipped",
		records: []schemas.Status{ctl("acme", schemas.StatePaused, "gate.paused: leadspace.unauthorized"),
			part("acme", 0, 3, 0, 0, 3, 0, map[string]int64{ReasonMissingName: 3}, nil)},
		check: func(t *testing.T, v Tenant) {
			if v.State != schemas.StatePaused || v.StateReason != "gate.paused: leadspace.unauthorized" {
				t.Fatalf("state %q (%s)", v.State, v.StateReason)
			}
		},
	}, {
		name:    "a tenant known only from the control table",
		control: []controlplane.TenantState{{TenantID: "beta", State: schemas.StateNoConsent, Reason: controlplane.ReasonNoConsent}},
		check: func(t *testing.T, v Tenant) {
			if v.TenantID != "beta" || v.State != schemas.StateNoConsent || v.Profiles != 0 || v.Run != nil {
				t.Fatalf("%+v", v)
			}
		},
	}, {
		name: "a Run in progress: summed, with an ETA; a partition not reporting it yet is pending",
		records: []schemas.Status{
			part("acme", 0, 100, 0, 0, 0, 0, nil, run("r2", 100, 50, "")),
			part("acme", 1, 100, 0, 0, 0, 0, nil, run("r2", 100, 100, schemas.RunCompleted)),
			part("acme", 2, 40, 0, 0, 0, 0, nil, run("r1", 40, 40, schemas.RunCompleted))},
		check: func(t *testing.T, v Tenant) {
			r := v.Run
			if r == nil || r.RunID != "r2" || r.Scope != 200 || r.Done != 150 || !r.Active() || r.Pending != 2 || r.Partitions != 2 {
				t.Fatalf("%+v", r)
			}
			// 150 done in 10 minutes: 50 more take 3m20s.
			if r.ETA == nil || !r.ETA.Equal(now.Add(200*time.Second)) {
				t.Fatalf("ETA %v, want %v", r.ETA, now.Add(200*time.Second))
			}
		},
	}, {
		name: "a partition still reading its scope: scope unknown, no ETA",
		records: []schemas.Status{
			part("acme", 0, 10, 0, 0, 0, 0, nil, run("r", -1, 0, "")),
			part("acme", 1, 10, 0, 0, 0, 0, nil, run("r", 10, 5, ""))},
		check: func(t *testing.T, v Tenant) {
			if v.Run.Scope != -1 || v.Run.ETA != nil || !v.Run.Active() {
				t.Fatalf("%+v", v.Run)
			}
		},
	}, {
		name: "every partition finished: COMPLETED; last and next refresh",
		records: []schemas.Status{
			func() schemas.Status {
				s := part("acme", 0, 10, 10, 0, 0, 0, nil, run("r", 10, 10, schemas.RunCompleted))
				s.LastRefreshAt = ago(time.Minute)
				return s
			}(),
			part("acme", 1, 0, 0, 0, 0, 0, nil, nil)},
		control: []controlplane.TenantState{{TenantID: "acme", State: schemas.StateActive, Mapping: mapping}},
		check: func(t *testing.T, v Tenant) {
			if !v.Run.Succeeded() || v.Run.Pending != 0 || v.Run.FinishedAt == nil {
				t.Fatalf("%+v", v.Run)
			}
			if v.LastRefreshAt == nil || !v.LastRefreshAt.Equal(ago(time.Minute)) ||
				v.NextRefreshAt == nil || !v.NextRefreshAt.Equal(ago(time.Minute).Add(7*24*time.Hour)) || v.RefreshIntervalSeconds != 7*24*3600 {
				t.Fatalf("last %v next %v interval %d", v.LastRefreshAt, v.NextRefreshAt, v.RefreshIntervalSeconds)
			}
		},
	}, {
		name: "one partition stopped: the Run is STOPPED with the reason once all ended",
		records: []schemas.Status{
			part("acme", 0, 10, 0, 0, 0, 0, nil, run("r", 10, 10, schemas.RunCompleted)),
			part("acme", 1, 10, 0, 0, 0, 0, nil, run("r", 10, 3, "STOPPED: gate.no_consent"))},
		check: func(t *testing.T, v Tenant) {
			if v.Run.Outcome != "STOPPED: gate.no_consent" || v.Run.Succeeded() || v.Run.Active() {
				t.Fatalf("%+v", v.Run)
			}
		},
	}, {
		name: "cancelled",
		records: []schemas.Status{
			part("acme", 0, 10, 0, 0, 0, 0, nil, run("r", 10, 4, schemas.RunCancelled)),
			part("acme", 1, 10, 0, 0, 0, 0, nil, run("r", 10, 10, schemas.RunCompleted))},
		check: func(t *testing.T, v Tenant) {
			if v.Run.Outcome != schemas.RunCancelled {
				t.Fatalf("%+v", v.Run)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			views := Tenants(c.records, c.control, now)
			if len(views) != 1 {
				t.Fatalf("%d views, want 1: %+v", len(views), views)
			}
			c.check(t, views[0])
		})
	}
}

// status --json must read like the Avro contract: snake_case, no Go names.
func TestTenantViewJSONUsesContractNames(t *testing.T) {
	now := time.Now()
	v := Tenants([]schemas.Status{{TenantID: "acme", Partition: 0, Profiles: 2, NotMatched: 1, CreditsSpent: 1,
		Run: &schemas.RunProgress{RunID: "r", Scope: 2, Done: 1, RecordsSpent: 1, StartedAt: now.Add(-time.Second), RequestedAt: now}}}, nil, now)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"tenant_id":"acme"`, `"not_matched":1`, `"credits_spent":1`, `"skipped_reasons":{}`, `"run_id":"r"`, `"records_spent":1`, `"scope":2`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	for _, goName := range []string{"TenantID", "NotMatched", "CreditsSpent", "CommittedOffset", "RunID"} {
		if strings.Contains(string(b), `"`+goName+`"`) {
			t.Errorf("%s has the Go field name %s", b, goName)
		}
	}
}

func TestTopReasons(t *testing.T) {
	got := TopReasons(map[string]int64{"b": 2, "a": 2, "c": 5, "z": 0}, 2)
	if len(got) != 2 || got[0] != (ReasonCount{"c", 5}) || got[1] != (ReasonCount{"a", 2}) {
		t.Fatalf("%+v", got)
	}
	if got := TopReasons(nil, 3); len(got) != 1 || got[0].Reason != "-" {
		t.Fatalf("%+v", got)
	}
}
