package processor_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

func TestEveryProfileGetsExactlyOneEnrichment(t *testing.T) {
	acme := tenant("acme")
	e := newEnv(t, acme)
	e.start()
	const n = 300
	ps := companies(n, "acme")
	e.produceProfiles(ps...)

	out := e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == n })
	byStatus := map[string]int{}
	for key, ev := range out.enriched {
		byStatus[ev.Status]++
		if key != ev.TenantID+"/"+ev.ProfileID {
			t.Errorf("output key %q does not match its value's tenant/profile", key)
		}
		if ev.Lineage.SourceTopic != e.stack.Topics.Profiles || ev.Lineage.SourceEventID == "" {
			t.Errorf("output %s lacks lineage: %+v", key, ev.Lineage)
		}
		if ev.Status == schemas.StatusEnriched && (ev.Company == nil || ev.Company.Industry == "" || ev.Confidence == "") {
			t.Errorf("enriched output %s lacks firmographics: %+v", key, ev.Company)
		}
	}
	if byStatus[schemas.StatusEnriched] == 0 {
		t.Fatalf("no profile was enriched: %v", byStatus)
	}
	if len(out.dead) != 0 {
		t.Fatalf("%d dead letters for valid input, first: %+v", len(out.dead), out.dead[0])
	}
	if got := e.stack.Simulator.RecordsReceived("acme"); got < n {
		t.Fatalf("simulator received %d records for %d profiles", got, n)
	}
}

func TestUndecodableValuesGoToTheDLQWithTheirContext(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	e.start()
	bad := []kafka.Message{
		{Key: []byte("acme/b1"), Value: []byte(`{"json":"not avro"}`), Headers: []kafka.Header{{Key: "trace-id", Value: []byte("abc")}}},
		{Key: []byte("acme/b2"), Value: []byte{0, 0, 0, 0x7f, 0x7f, 1}},
		{Key: []byte("acme/b3"), Value: []byte{0, 0, 0, 0, byte(e.stack.Codec.SchemaID(schemas.ProfileUnified)), 0xff, 0xff}},
	}
	e.produceRaw(bad...)
	e.produceProfiles(profile("acme", 1, company(1)))

	out := e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.dead) == 3 && len(o.enriched) == 1 })
	reasons := map[string]string{}
	for i, d := range out.dead {
		reasons[string(d.OriginalKey)] = d.Reason
		if d.Stage != schemas.StageDecode || d.SourceTopic != e.stack.Topics.Profiles || d.ErrorClass != "input" || d.Replayable {
			t.Errorf("dead letter %s: stage %s, topic %s, class %s, replayable %v", d.OriginalKey, d.Stage, d.SourceTopic, d.ErrorClass, d.Replayable)
		}
		if d.TenantID != "acme" {
			t.Errorf("dead letter %s: tenant %q, want acme (from the key)", d.OriginalKey, d.TenantID)
		}
		headers := map[string]string{}
		for _, h := range out.deadMsgs[i].Headers {
			headers[h.Key] = string(h.Value)
		}
		if headers[processor.HeaderErrOffset] != fmt.Sprint(d.SourceOffset) || headers[processor.HeaderErrTopic] != d.SourceTopic ||
			headers[processor.HeaderErrReason] != d.Reason {
			t.Errorf("dead letter %s: headers %v do not mirror its context", d.OriginalKey, headers)
		}
	}
	want := map[string]string{"acme/b1": schemas.ReasonBadMagicByte, "acme/b2": schemas.ReasonUnknownSchemaID, "acme/b3": schemas.ReasonBadAvro}
	for k, r := range want {
		if reasons[k] != r {
			t.Errorf("dead letter for %s: reason %q, want %q", k, reasons[k], r)
		}
	}
	for _, d := range out.dead {
		if string(d.OriginalKey) == "acme/b1" {
			if string(d.OriginalValue) != `{"json":"not avro"}` || len(d.OriginalHeaders) != 1 || d.OriginalHeaders[0].Key != "trace-id" {
				t.Errorf("the original value and headers were not kept untouched: %q %+v", d.OriginalValue, d.OriginalHeaders)
			}
		}
	}
}

