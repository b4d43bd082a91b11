package processor_test

import (
	"bytes"
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

func singleCallsAt(tps float64) startOpt {
	return func(_ *processor.Config, ls *leadspace.Config) {
		ls.TPS = tps
		ls.BulkThreshold = 1 << 30 // never bulk: each record is its own request
	}
}

func TestConsentWithdrawnMidRunStopsRequestsWithinASecond(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	e.start(singleCallsAt(50))
	const n = 10_000
	ps := companies(n, "acme")
	e.produceProfiles(ps...)
	retrytest.Wait(t, 30*time.Second, "20 requests of acme at Leadspace", func() bool { return len(e.callsFor("acme")) >= 20 })

	e.control(schemas.Control{TenantID: "acme", Consent: &schemas.Consent{Given: false}})
	acked := time.Now()

	out := e.waitOutputs(120*time.Second, func(o outputs) bool { return len(o.enriched) == n })
	late := 0
	for _, c := range e.callsFor("acme") {
		if c.Time.After(acked.Add(time.Second)) {
			late++
		}
	}
	if late > 0 {
		t.Fatalf("%d requests for acme started more than 1s after consent was withdrawn", late)
	}
	skipped := 0
	for _, ev := range out.enriched {
		if ev.Status == schemas.StatusSkipped && ev.SkipReason == controlplane.ReasonNoConsent {
			skipped++
		}
	}
	if skipped < n/2 {
		t.Fatalf("only %d of %d queued events were skipped for lack of consent", skipped, n)
	}
	t.Logf("%d requests before the withdrawal took effect; %d events skipped after it", len(e.callsFor("acme")), skipped)
}

func TestForgedOrReplayedControlEventsChangeNothing(t *testing.T) {
	acme, globex := tenant("acme"), tenant("globex")
	globex.consent = false
	e := newSignedEnv(t, "the-admin-key", acme, globex)
	e.start()

	forger := controlplane.Auth{Key: []byte("a-guess")}
	forged := schemas.Control{TenantID: "globex", Consent: &schemas.Consent{Given: true}}
	_ = forger.Sign(&forged)
	e.control(forged)
	// The right key id, a made-up signature.
	e.control(schemas.Control{TenantID: "globex", Consent: &schemas.Consent{Given: true}, Sequence: controlplane.NextSequence(0),
		KeyID: e.auth.KeyIDs()[0], Signature: "bm90IGEgc2lnbmF0dXJl"})
	redirect := schemas.Control{TenantID: "acme", Connection: &schemas.Connection{DisplayName: "evil", TokenRef: "plain:attacker-token"}}
	_ = forger.Sign(&redirect)
	e.control(redirect)
	// Unsigned, written past the admin commands.
	if _, err := e.prod.PublishControl(context.Background(), e.stack.Topics.Control,
		schemas.Control{TenantID: "globex", IssuedBy: "x", Consent: &schemas.Consent{Given: true}}); err != nil {
		t.Fatal(err)
	}
	// acme's genuine, signed consent written under globex's key.
	acmeConsent := e.lastControl("acme/consent")
	e.produceRaw(kafka.Message{Topic: e.stack.Topics.Control, Key: []byte("globex/consent"), Value: acmeConsent.Value})
	// Values that are no event at all, and a key that names no tenant.
	e.produceRaw(kafka.Message{Topic: e.stack.Topics.Control, Key: []byte("globex/mapping"), Value: []byte{}},
		kafka.Message{Topic: e.stack.Topics.Control, Key: []byte("globex/mapping"), Value: nil},
		kafka.Message{Topic: e.stack.Topics.Control, Key: []byte("no-tenant-here"), Value: acmeConsent.Value})

	ps := companies(50, "acme", "globex")
	e.produceProfiles(ps...)
	out := e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == 100 })

	if calls := e.callsFor("globex"); len(calls) != 0 {
		t.Fatalf("forged consent let %d requests out for globex", len(calls))
	}
	for _, c := range e.stack.Simulator.Calls() {
		if c.Program != "acme" {
			t.Fatalf("a request went out under program %q (status %d): the forged token reference was used", c.Program, c.Status)
		}
	}
	for key, ev := range out.enriched {
		if ev.TenantID == "acme" && ev.Status == schemas.StatusSkipped {
			t.Errorf("%s skipped: the forged connection disturbed acme", key)
		}
	}
	g := e.waitStatus("globex", 10*time.Second, func(s statusview.Tenant) bool { return s.RefusedControlEvents == 6 })
	a := e.waitStatus("acme", 10*time.Second, func(s statusview.Tenant) bool { return s.RefusedControlEvents == 1 })
	if g.State != schemas.StateNoConsent || a.State != schemas.StateActive {
		t.Fatalf("states after forgeries: globex %s, acme %s", g.State, a.State)
	}
	wantGlobex := map[string]int64{controlplane.ReasonUnknownKey: 1, controlplane.ReasonBadSignature: 1, controlplane.ReasonUnsigned: 1,
		controlplane.ReasonWrongKey: 1, controlplane.ReasonEmptyValue: 1, controlplane.ReasonTombstone: 1}
	if !maps.Equal(g.RefusedByReason, wantGlobex) || !maps.Equal(a.RefusedByReason, map[string]int64{controlplane.ReasonUnknownKey: 1}) {
		t.Fatalf("refusals by reason: globex %v, acme %v", g.RefusedByReason, a.RefusedByReason)
	}
	if _, ok := e.status()["no-tenant-here"]; ok {
		t.Fatal("a key without '/' made a tenant")
	}
	// The forged connection is no longer the last record under acme's key:
	// the service wrote the genuine one again, which compaction keeps.
	retrytest.Wait(t, 10*time.Second, "the genuine connection written again after the forgery", func() bool {
		last := e.lastControl("acme/connection")
		ev, err := e.stack.Codec.DecodeControl(context.Background(), last.Value)
		return err == nil && ev.Connection.DisplayName == "acme"
	})
}

