package processor_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Helpers of the control-plane tests: what is on the control topic, forced
// compaction on either broker, and where the group's commits stand.

// controlRecords reads the control topic: every record, in offset order.
func (e *env) controlRecords() []kafka.Message {
	e.t.Helper()
	var out []kafka.Message
	e.readTopic(e.stack.Topics.Control, func(m kafka.Message) { out = append(out, m) })
	return out
}

// lastControl is the last record under key on the control topic.
func (e *env) lastControl(key string) kafka.Message {
	e.t.Helper()
	var last *kafka.Message
	for _, m := range e.controlRecords() {
		if string(m.Key) == key {
			last = &m
		}
	}
	if last == nil {
		e.t.Fatalf("no record under %s on the control topic", key)
	}
	return *last
}

// compactControl compacts the control topic until done says it is. kfake
// compacts on request; a real broker's cleaner does once the topic rolls
// small segments and counts any dirty share as enough. Either way the last
// batch (the active segment) is never cleaned, so records with a key that
// names no tenant (refused, counted for nobody) are written to close the
// segments before them.
func (e *env) compactControl(done func(map[string]int) bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	roll := func() {
		e.produceRaw(kafka.Message{Topic: e.stack.Topics.Control, Key: []byte("segment-roll"), Value: []byte("x")})
	}
	perKey := func() map[string]int {
		n := map[string]int{}
		for _, m := range e.controlRecords() {
			n[string(m.Key)]++
		}
		return n
	}
	if !e.stack.External {
		roll()
		e.stack.Compact()
		if n := perKey(); !done(n) {
			e.t.Fatalf("after compaction the control topic holds %v", n)
		}
		return
	}
	cl, err := e.stack.Kafka.Client()
	if err != nil {
		e.t.Fatal(err)
	}
	defer processor.CloseClient(cl)
	res, err := cl.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: e.stack.Topics.Control,
		Configs: []kafka.IncrementalAlterConfigsRequestConfig{
			{Name: "segment.ms", Value: "100", ConfigOperation: kafka.ConfigOperationSet},
			{Name: "min.cleanable.dirty.ratio", Value: "0.001", ConfigOperation: kafka.ConfigOperationSet},
			{Name: "min.compaction.lag.ms", Value: "0", ConfigOperation: kafka.ConfigOperationSet},
		}}}})
	if err == nil && len(res.Resources) == 1 {
		err = res.Resources[0].Error
	}
	if err != nil {
		e.t.Fatalf("configure the control topic for compaction: %v", err)
	}
	start := time.Now()
	for rolls := 1; ; rolls++ {
		time.Sleep(200 * time.Millisecond) // past segment.ms: the next write rolls the segment
		roll()
		if n := perKey(); done(n) {
			e.t.Logf("the broker compacted the control topic after %d segment rolls, %s", rolls, time.Since(start).Round(time.Millisecond))
			return
		}
		if ctx.Err() != nil {
			e.t.Fatalf("the broker did not compact the control topic: %v", perKey())
		}
	}
}

// uncommitted is, per partition of the profiles topic, how many records the
// group has not committed yet.
func (e *env) uncommitted() map[int]int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := e.stack.Kafka.Client()
	if err != nil {
		e.t.Fatal(err)
	}
	defer processor.CloseClient(cl)
	topic := e.stack.Topics.Profiles
	meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 {
		e.t.Fatalf("metadata of %s: %v", topic, err)
	}
	var parts []int
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		parts = append(parts, p.ID)
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	ends, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		e.t.Fatal(err)
	}
	committed, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: e.group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		e.t.Fatal(err)
	}
	at := map[int]int64{}
	for _, p := range committed.Topics[topic] {
		at[p.Partition] = max(p.CommittedOffset, 0)
	}
	out := map[int]int64{}
	for _, p := range ends.Topics[topic] {
		out[p.Partition] = p.LastOffset - at[p.Partition]
	}
	return out
}

// allCommitted waits until every partition committed all it holds.
func (e *env) allCommitted(within time.Duration) {
	e.t.Helper()
	var last map[int]int64
	retrytest.Wait(e.t, within, "every partition of the profiles topic committed to its end", func() bool {
		last = e.uncommitted()
		for _, n := range last {
			if n != 0 {
				return false
			}
		}
		return len(last) > 0
	})
}