func TestMissingCompanyNameIsSkippedWithoutACall(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	e.start()
	e.produceProfiles(
		profile("acme", 1, map[string]string{"CompanyName": "   ", "Website": "blank-name.com"}),
		profile("acme", 2, map[string]string{"Website": "no-name.com"}),
		profile("acme", 3, company(3)),
	)
	out := e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.enriched) == 3 })
	for _, key := range []string{"acme/p0001", "acme/p0002"} {
		ev := out.enriched[key]
		if ev.Status != schemas.StatusSkipped || ev.SkipReason != processor.ReasonMissingName || ev.Sent != nil {
			t.Errorf("%s: status %s reason %q sent %+v; want SKIPPED %s and nothing sent", key, ev.Status, ev.SkipReason, ev.Sent, processor.ReasonMissingName)
		}
	}
	for _, c := range e.callsFor("acme") {
		for _, r := range c.Records {
			if b, _ := json.Marshal(r); strings.Contains(string(b), "name.com") {
				t.Errorf("a profile without a company name reached Leadspace: %s", b)
			}
		}
	}
}

func TestTenantWithoutConsentSendsNothingToLeadspace(t *testing.T) {
	withConsent, without := tenant("acme"), tenant("globex")
	without.consent = false
	e := newEnv(t, withConsent, without)
	e.start()
	var ps []schemas.Profile
	for i := 0; i < 1000; i++ {
		ps = append(ps, profile("globex", i, company(i)))
		if i < 100 {
			ps = append(ps, profile("acme", i, company(i)))
		}
	}
	e.produceProfiles(ps...)
	out := e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == 1100 })
	for key, ev := range out.enriched {
		if ev.TenantID == "globex" && (ev.Status != schemas.StatusSkipped || ev.SkipReason != controlplane.ReasonNoConsent) {
			t.Errorf("%s: %s %q, want SKIPPED %s", key, ev.Status, ev.SkipReason, controlplane.ReasonNoConsent)
		}
	}
	if calls := e.callsFor("globex"); len(calls) != 0 {
		t.Fatalf("the simulator received %d requests for a tenant without consent", len(calls))
	}
	if len(e.callsFor("acme")) == 0 {
		t.Fatal("the consenting tenant made no request at all")
	}
	st := e.waitStatus("globex", 30*time.Second, func(s statusview.Tenant) bool { return s.Profiles == 1000 })
	if st.Skipped != 1000 || st.Enriched != 0 || st.CreditsSpent != 0 || st.State != schemas.StateNoConsent {
		t.Fatalf("globex status %+v, want 1000 skipped, nothing spent, state NO_CONSENT", st)
	}
}

func TestOnlyMappedFieldsLeave(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	e.start()
	e.produceProfiles(profile("acme", 7, company(7)))
	e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.enriched) == 1 })
	calls := e.callsFor("acme")
	if len(calls) == 0 {
		t.Fatal("no request reached the simulator")
	}
	for _, c := range calls {
		for _, r := range c.Records {
			b, _ := json.Marshal(r)
			for _, secret := range []string{"secret7@contoso.com", "confidential", "PrimaryEmail"} {
				if strings.Contains(string(b), secret) {
					t.Errorf("an unmapped attribute left for Leadspace: %s", b)
				}
			}
			var keys []string
			for k := range r {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if fmt.Sprint(keys) != "[company external_id]" {
				t.Errorf("request record carries %v, want only company and external_id", keys)
			}
		}
	}
}

func TestDeletedProfileWithdrawsItsEnrichment(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	e.start()
	e.produceProfiles(profile("acme", 1, company(1)))
	e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.enriched) == 1 })
	e.produceRaw(kafka.Message{Key: []byte("acme/p0001"), Value: nil})
	e.waitOutputs(30*time.Second, func(o outputs) bool { return o.tombstones["acme/p0001"] && len(o.enriched) == 0 })
}

func TestCrashLosesNothingAndDoesNotAskAgainForPublishedAnswers(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	// A stop that abandons in-flight work at once is as close to a crash as a
	// test can get: whatever was not acked and committed must come back.
	e.start(func(c *processor.Config, _ *leadspace.Config) { c.DrainTimeout = time.Millisecond })
	const n = 600
	ps := companies(n, "acme")
	e.produceProfiles(ps...)
	e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) >= n/5 })
	e.shutdown()
	before := e.readOutputs()

	e.start()
	out := e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == n })
	if len(out.dead) != 0 {
		t.Fatalf("%d dead letters after a restart", len(out.dead))
	}
	sent := e.namesSent("acme")
	for key, ev := range before.enriched {
		if ev.Sent != nil && sent[ev.Sent.Name] != 1 {
			t.Errorf("%s was answered and published before the crash, yet Leadspace was asked %d times", key, sent[ev.Sent.Name])
		}
	}
	t.Logf("%d of %d published before the crash; %d records on the enriched topic; %d Leadspace records",
		len(before.enriched), n, out.enrichedN, e.stack.Simulator.RecordsReceived("acme"))
}