func TestUnauthorizedTokenPausesOnlyItsTenantUntilANewConnection(t *testing.T) {
	acme, initech := tenant("acme"), tenant("initech")
	initech.tokenRef = "plain:revoked-token"
	e := newEnv(t, acme, initech)
	e.start()
	ps := companies(50, "acme", "initech")
	e.produceProfiles(ps...)
	out := e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == 50 && len(o.dead) == 50 })
	for _, d := range out.dead {
		if d.TenantID != "initech" || !d.Replayable || d.ErrorClass != "auth" ||
			(d.Reason != leadspace.ReasonUnauthorized && d.Reason != controlplane.ReasonPaused) {
			t.Fatalf("dead letter %+v: want initech, replayable, class auth, reason unauthorized or paused", d)
		}
	}
	st := e.waitStatus("initech", 10*time.Second, func(s statusview.Tenant) bool { return s.State == schemas.StatePaused })
	if !strings.Contains(st.StateReason, leadspace.ReasonUnauthorized) {
		t.Fatalf("paused without saying why: %q", st.StateReason)
	}
	if s := e.status()["acme"]; s == nil || s.State != schemas.StateActive {
		t.Fatalf("acme state %+v, want ACTIVE", s)
	}

	// While paused, new events cost no request at all.
	before := len(e.stack.Simulator.Calls())
	e.produceProfiles(profile("initech", 100, company(100)))
	e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.dead) == 51 })
	if after := len(e.stack.Simulator.Calls()); after != before {
		t.Fatalf("%d requests went out for a paused tenant", after-before)
	}

	// A new connection event with a working token resumes the tenant.
	e.control(schemas.Control{TenantID: "initech", Connection: &schemas.Connection{DisplayName: "rotated", TokenRef: "plain:" + initech.token}})
	e.waitStatus("initech", 10*time.Second, func(s statusview.Tenant) bool { return s.State == schemas.StateActive })
	e.produceProfiles(profile("initech", 200, company(200)))
	out = e.waitOutputs(30*time.Second, func(o outputs) bool { _, ok := o.enriched["initech/p0200"]; return ok })
	if ev := out.enriched["initech/p0200"]; ev.Status == schemas.StatusSkipped {
		t.Fatalf("after rotation: %s %s", ev.Status, ev.SkipReason)
	}
}