// The scenario of issue 12: consent given, withdrawn, the give's bytes
// written again 2 s later, the control topic compacted, the service
// restarted. acme's replay is written while the service runs (it refuses it
// and writes the withdrawal again); globex's while no instance runs, so
// compaction leaves the replay as the only record of globex/consent.
func TestAWithdrawnConsentStaysWithdrawnThroughReplayCompactionAndRestarts(t *testing.T) {
	acme, globex, initech := tenant("acme"), tenant("globex"), tenant("initech")
	e := newSignedEnv(t, "the-admin-key", acme, globex, initech)
	e.start()
	e.produceProfiles(companies(3, "acme", "globex", "initech")...)
	e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.enriched) == 9 })
	giveAcme, giveGlobex := e.lastControl("acme/consent"), e.lastControl("globex/consent")

	e.control(schemas.Control{TenantID: "acme", Consent: &schemas.Consent{Given: false}})
	e.control(schemas.Control{TenantID: "globex", Consent: &schemas.Consent{Given: false}})
	for _, id := range []string{"acme", "globex"} {
		e.waitStatus(id, 10*time.Second, func(s statusview.Tenant) bool { return s.State == schemas.StateNoConsent })
	}
	withdrawn := map[string]int{"acme": len(e.callsFor("acme")), "globex": len(e.callsFor("globex"))}

	// The replay of issue 12 came 2 s after the withdrawal: it must be
	// refused by its sequence, not let through by its later time.
	withdrawnAt := time.Now()
	retrytest.Wait(t, 10*time.Second, "2 s past the withdrawal", func() bool { return time.Since(withdrawnAt) >= 2*time.Second })
	e.produceRaw(kafka.Message{Topic: e.stack.Topics.Control, Key: giveAcme.Key, Value: giveAcme.Value})
	e.waitStatus("acme", 10*time.Second, func(s statusview.Tenant) bool {
		return s.RefusedByReason[controlplane.ReasonReplayed] == 1 && s.State == schemas.StateNoConsent
	})
	retrytest.Wait(t, 10*time.Second, "the withdrawal written again after the replay", func() bool {
		ev, err := e.stack.Codec.DecodeControl(context.Background(), e.lastControl("acme/consent").Value)
		return err == nil && !ev.Consent.Given
	})
	e.shutdown()

	e.produceRaw(kafka.Message{Topic: e.stack.Topics.Control, Key: giveGlobex.Key, Value: giveGlobex.Value})
	e.compactControl(func(n map[string]int) bool { return n["acme/consent"] == 1 && n["globex/consent"] == 1 })
	if ev, _ := e.stack.Codec.DecodeControl(context.Background(), e.lastControl("globex/consent").Value); !ev.Consent.Given {
		t.Fatal("compaction did not leave the replayed give as globex's only consent record")
	}

	e.start()
	e.produceProfiles(companies(20, "acme", "globex", "initech")...)
	out := e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == 60 })
	for key, ev := range out.enriched {
		if ev.TenantID != "initech" && (ev.Status != schemas.StatusSkipped || ev.SkipReason != controlplane.ReasonNoConsent) {
			t.Errorf("%s: %s %s after the restart, want SKIPPED %s", key, ev.Status, ev.SkipReason, controlplane.ReasonNoConsent)
		}
	}
	for id, before := range withdrawn {
		if n := len(e.callsFor(id)); n != before {
			t.Errorf("%s: %d requests reached Leadspace after consent was withdrawn", id, n-before)
		}
	}
	if len(e.callsFor("initech")) < 20 {
		t.Errorf("initech, untouched, made %d requests", len(e.callsFor("initech")))
	}
	for _, id := range []string{"acme", "globex"} {
		st := e.waitStatus(id, 10*time.Second, func(s statusview.Tenant) bool { return s.RefusedControlEvents >= 1 })
		if st.State != schemas.StateNoConsent || st.RefusedControlEvents != 1 || st.RefusedByReason[controlplane.ReasonReplayed] != 1 {
			t.Errorf("%s after compaction and a restart: state %s, refused %d %v", id, st.State, st.RefusedControlEvents, st.RefusedByReason)
		}
	}
	if st := e.status()["globex"]; !strings.Contains(st.StateReason, "no longer on the control topic") {
		t.Errorf("globex's state does not say its consent event was lost: %q", st.StateReason)
	}

	// Once more: the counts hold, nothing is counted twice.
	e.shutdown()
	e.start()
	e.produceProfiles(profile("initech", 99, company(99)))
	e.waitOutputs(30*time.Second, func(o outputs) bool { _, ok := o.enriched["initech/p0099"]; return ok })
	for _, id := range []string{"acme", "globex"} {
		if st := e.status()[id]; st.RefusedControlEvents != 1 || st.State != schemas.StateNoConsent {
			t.Errorf("%s after a second restart: state %s, refused %d", id, st.State, st.RefusedControlEvents)
		}
	}
}

