package admin

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

func TestPreviewRun(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mapping := &schemas.Mapping{NameAttribute: "CompanyName", WebsiteAttribute: "Website", RefreshInterval: 24 * time.Hour}
	active := controlplane.TenantState{TenantID: "acme", State: schemas.StateActive, Mapping: mapping}
	p := func(id, name, site string) currentProfile {
		return currentProfile{key: "acme/" + id, profile: company("acme", id, name, site)}
	}
	fp := func(cp currentProfile) string {
		f, _, err := processor.MapProfile(cp.profile, *mapping)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	fresh, stale, changed, neverAnswered := p("fresh", "A", "a.org"), p("stale", "B", "b.org"), p("changed", "C", "c-new.org"), p("new", "D", "d.org")
	skippedBefore := p("skipped-before", "E", "e.org")
	profiles := []currentProfile{fresh, stale, changed, neverAnswered, skippedBefore,
		p("blank", " ", "x.org"), p("huge", strings.Repeat("n", 600), "h.org"),
		{key: "acme/garbage", err: &schemas.DecodeError{Reason: schemas.ReasonBadAvro, Err: errors.New("bad")}},
		{key: "acme/other", profile: company("acme", "mismatch", "F", "f.org")}}
	prior := map[string]priorAnswer{
		fresh.key:         {fingerprint: fp(fresh), status: schemas.StatusNotMatched, at: now.Add(-time.Hour)},
		stale.key:         {fingerprint: fp(stale), status: schemas.StatusEnriched, at: now.Add(-25 * time.Hour)},
		changed.key:       {fingerprint: "an older fingerprint", status: schemas.StatusEnriched, at: now.Add(-time.Hour)},
		skippedBefore.key: {fingerprint: "-", status: schemas.StatusSkipped, at: now.Add(-time.Hour)},
	}
	cases := []struct {
		name  string
		state controlplane.TenantState
		force bool
		want  RunPreview
	}{
		{"stale-only", active, false, RunPreview{Profiles: 7, WouldCall: 4, New: 2, Changed: 1, Stale: 1, Unchanged: 1, Skipped: 1, InputErrors: 1, Invalid: 2}},
		{"force", active, true, RunPreview{Profiles: 7, WouldCall: 5, New: 2, Changed: 1, Stale: 1, Forced: 1, Skipped: 1, InputErrors: 1, Invalid: 2}},
		{"no consent: all skipped", controlplane.TenantState{TenantID: "acme", State: schemas.StateNoConsent, Mapping: mapping}, true,
			RunPreview{Profiles: 7, Skipped: 7, Invalid: 2}},
		{"paused: dead letters", controlplane.TenantState{TenantID: "acme", State: schemas.StatePaused, Reason: "gate.paused: leadspace.unauthorized", Mapping: mapping}, false,
			RunPreview{Profiles: 7, InputErrors: 7, Invalid: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := previewRun(c.state, profiles, prior, c.force, now)
			g, w := got, c.want
			if g.Profiles != w.Profiles || g.WouldCall != w.WouldCall || g.New != w.New || g.Changed != w.Changed || g.Stale != w.Stale ||
				g.Forced != w.Forced || g.Unchanged != w.Unchanged || g.Skipped != w.Skipped || g.InputErrors != w.InputErrors || g.Invalid != w.Invalid {
				t.Fatalf("got  %+v\nwant %+v", g, w)
			}
			if g.Profiles != g.WouldCall+g.Unchanged+g.Skipped+g.InputErrors {
				t.Fatalf("in scope %d != calls + unchanged + skipped + input errors", g.Profiles)
			}
		})
	}
	got := previewRun(active, profiles, prior, false, now)
	if got.SkippedReasons[processor.ReasonMissingName] != 1 || got.InputErrorReasons[processor.ReasonFieldTooLong] != 1 ||
		got.InvalidReasons[schemas.ReasonBadAvro] != 1 || got.InvalidReasons[processor.ReasonKeyMismatch] != 1 {
		t.Fatalf("reasons: skipped %v, input errors %v, invalid %v", got.SkippedReasons, got.InputErrorReasons, got.InvalidReasons)
	}
}

func TestEstimateRun(t *testing.T) {
	for _, c := range []struct {
		calls, tx int
		mode      string
		seconds   float64
	}{{0, 0, "single", 0}, {15, 15, "single", 0.5}, {20, 2, "bulk", 0.07}, {500, 2, "bulk", 0.07}, {501, 4, "bulk", 0.13}, {20000, 80, "bulk", 2.67}} {
		e := estimateRun(c.calls, 30, 20)
		if e.Records != c.calls || e.Transactions != c.tx || e.Mode != c.mode || e.Seconds != c.seconds || e.Assumption == "" {
			t.Errorf("%d calls: %+v, want %d transactions (%s), %gs", c.calls, e, c.tx, c.mode, c.seconds)
		}
	}
}

func TestPlanReplay(t *testing.T) {
	now := time.Now()
	dl := func(id, tenant, reason string, replayable bool, count int32) *DeadLetter {
		return &DeadLetter{Dead: schemas.Dead{ID: id, TenantID: tenant, Reason: reason, Replayable: replayable, ReplayCount: count,
			Stage: schemas.StageEnrich, ErrorClass: "auth", SourceTopic: "profile-unified", LastFailureAt: now.Add(-time.Hour)}}
	}
	receipted := dl("r", "acme", "gate.paused", true, 0)
	receipted.Receipt = &Receipt{ReplayID: "x", Count: 1, At: now}
	truncated := dl("t", "acme", "decode.too_large", true, 0)
	truncated.Dead.OriginalValueTruncated = true
	headerCount := dl("h", "acme", "gate.paused", true, 1)
	headerCount.Dead.OriginalHeaders = []schemas.Header{{Key: processor.HeaderReplayCount, Value: []byte("3")}}
	letters := []*DeadLetter{
		dl("a", "acme", "leadspace.unauthorized", true, 0),
		dl("b", "acme", "gate.paused", true, 2),
		dl("c", "acme", "gate.paused", true, 3), // at the limit
		dl("d", "acme", "leadspace.input_rejected", false, 0),
		dl("e", "beta", "gate.paused", true, 0), // another tenant
		receipted, truncated, headerCount,
	}
	p := planReplay(letters, Filter{Tenant: "acme"}, ReplayOptions{MaxReplays: 3})
	var ids []string
	for _, e := range p.replay {
		ids = append(ids, e.Dead.ID)
	}
	if strings.Join(ids, ",") != "a,b" || p.alreadyReplayed != 1 || p.notReplayable["leadspace.input_rejected"] != 1 ||
		p.truncated != 1 || len(p.loopGuard) != 2 || p.loopGuard[0].Dead.ID != "c" || p.loopGuard[1].Dead.ID != "h" {
		t.Fatalf("replay %v, already %d, not replayable %v, truncated %d, loop guard %d", ids, p.alreadyReplayed, p.notReplayable, p.truncated, len(p.loopGuard))
	}
	p = planReplay(letters, Filter{Tenant: "acme", Reasons: []string{"leadspace.input_rejected"}}, ReplayOptions{MaxReplays: 3, IncludeUnreplayable: true})
	if len(p.replay) != 1 || p.replay[0].Dead.ID != "d" {
		t.Fatalf("--include-unreplayable --reason: %+v", p.replay)
	}
	if p := planReplay(letters, Filter{Since: now.Add(-30 * time.Minute)}, ReplayOptions{MaxReplays: 3}); len(p.replay) != 0 {
		t.Fatalf("--since 30m selected dead letters an hour old: %d", len(p.replay))
	}

	// A newer event of the same key supersedes the dead letter.
	p = planReplay(letters, Filter{Tenant: "acme"}, ReplayOptions{MaxReplays: 3})
	p.replay[0].Dead.OriginalKey, p.replay[0].Dead.SourceOffset = []byte("acme/1"), 10
	p.dropSuperseded(map[sourceKey]int64{{"profile-unified", 0, "acme/1"}: 11})
	if len(p.replay) != 1 || p.superseded != 1 {
		t.Fatalf("superseded: %d left, %d superseded", len(p.replay), p.superseded)
	}
}

func TestReplayedMessageKeepsTheInputAndCountsTheReplay(t *testing.T) {
	e := &DeadLetter{Dead: schemas.Dead{ID: "dl-1", OriginalKey: []byte("acme/p1"), OriginalValue: []byte{0, 1, 2}, SourceTopic: "profile-unified",
		ReplayCount: 1, OriginalHeaders: []schemas.Header{{Key: "trace", Value: []byte("abc")}, {Key: processor.HeaderReplayCount, Value: []byte("1")}}}}
	m := replayedMessage(e, e.ReplayCount()+1)
	if m.Topic != "profile-unified" || string(m.Key) != "acme/p1" || string(m.Value) != "\x00\x01\x02" {
		t.Fatalf("%+v", m)
	}
	h := map[string]string{}
	for _, x := range m.Headers {
		if _, dup := h[x.Key]; dup {
			t.Fatalf("header %s twice", x.Key)
		}
		h[x.Key] = string(x.Value)
	}
	if h["trace"] != "abc" || h[processor.HeaderReplayCount] != "2" || h[HeaderReplayOf] != "dl-1" {
		t.Fatalf("headers %v", h)
	}
	r, id, ok := receiptOf(receiptMessage("dlq", e, "replay-1", "alice", 2, time.Now()))
	if !ok || id != "dl-1" || r.ReplayID != "replay-1" || r.Count != 2 || r.By != "alice" {
		t.Fatalf("receipt %+v %s %v", r, id, ok)
	}
}

// control show tells the applied event, its copies, history, a replay, a
// forgery and a lost event apart, from the log and the service's record.
func TestControlShowMatchesRecordsWithWhatTheServiceApplied(t *testing.T) {
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	ev := func(tenant, id string, seq int64, c schemas.Control) *schemas.Control {
		c.TenantID, c.EventID, c.Sequence, c.IssuedAt, c.IssuedBy = tenant, id, seq, at, "admin"
		return &c
	}
	give := ev("acme", "give", 2, schemas.Control{Consent: &schemas.Consent{Given: true}, Signature: "bytes:c2ln"})
	withdraw := ev("acme", "withdraw", 3, schemas.Control{Consent: &schemas.Consent{Given: false}, Signature: "c2ln"})
	rec := func(offset int64, key string, e *schemas.Control, verdict string) controlplane.Record {
		return controlplane.Record{Key: key, Offset: offset, Event: e, Verdict: verdict, KeysHere: true}
	}
	records := []controlplane.Record{
		rec(0, "acme/connection", ev("acme", "conn", 1, schemas.Control{Connection: &schemas.Connection{DisplayName: "Acme", TokenRef: "plain:tok-SECRET"}}), controlplane.VerdictVerified),
		rec(1, "acme/consent", give, controlplane.VerdictVerified),
		rec(2, "acme/consent", withdraw, controlplane.VerdictVerified),
		rec(3, "acme/consent", give, controlplane.VerdictVerified),     // the replay
		rec(4, "acme/consent", withdraw, controlplane.VerdictVerified), // the service's copy
		rec(5, "acme/mapping", ev("acme", "forged", 99, schemas.Control{Mapping: &schemas.Mapping{NameAttribute: "X"}}), controlplane.VerdictUnverified),
		rec(6, "acme/removal", nil, controlplane.ReasonTombstone),
		rec(7, "globex/consent", ev("globex", "g", 5, schemas.Control{Consent: &schemas.Consent{Given: true}}), controlplane.VerdictVerified),
	}
	applied := map[string]schemas.Status{"acme": {TenantID: "acme", Partition: schemas.ControlPartition, State: schemas.StateNoConsent,
		StateReason: "gate.no_consent", RefusedControl: 3,
		ControlSequences: map[string]int64{"connection": 1, "consent": 3, "mapping": 2, "@0": 7},
		AppliedControl:   map[string]string{"connection": "conn", "consent": "withdraw", "mapping": "map-1"}}}
	view := buildControlView(records, applied, "", true)
	want := []string{"applied", "superseded", "applied", "refused (replay: sequence not above 3)", "applied", "not applied", "refused",
		"unknown (not reported)"}
	// What each signature covers: the encoded event, or the legacy text.
	signed := []string{"", "bytes", "canonical text (re-issue)", "bytes", "canonical text (re-issue)", "", "", ""}
	for i, r := range view.Records {
		if r.Service != want[i] {
			t.Errorf("record %d (%s): %q, want %q", r.Offset, r.Key, r.Service, want[i])
		}
		if r.Signed != signed[i] {
			t.Errorf("record %d (%s): signed %q, want %q", r.Offset, r.Key, r.Signed, signed[i])
		}
		if strings.Contains(r.Detail, "tok-SECRET") {
			t.Errorf("record %d shows the token: %q", r.Offset, r.Detail)
		}
	}
	acme, globex := tenantOf(t, view, "acme"), tenantOf(t, view, "globex")
	if acme.State != schemas.StateNoConsent || acme.Applied["consent"].Summary != "withdrawn" || acme.Applied["mapping"] != nil ||
		!slices.Equal(acme.Lost, []string{"mapping"}) {
		t.Errorf("acme: %+v (consent %+v)", acme, acme.Applied["consent"])
	}
	if globex.Reported || globex.Applied["consent"].Summary != "given (not applied yet)" {
		t.Errorf("globex, not reported by the service: %+v", globex)
	}
	if latest := buildControlView(records, applied, "acme", false); len(latest.Records) != 4 || len(latest.Tenants) != 1 {
		t.Errorf("the latest record of each of acme's keys: %d records, %d tenants", len(latest.Records), len(latest.Tenants))
	}
}

func tenantOf(t *testing.T, v ControlView, id string) *ControlTenant {
	t.Helper()
	for _, r := range v.Tenants {
		if r.Tenant == id {
			return r
		}
	}
	t.Fatalf("no tenant %s in %+v", id, v.Tenants)
	return nil
}

// company is a profile of tenant with the demo's attributes.
func company(tenant, id, name, website string) schemas.Profile {
	return schemas.Profile{EventID: "ev-" + id, TenantID: tenant, ProfileID: id,
		Attributes: map[string]string{"CompanyName": name, "Website": website, "PrimaryEmail": "never-sent@" + id + ".example"}}
}