func TestTheTokenAppearsNowhere(t *testing.T) {
	acme, initech := tenant("acme"), tenant("initech")
	acme.tokenRef = "env:LEADSPACE_TOKEN_ACME"
	t.Setenv("LEADSPACE_TOKEN_ACME", acme.token)
	initech.tokenRef = "env:LEADSPACE_TOKEN_INITECH"
	t.Setenv("LEADSPACE_TOKEN_INITECH", "initech-expired-token-ZQ81")
	// umbrella's admin sealed its token to the service's public key.
	umbrella := tenant("umbrella")
	private, public, err := controlplane.GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	if umbrella.tokenRef, err = controlplane.SealToken(public, "umbrella", umbrella.token); err != nil {
		t.Fatal(err)
	}
	// References the service refuses, pointing at secrets: a variable
	// outside the allowlist, a token holding a header after a newline.
	envy, broken := tenant("envy"), tenant("broken")
	envy.tokenRef = "env:ENRICHER_TEST_OTHER_SECRET"
	t.Setenv("ENRICHER_TEST_OTHER_SECRET", "envy-secret-TQ93")
	if broken.tokenRef, err = controlplane.SealToken(public, "broken", "broken-secret-KX22\nX-Injected: broken-secret-KX22"); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, acme, initech, umbrella, envy, broken)
	if e.sealKey, err = controlplane.ParseSealKey(private); err != nil {
		t.Fatal(err)
	}
	e.start()
	ps := companies(30, "acme", "initech", "umbrella", "envy", "broken")
	e.produceProfiles(ps...)
	e.produceRaw(kafka.Message{Key: []byte("acme/garbage"), Value: []byte("garbage")})
	e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == 60 && len(o.dead) == 91 })
	if len(e.callsFor("umbrella")) == 0 {
		t.Fatal("the sealed token did not open: no request went out for umbrella")
	}
	for id, reason := range map[string]string{"initech": leadspace.ReasonUnauthorized, "envy": controlplane.ReasonTokenRefused,
		"broken": controlplane.ReasonTokenInvalid} {
		e.waitStatus(id, 10*time.Second, func(s statusview.Tenant) bool {
			return s.State == schemas.StatePaused && strings.Contains(s.StateReason, reason)
		})
	}

	var captured bytes.Buffer
	captured.WriteString(e.logs.String())
	for _, topic := range []string{e.stack.Topics.Enriched, e.stack.Topics.DeadLetters, e.stack.Topics.Status, e.stack.Topics.Control} {
		e.readTopic(topic, func(m kafka.Message) {
			captured.Write(m.Key)
			captured.Write(m.Value)
			for _, h := range m.Headers {
				captured.WriteString(h.Key)
				captured.Write(h.Value)
			}
		})
	}
	families, err := e.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if _, err := expfmt.MetricFamilyToText(&captured, mf); err != nil {
			t.Fatal(err)
		}
	}
	if captured.Len() < 10_000 {
		t.Fatalf("captured only %d bytes: the scan would prove nothing", captured.Len())
	}
	for _, token := range []string{acme.token, "initech-expired-token-ZQ81", umbrella.token, "envy-secret-TQ93", "broken-secret-KX22"} {
		if n := strings.Count(captured.String(), token); n != 0 {
			t.Errorf("a token appears %d times in logs, topics or metrics", n)
		}
	}
}

func TestStatusCountsSurviveRestartsAndCrashes(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	e.start(func(c *processor.Config, _ *leadspace.Config) { c.DrainTimeout = time.Millisecond })
	const n = 600
	ps := companies(n, "acme")
	e.produceProfiles(ps...)
	e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) >= n/4 })
	e.shutdown() // abandons in-flight work, as a crash would

	e.start()
	out := e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == n })
	byStatus := map[string]int64{}
	for _, ev := range out.enriched {
		byStatus[ev.Status]++
	}
	st := e.waitStatus("acme", 30*time.Second, func(s statusview.Tenant) bool { return s.Profiles >= n })
	if st.Profiles != n || st.Enriched != byStatus[schemas.StatusEnriched] || st.NotMatched != byStatus[schemas.StatusNotMatched] {
		t.Fatalf("status after a crash: %d profiles, %d enriched, %d not matched; outputs: %d, %v",
			st.Profiles, st.Enriched, st.NotMatched, n, byStatus)
	}

	e.shutdown()
	restarted := time.Now()
	e.start()
	e.waitRewritten("acme", restarted, 30*time.Second)
	again := e.status()["acme"]
	if again.Profiles != st.Profiles || again.Enriched != st.Enriched || again.NotMatched != st.NotMatched ||
		again.Skipped != st.Skipped || again.Failed != st.Failed || again.CreditsSpent != st.CreditsSpent {
		t.Fatalf("status changed across a restart:\n before %+v\n after  %+v", st, again)
	}
}

func TestRemovalWithPurgeWithdrawsPublishedDataAndStopsCalls(t *testing.T) {
	e := newEnv(t, tenant("acme"), tenant("globex"))
	e.start()
	ps := companies(20, "acme", "globex")
	e.produceProfiles(ps...)
	e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.enriched) == 40 })

	e.control(schemas.Control{TenantID: "acme", Removal: &schemas.Removal{Purge: true}})
	out := e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.tombstones) == 20 })
	for key := range out.tombstones {
		if !strings.HasPrefix(key, "acme/") {
			t.Fatalf("purge withdrew %s, which is not acme's", key)
		}
	}
	if len(out.enriched) != 20 {
		t.Fatalf("%d enrichments left, want globex's 20", len(out.enriched))
	}

	calls := len(e.callsFor("acme"))
	e.produceProfiles(profile("acme", 99, company(99)), profile("globex", 99, company(99)))
	e.waitOutputs(30*time.Second, func(o outputs) bool { _, ok := o.enriched["globex/p0099"]; return ok })
	// Status counts the tenant's current profiles: the purge withdrew them
	// all, and the removed tenant's new event publishes nothing.
	st := e.waitStatus("acme", 10*time.Second, func(s statusview.Tenant) bool { return s.State == schemas.StateRemoved && s.Profiles == 0 })
	if st.Enriched != 0 || st.NotMatched != 0 || st.Skipped != 0 {
		t.Fatalf("a purged tenant still counts profiles: %+v", st)
	}
	if got := len(e.callsFor("acme")); got != calls {
		t.Fatalf("%d requests for a removed tenant", got-calls)
	}
	if _, published := e.readOutputs().enriched["acme/p0099"]; published {
		t.Fatal("an enrichment was published for a removed tenant")
	}
}