// Signed connections whose references point where the service must not
// look, or at a token that cannot be a bearer token: each tenant pauses
// with its reason, nothing carrying them leaves, and every partition keeps
// committing.
func TestTokenReferencesOutsideTheAllowlistPauseTheirTenant(t *testing.T) {
	acme, home, passwd, newline := tenant("acme"), tenant("home"), tenant("passwd"), tenant("newline")
	home.tokenRef = "env:HOME"
	if home.token = os.Getenv("HOME"); home.token == "" {
		home.token = "/root"
		t.Setenv("HOME", home.token)
	}
	passwd.tokenRef = "file:/etc/passwd"
	private, public, err := controlplane.GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	// Sealed, so the control topic does not carry it: a token with a header
	// injected after a newline.
	if newline.tokenRef, err = controlplane.SealToken(public, "newline", newline.token+"\r\nX-Injected: yes"); err != nil {
		t.Fatal(err)
	}
	e := newSignedEnv(t, "the-admin-key", acme, home, passwd, newline)
	if e.sealKey, err = controlplane.ParseSealKey(private); err != nil {
		t.Fatal(err)
	}
	e.start()
	const n = 30
	e.produceProfiles(companies(n, "acme", "home", "passwd", "newline")...)
	out := e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.enriched) == n && len(o.dead) == 3*n })
	for _, d := range out.dead {
		if d.Reason != controlplane.ReasonPaused || !d.Replayable {
			t.Fatalf("dead letter for %s: %s (replayable %v), want %s, replayable", d.TenantID, d.Reason, d.Replayable, controlplane.ReasonPaused)
		}
	}
	for id, reason := range map[string]string{"home": controlplane.ReasonTokenRefused, "passwd": controlplane.ReasonTokenRefused,
		"newline": controlplane.ReasonTokenInvalid} {
		st := e.waitStatus(id, 10*time.Second, func(s statusview.Tenant) bool { return s.State == schemas.StatePaused })
		if !strings.Contains(st.StateReason, reason) {
			t.Errorf("%s paused with %q, want %s", id, st.StateReason, reason)
		}
	}
	for _, c := range e.stack.Simulator.Calls() {
		if c.Program != "acme" {
			t.Fatalf("a request reached Leadspace as program %q (status %d): a refused reference was used", c.Program, c.Status)
		}
	}
	if got := e.stack.Simulator.RecordsReceived("acme"); got < n {
		t.Fatalf("acme, whose token is fine, had %d records accepted", got)
	}
	e.allCommitted(30 * time.Second)
	// More input later: still no request for them, still committed.
	e.produceProfiles(profile("home", 500, company(500)), profile("newline", 500, company(500)), profile("acme", 500, company(500)))
	e.waitOutputs(30*time.Second, func(o outputs) bool { return len(o.dead) == 3*n+2 && len(o.enriched) == n+1 })
	e.allCommitted(30 * time.Second)
	for _, c := range e.stack.Simulator.Calls() {
		if c.Program != "acme" {
			t.Fatalf("a request reached Leadspace as program %q", c.Program)
		}
	}
}

// The control plane outlives a broker that fails: it keeps trying to read
// its state back and follow the topic, and becomes ready once it can.
func TestControlPlaneRidesOutABrokerOutage(t *testing.T) {
	if brokersFromEnv() != nil {
		t.Skip("the outage is injected into the in-process broker")
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stack, err := embedded.Start(ctx, embedded.Options{Brokers: cluster.ListenAddrs(),
		Programs: []simulator.ProgramConfig{{ID: "acme", Tokens: []string{"tok-acme"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	prod, err := processor.NewProducer(stack.Kafka, stack.Codec)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	publish := func(ev schemas.Control) {
		if _, err := prod.PublishControl(ctx, stack.Topics.Control, ev); err != nil {
			t.Fatal(err)
		}
	}
	publish(schemas.Control{TenantID: "acme", Connection: &schemas.Connection{TokenRef: "plain:tok-acme"}})
	publish(schemas.Control{TenantID: "acme", Mapping: &schemas.Mapping{NameAttribute: "Name"}})

	// The outage: the broker drops the connection of the first requests for
	// offsets, which reading any topic to its end needs.
	var dropped atomic.Int32
	cluster.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		if dropped.Add(1) <= 4 {
			cluster.KeepControl()
			return nil, errors.New("broker outage"), true
		}
		cluster.DropControl()
		return nil, nil, false
	})
	table := controlplane.NewTable(controlplane.TokenSources{AllowPlaintext: true}.Resolver())
	plane, err := controlplane.New(controlplane.Config{Kafka: stack.Kafka, Topics: stack.Topics, Codec: stack.Codec,
		Table: table, RetryBackoff: 20 * time.Millisecond, StatusInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- plane.Run(runCtx) }()
	select {
	case <-plane.Ready():
	case err := <-done:
		t.Fatalf("the control plane gave up during the outage: %v", err)
	case <-ctx.Done():
		t.Fatalf("not ready after the outage (%d requests dropped)", dropped.Load())
	}
	if dropped.Load() < 4 {
		t.Fatalf("only %d requests met the outage: it proved nothing", dropped.Load())
	}
	if _, d := table.Gate("acme"); d == nil || d.Reason != controlplane.ReasonNoConsent {
		t.Fatalf("after the outage: %+v, want connected and mapped, no consent yet", d)
	}
	publish(schemas.Control{TenantID: "acme", Consent: &schemas.Consent{Given: true}})
	retrytest.Wait(t, 10*time.Second, "consent given after the outage applies", func() bool { _, d := table.Gate("acme"); return d == nil })
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v when its context ended, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
