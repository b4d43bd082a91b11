package processor_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// The integration suite runs on the in-process broker by default, and
// unchanged against a real Kafka cluster when KAFKA_BOOTSTRAP names one
// (make test-kafka). Every test uses its own topics and group, so tests can
// share one broker.

func brokersFromEnv() []string {
	if b := os.Getenv("KAFKA_BOOTSTRAP"); b != "" {
		return strings.Split(b, ",")
	}
	return nil
}

// tenantProgram is a demo tenant with its own Leadspace program.
type tenantProgram struct {
	id, token string
	tokenRef  string // how the connection names the token; default plain:<token>
	consent   bool
	credits   int64
	tps       float64 // the simulated program's rate limit; default 1000
}

func tenant(id string) tenantProgram {
	return tenantProgram{id: id, token: "tok-" + id + "-" + fmt.Sprint(rand.Uint32()), consent: true, credits: simulator.Unlimited}
}

type env struct {
	t       testing.TB
	stack   *embedded.Stack
	prod    *processor.Producer
	tenants []tenantProgram
	group   string
	auth    controlplane.Auth    // signs what control() publishes, when set
	logs    *syncBuffer          // everything every instance logged
	sealKey *ecdh.PrivateKey     // opens sealed token references, when set
	metrics *prometheus.Registry // the last instance's metrics

	mu        sync.Mutex
	instances []*instance // running processor instances, oldest first
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9]+`)

func newEnv(t testing.TB, tenants ...tenantProgram) *env {
	t.Helper()
	return newEnvWith(t, envOptions{}, tenants...)
}

// newSignedEnv is newEnv whose control events are signed with adminKey;
// e.auth is what the processor must verify with.
func newSignedEnv(t testing.TB, adminKey string, tenants ...tenantProgram) *env {
	t.Helper()
	return newEnvWith(t, envOptions{adminKey: adminKey}, tenants...)
}

// envOptions shape the simulated world. Zero values: no admin key, a fast
// Leadspace (5 ms, 1000 TPS per program) so tests spend little time waiting.
type envOptions struct {
	adminKey string
	latency  time.Duration
	jitter   time.Duration
	// tierBulks makes bulk results ready as the simulator's defaults say
	// (by time), instead of at the second poll.
	tierBulks bool
}

func newEnvWith(t testing.TB, o envOptions, tenants ...tenantProgram) *env {
	t.Helper()
	if o.latency == 0 {
		o.latency = 5 * time.Millisecond
	}
	adminKey := o.adminKey
	jitter, polls := time.Duration(-1), 1
	if o.jitter > 0 {
		jitter = o.jitter
	}
	if o.tierBulks {
		polls = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := fmt.Sprintf("%s-%d-", strings.ToLower(unsafeChars.ReplaceAllString(t.Name(), "-")), rand.Uint32()%100000)
	topics := processor.Topics{Profiles: prefix + "profiles", Control: prefix + "control", Enriched: prefix + "enriched",
		DeadLetters: prefix + "dlq", Status: prefix + "status"}
	var programs []simulator.ProgramConfig
	for _, tp := range tenants {
		tps := tp.tps
		if tps == 0 {
			tps = 1000
		}
		programs = append(programs, simulator.ProgramConfig{ID: tp.id, Tokens: []string{tp.token}, TPS: tps, Credits: tp.credits})
	}
	stack, err := embedded.Start(ctx, embedded.Options{Brokers: brokersFromEnv(), Topics: topics, Partitions: 3,
		Programs: programs, LeadspaceLatency: o.latency, LeadspaceJitter: jitter, BulkReadyAfterPolls: polls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	prod, err := processor.NewProducer(stack.Kafka, stack.Codec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	e := &env{t: t, stack: stack, prod: prod, tenants: tenants, group: prefix + "group", logs: &syncBuffer{}}
	if adminKey != "" {
		e.auth = controlplane.Auth{Key: []byte(adminKey)}
	}
	for _, tp := range tenants {
		e.connect(tp)
	}
	t.Cleanup(e.checkOnlyMappedFieldsLeft)
	return e
}

// checkOnlyMappedFieldsLeft runs after every test: whatever the test did,
// each record that reached the simulator carries only the mapped company
// fields and the correlation id.
func (e *env) checkOnlyMappedFieldsLeft() {
	allowed := map[string]bool{"name": true, "website": true, "address": true}
	for _, c := range e.stack.Simulator.Calls() {
		for _, r := range c.Records {
			for k, v := range r {
				switch k {
				case "external_id":
				case "company":
					comp, _ := v.(map[string]any)
					for field := range comp {
						if !allowed[field] {
							e.t.Errorf("company field %q left for Leadspace; only name, website and address are mapped", field)
						}
					}
				default:
					e.t.Errorf("field %q left for Leadspace; only company and external_id may", k)
				}
			}
		}
	}
}

// control publishes a control event as an admin would.
func (e *env) control(ev schemas.Control) schemas.Control {
	e.t.Helper()
	if ev.IssuedBy == "" {
		ev.IssuedBy = "admin@test"
	}
	if ev.IssuedAt.IsZero() {
		ev.IssuedAt = time.Now().UTC().Truncate(time.Millisecond)
	}
	if ev.EventID == "" {
		ev.EventID = fmt.Sprintf("ctl-%d", rand.Uint64())
	}
	if e.auth.Enabled() && ev.Signature == "" {
		e.auth.Sign(&ev)
	}
	ev, err := e.prod.PublishControl(context.Background(), e.stack.Topics.Control, ev)
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

func (e *env) connect(tp tenantProgram) {
	ref := tp.tokenRef
	if ref == "" {
		ref = "plain:" + tp.token
	}
	e.control(schemas.Control{TenantID: tp.id, Connection: &schemas.Connection{DisplayName: tp.id, TokenRef: ref}})
	e.control(schemas.Control{TenantID: tp.id, Mapping: &schemas.Mapping{NameAttribute: "CompanyName", WebsiteAttribute: "Website", LocationAttribute: "Location"}})
	if tp.consent {
		e.control(schemas.Control{TenantID: tp.id, Consent: &schemas.Consent{Given: true}})
	}
}

// start runs a processor instance until stopped.
// startOpt adjusts an instance's configuration.
type startOpt func(*processor.Config, *leadspace.Config)

func (e *env) start(opts ...startOpt) *instance {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(e.logs), zap.DebugLevel))
	lsCfg := leadspace.Config{BaseURL: e.stack.LeadspaceURL, TPS: 1000, BackoffBase: 10 * time.Millisecond,
		BulkPollFirst: 5 * time.Millisecond, BulkPollMin: 5 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond, Breaker: leadspace.BreakerConfig{OpenTimeout: 200 * time.Millisecond},
		Logger: log.Named("leadspace"), Registerer: reg}
	table := controlplane.NewTable(controlplane.TokenSources{AllowPlaintext: true, SealKey: e.sealKey}.Resolver())
	cfg := processor.Config{Kafka: e.stack.Kafka, Topics: e.stack.Topics, Auth: e.auth,
		Group:          processor.GroupConfig{ID: e.group, SessionTimeout: 15 * time.Second, HeartbeatInterval: time.Second, RebalanceTimeout: 30 * time.Second},
		CommitInterval: 100 * time.Millisecond, DrainTimeout: 10 * time.Second, RetryBackoff: 20 * time.Millisecond, StallAfter: time.Second,
		StatusInterval: 100 * time.Millisecond, Registerer: reg,
		Logger: zap.New(zapcore.NewTee(log.Core(), zaptest.NewLogger(e.t, zaptest.Level(zap.WarnLevel)).Core()))}
	for _, opt := range opts {
		opt(&cfg, &lsCfg)
	}
	var journal atomic.Pointer[processor.Processor]
	lsCfg.BulkAccepted = func(program, path string, refs []any) {
		if p := journal.Load(); p != nil {
			p.BulkAccepted(program, path, refs)
		}
	}
	ls, err := leadspace.New(lsCfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.metrics = reg
	proc, err := processor.New(cfg, e.stack.Codec, table, processor.LeadspaceEnricher{Client: ls})
	if err != nil {
		e.t.Fatal(err)
	}
	journal.Store(proc)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{t: e.t, stop: cancel, done: make(chan error, 1)}
	go func() { in.done <- proc.Run(ctx); ls.Close() }()
	e.mu.Lock()
	e.instances = append(e.instances, in)
	e.mu.Unlock()
	e.t.Cleanup(func() { e.shutdown() })
	select {
	case <-proc.ReadyC():
		return in
	case err := <-in.done:
		in.stop = nil
		e.t.Fatalf("processor stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		e.t.Fatal("processor not ready after 30s")
	}
	return nil
}

// instance is one running processor.
type instance struct {
	t    testing.TB
	once sync.Once
	stop context.CancelFunc
	done chan error
}

// shutdown stops the instance gracefully and waits for it.
func (in *instance) shutdown() {
	in.once.Do(func() {
		if in.stop == nil {
			return
		}
		in.stop()
		select {
		case err := <-in.done:
			if err != nil {
				in.t.Errorf("processor returned %v on shutdown", err)
			}
		case <-time.After(30 * time.Second):
			in.t.Error("processor did not stop within 30s")
		}
	})
}

// shutdown stops every running instance.
func (e *env) shutdown() {
	e.mu.Lock()
	all := e.instances
	e.instances = nil
	e.mu.Unlock()
	for _, in := range all {
		in.shutdown()
	}
}

func profile(tenant string, i int, attrs map[string]string) schemas.Profile {
	return schemas.Profile{EventID: fmt.Sprintf("%s-ev-%d", tenant, i), TenantID: tenant, ProfileID: fmt.Sprintf("p%04d", i),
		Kind: "ACCOUNT", Attributes: attrs, UnifiedAt: time.Now().UTC().Truncate(time.Millisecond), Version: 1}
}

// companies makes n company profiles for each tenant, interleaved by index
// (p0 of every tenant, then p1, ...), as upstream would publish them.
func companies(n int, tenants ...string) []schemas.Profile {
	ps := make([]schemas.Profile, 0, n*len(tenants))
	for i := 0; i < n; i++ {
		for _, t := range tenants {
			ps = append(ps, profile(t, i, company(i)))
		}
	}
	return ps
}

func company(i int) map[string]string {
	return map[string]string{"CompanyName": fmt.Sprintf("Contoso %d Ltd", i), "Website": fmt.Sprintf("contoso%d.com", i),
		"Location": "Seattle, WA, US", "PrimaryEmail": fmt.Sprintf("secret%d@contoso.com", i), "Revenue": "confidential"}
}

func (e *env) produceProfiles(ps ...schemas.Profile) {
	e.t.Helper()
	var msgs []kafka.Message
	for _, p := range ps {
		v, err := e.stack.Codec.Encode(schemas.ProfileUnified, p.Native())
		if err != nil {
			e.t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Topic: e.stack.Topics.Profiles, Key: []byte(p.TenantID + "/" + p.ProfileID), Value: v})
	}
	e.produceRaw(msgs...)
}

func (e *env) produceRaw(msgs ...kafka.Message) {
	e.t.Helper()
	for i := range msgs {
		if msgs[i].Topic == "" {
			msgs[i].Topic = e.stack.Topics.Profiles
		}
	}
	if err := e.prod.Write(context.Background(), msgs...); err != nil {
		e.t.Fatal(err)
	}
}

// outputs is what reached the output topics.
type outputs struct {
	enriched   map[string]schemas.Enriched // by key, latest
	tombstones map[string]bool
	dead       []schemas.Dead
	deadMsgs   []kafka.Message
	enrichedN  int // records on the enriched topic, duplicates included
}

// waitOutputs reads the output topics until cond holds or the time is up.
func (e *env) waitOutputs(within time.Duration, cond func(outputs) bool) outputs {
	e.t.Helper()
	var out outputs
	retrytest.Until(e.t, within, func() (bool, string) {
		out = e.readOutputs()
		return cond(out), fmt.Sprintf("outputs: %d enriched keys, %d tombstones, %d dead letters",
			len(out.enriched), len(out.tombstones), len(out.dead))
	})
	return out
}

// readOutputs reads both output topics from the start to their current end.
func (e *env) readOutputs() outputs {
	e.t.Helper()
	out := outputs{enriched: map[string]schemas.Enriched{}, tombstones: map[string]bool{}}
	e.readTopic(e.stack.Topics.Enriched, func(m kafka.Message) {
		out.enrichedN++
		if m.Value == nil {
			out.tombstones[string(m.Key)] = true
			delete(out.enriched, string(m.Key))
			return
		}
		ev, err := e.stack.Codec.DecodeEnriched(context.Background(), m.Value)
		if err != nil {
			e.t.Errorf("enriched topic holds an undecodable value at %d/%d: %v", m.Partition, m.Offset, err)
			return
		}
		delete(out.tombstones, string(m.Key))
		out.enriched[string(m.Key)] = ev
	})
	e.readTopic(e.stack.Topics.DeadLetters, func(m kafka.Message) {
		d, err := e.stack.Codec.DecodeDead(context.Background(), m.Value)
		if err != nil {
			e.t.Errorf("DLQ holds an undecodable value: %v", err)
			return
		}
		out.dead = append(out.dead, d)
		out.deadMsgs = append(out.deadMsgs, m)
	})
	return out
}

func (e *env) readTopic(topic string, apply func(kafka.Message)) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := processor.ReadAll(ctx, e.stack.Kafka, topic, apply); err != nil {
		e.t.Fatalf("reading %s: %v", topic, err)
	}
}

// namesSent counts, per company name, the records Leadspace received.
func (e *env) namesSent(program string) map[string]int {
	out := map[string]int{}
	for _, c := range e.callsFor(program) {
		for _, r := range c.Records {
			if comp, ok := r["company"].(map[string]any); ok {
				name, _ := comp["name"].(string)
				out[name]++
			}
		}
	}
	return out
}

// callsFor lists the simulator's requests for one program.
func (e *env) callsFor(program string) []simulator.Call {
	var out []simulator.Call
	for _, c := range e.stack.Simulator.Calls() {
		if c.Program == program {
			out = append(out, c)
		}
	}
	return out
}

// syncBuffer collects log lines from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// status reads the status topic and sums it per tenant.
func (e *env) status() map[string]*statusview.Tenant {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	records, err := processor.ReadStatus(ctx, e.stack.Kafka, e.stack.Topics.Status, e.stack.Codec)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]*statusview.Tenant{}
	for _, v := range statusview.Tenants(records, nil, time.Now()) {
		out[v.TenantID] = &v
	}
	return out
}

// waitStatus polls the status topic until cond holds for the tenant.
func (e *env) waitStatus(tenant string, within time.Duration, cond func(statusview.Tenant) bool) statusview.Tenant {
	e.t.Helper()
	var st *statusview.Tenant
	retrytest.Until(e.t, within, func() (bool, string) {
		st = e.status()[tenant]
		return st != nil && cond(*st), fmt.Sprintf("status of %s: %+v", tenant, st)
	})
	return *st
}

// waitRewritten waits until the instance wrote every partition status
// record of tenant again since a time (a restarted instance restored the
// partitions and committed): what a restart changes is then on the topic.
func (e *env) waitRewritten(tenant string, since time.Time, within time.Duration) {
	e.t.Helper()
	since = since.Truncate(time.Millisecond)
	retrytest.Until(e.t, within, func() (bool, string) {
		records, err := processor.ReadStatus(e.ctx(), e.stack.Kafka, e.stack.Topics.Status, e.stack.Codec)
		if err != nil {
			e.t.Fatal(err)
		}
		parts, fresh := 0, 0
		for _, s := range records {
			if s.TenantID == tenant && s.Partition >= 0 {
				parts++
				if !s.UpdatedAt.Before(since) {
					fresh++
				}
			}
		}
		return parts > 0 && fresh == parts, fmt.Sprintf("%d of %d partition status records of %s written since %s", fresh, parts, tenant, since.Format(time.TimeOnly))
	})
}

// waitCommitted waits until the group has committed, over all partitions of
// the profiles topic, past n inputs (the topic's end when nothing else is
// written).
func (e *env) waitCommitted(within time.Duration, n int) {
	e.t.Helper()
	cl, err := e.stack.Kafka.Client()
	if err != nil {
		e.t.Fatal(err)
	}
	defer processor.CloseClient(cl)
	retrytest.Until(e.t, within, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: e.group, Topics: map[string][]int{e.stack.Topics.Profiles: {0, 1, 2}}})
		cancel()
		total := int64(0)
		if err == nil {
			for _, p := range res.Topics[e.stack.Topics.Profiles] {
				total += max(p.CommittedOffset, 0)
			}
		}
		return total >= int64(n), fmt.Sprintf("the group committed %d of %d inputs (last error %v)", total, n, err)
	})
}

// keysGoingBackwards lists keys whose outputs on enriched-company, in offset
// order, go from a newer profile version to an older one.
func (e *env) keysGoingBackwards() []string {
	e.t.Helper()
	last := map[string]int64{}
	var out []string
	e.readTopic(e.stack.Topics.Enriched, func(m kafka.Message) {
		if m.Value == nil {
			delete(last, string(m.Key))
			return
		}
		ev, err := e.stack.Codec.DecodeEnriched(context.Background(), m.Value)
		if err != nil {
			return
		}
		if v, ok := last[string(m.Key)]; ok && ev.Lineage.ProfileVersion < v {
			out = append(out, fmt.Sprintf("%s (%d after %d)", m.Key, ev.Lineage.ProfileVersion, v))
		}
		last[string(m.Key)] = ev.Lineage.ProfileVersion
	})
	return out
}

// ctx is a context for one read of the topics.
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}
