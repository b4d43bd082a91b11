package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/schemas"
)

type devFlags struct {
	profiles, tenants, withoutConsent, badEvents int
	tps                                          float64
	latency, timeout                             time.Duration
	exitWhenDone                                 bool
	logLevel                                     string
}

func cmdDev(args []string) error {
	s := newSettings("dev")
	var f devFlags
	s.IntVar(&f.profiles, "profiles", 200, "company profiles to seed, spread over the tenants")
	s.IntVar(&f.tenants, "tenants", 1, "demo tenants, each with its own Leadspace program")
	s.IntVar(&f.withoutConsent, "without-consent", 0, "the last M tenants get a connection and mapping but no consent")
	s.IntVar(&f.badEvents, "bad-events", 5, "undecodable values to seed (they must reach the DLQ)")
	s.Float64Var(&f.tps, "leadspace-tps", 30, "simulated Leadspace rate per program (the published tier)")
	s.DurationVar(&f.latency, "leadspace-latency", 120*time.Millisecond, "simulated Leadspace latency")
	s.BoolVar(&f.exitWhenDone, "exit-when-done", false, "exit 0 once every seeded event has its output, printing a JSON summary")
	s.DurationVar(&f.timeout, "timeout", 10*time.Minute, "with --exit-when-done: fail if the outputs are not complete by then")
	s.StringVar(&f.logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	if err := parseFlags(s, args); err != nil {
		return err
	}
	switch {
	case f.profiles < 0 || f.badEvents < 0:
		return badUsage("profiles, bad-events: must not be negative")
	case f.tenants < 1:
		return badUsage("tenants: at least 1")
	case f.withoutConsent < 0 || f.withoutConsent > f.tenants:
		return badUsage("without-consent: %d is outside 0..%d (tenants)", f.withoutConsent, f.tenants)
	case f.tps <= 0:
		return badUsage("leadspace-tps: must be positive")
	}
	log, err := newLogger("console", f.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runDev(ctx, f, log)
}

func devTenant(i int) string        { return fmt.Sprintf("tenant-%d", i+1) }
func devToken(tenant string) string { return "dev-token-" + tenant }

// devAdminKey signs dev's control events, so that the embedded service
// verifies them as production does, and admin commands need the key too.
func devAdminKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "dev-admin-key-" + hex.EncodeToString(b)
}

func runDev(ctx context.Context, f devFlags, log *zap.Logger) error {
	start := time.Now()
	programs := make([]simulator.ProgramConfig, f.tenants)
	for i := range programs {
		t := devTenant(i)
		programs[i] = simulator.ProgramConfig{ID: t, Tokens: []string{devToken(t)}, TPS: f.tps, Credits: simulator.Unlimited}
	}
	stack, err := embedded.Start(ctx, embedded.Options{Programs: programs, LeadspaceLatency: f.latency})
	if err != nil {
		return err
	}
	defer stack.Close()

	adminKey := devAdminKey()
	seeded, err := seedDev(ctx, stack, f, controlplane.Auth{Key: []byte(adminKey)})
	if err != nil {
		return err
	}

	// The service runs with the shipped defaults of `enricher run`, pointed
	// at the embedded stack.
	sf := &serviceFlags{}
	sf.bind(newSettings("run"))
	sf.brokers, sf.registryURL, sf.topics = stack.Kafka.Brokers, stack.RegistryURL, stack.Topics
	sf.adminKeyFlags = adminKeyFlags{key: adminKey}
	sf.group, sf.leadspaceURL, sf.leadspaceTPS, sf.allowPlaintextTokens = "leadspace-enricher-dev", stack.LeadspaceURL, f.tps, true
	sf.httpAddr = ""
	svc, err := newService(ctx, sf, log)
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- svc.run(runCtx) }()

	// With --exit-when-done stdout is the JSON summary alone (CI reads it).
	banner := os.Stdout
	if f.exitWhenDone {
		banner = os.Stderr
	}
	printDevBanner(banner, stack, f, adminKey)
	tally := newTally(seeded)
	tallyErr := make(chan error, 2)
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	go func() {
		tallyErr <- processor.Follow(followCtx, stack.Kafka, stack.Topics.Enriched, tally.enriched(stack.Codec), func() {})
	}()
	go func() {
		tallyErr <- processor.Follow(followCtx, stack.Kafka, stack.Topics.DeadLetters, tally.dead(stack.Codec), func() {})
	}()

	want := len(seeded)
	prog := newProgress(os.Stderr)
	line := func() (string, bool) {
		t := tally.total()
		done := int64(t.outputs())
		return fmt.Sprintf("%5.1fs %s %d of %d seeded events have their output: enriched %d, not matched %d, skipped %d, dead letters %d; %d Leadspace records",
			time.Since(start).Seconds(), bar(done, int64(want), 20), min(t.outputs(), want), want, t.Enriched, t.NotMatched, t.Skipped,
			t.DeadLetters, simRecords(stack, f.tenants)), t.outputs() >= want
	}
	complete := false
	deadline := time.After(f.timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if complete {
				continue
			}
			l, done := line()
			if !done {
				prog.update(l)
				continue
			}
			complete = true
			prog.done(l)
			fmt.Fprintf(os.Stderr, "done: every seeded event (%d) has its output\n", want)
			if f.exitWhenDone {
				stopRun()
				if err := <-runErr; err != nil {
					return err
				}
				return printSummary(f, tally, stack, time.Since(start))
			}
		case err := <-runErr:
			if ctx.Err() != nil {
				fmt.Fprintln(os.Stderr, "\nstopped")
				return nil
			}
			return fmt.Errorf("pipeline stopped: %w", err)
		case err := <-tallyErr:
			if ctx.Err() == nil {
				return fmt.Errorf("read outputs back: %w", err)
			}
		case <-deadline:
			if f.exitWhenDone && !complete {
				return fmt.Errorf("timeout: %d of %d seeded events have their output after %s", tally.total().outputs(), want, f.timeout)
			}
		case <-ctx.Done():
			stopRun()
			<-runErr
			fmt.Fprintln(os.Stderr, "\nstopped")
			return nil
		}
	}
}

// printDevBanner says what dev seeded and how to reach it: the addresses
// as the environment admin commands read, and commands that work as printed.
func printDevBanner(w *os.File, stack *embedded.Stack, f devFlags, adminKey string) {
	fmt.Fprintln(w, "enricher dev is running (Ctrl-C stops it; everything lives in memory)")
	fmt.Fprintln(w, "\nTenants seeded (each its own Leadspace program in the simulator):")
	for i := 0; i < f.tenants; i++ {
		t := devTenant(i)
		consent := "consent given"
		if i >= f.tenants-f.withoutConsent {
			consent = "NO consent: nothing of it may leave"
		}
		fmt.Fprintf(w, "  %-10s token %s (the simulator accepts it), mapping name=%s website=%s location=%s, %s\n",
			t, devToken(t), demoNameAttr, demoWebsiteAttr, demoLocationAttr, consent)
	}
	fmt.Fprintf(w, "  %d profiles and %d undecodable events on %s\n", f.profiles, f.badEvents, stack.Topics.Profiles)
	fmt.Fprintln(w, "\nIn another shell, point the admin commands at it (control events are signed with this dev admin key):")
	for _, kv := range devEnv(stack, adminKey) {
		fmt.Fprintf(w, "  export %s\n", kv)
	}
	t := devTenant(0)
	fmt.Fprintln(w, "\nThen try (enricher on the PATH: go install ./cmd/enricher and add $(go env GOPATH)/bin to PATH; or use 'go run ./cmd/enricher'):")
	for _, ex := range []string{
		"enricher status",
		"enricher show --tenant " + t + " --limit 10",
		"enricher refresh --tenant " + t + " --dry-run",
		"enricher refresh --tenant " + t,
		"enricher dlq list",
		"enricher replay --dry-run",
		"enricher tail --tenant " + t,
	} {
		fmt.Fprintf(w, "  %s\n", ex)
	}
	fmt.Fprintln(w)
}

// devEnv is every variable the admin commands need to reach dev's stack.
func devEnv(stack *embedded.Stack, adminKey string) []string {
	env := []string{
		EnvName("brokers") + "=" + strings.Join(stack.Kafka.Brokers, ","),
		EnvName("schema-registry-url") + "=" + stack.RegistryURL,
		EnvName("leadspace-url") + "=" + stack.LeadspaceURL,
		EnvName("admin-key") + "=" + adminKey,
	}
	def := processor.Topics{}.WithDefaults()
	for flag, v := range map[string][2]string{"profiles-topic": {stack.Topics.Profiles, def.Profiles}, "control-topic": {stack.Topics.Control, def.Control},
		"enriched-topic": {stack.Topics.Enriched, def.Enriched}, "dlq-topic": {stack.Topics.DeadLetters, def.DeadLetters},
		"status-topic": {stack.Topics.Status, def.Status}} {
		if v[0] != v[1] {
			env = append(env, EnvName(flag)+"="+v[0])
		}
	}
	return env
}

// seedDev writes each tenant's connection, consent and mapping, then its
// profiles and the bad events, like the admin and upstream would. It
// returns the keys it wrote, each of which must get one output.
func seedDev(ctx context.Context, stack *embedded.Stack, f devFlags, auth controlplane.Auth) (map[string]bool, error) {
	prod, err := processor.NewProducer(stack.Kafka, stack.Codec)
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	tenants := make([]string, f.tenants)
	for i := range tenants {
		t := devTenant(i)
		tenants[i] = t
		events := tenantControl(t, "plain:"+devToken(t), i < f.tenants-f.withoutConsent, now)
		if err := publishControl(ctx, prod, stack.Topics.Control, auth, events); err != nil {
			return nil, err
		}
	}
	msgs, err := demoMessages(stack.Codec, stack.Topics.Profiles, tenants, f.profiles, f.badEvents, now)
	if err != nil {
		return nil, err
	}
	keys := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		keys[string(m.Key)] = true
	}
	return keys, writeBatches(ctx, prod, msgs)
}

// tally counts the seeded keys that have an output, read back from the
// output topics: one outcome per key (outputs are at-least-once, and a
// later Run or replay may write more), so it never passes 100%.
type tally struct {
	mu      sync.Mutex
	seeded  map[string]bool
	outcome map[string]string // key -> enriched status, or "DEAD_LETTER"
}

const outcomeDead = "DEAD_LETTER"

type tenantTally struct {
	Tenant           string `json:"tenant"`
	Enriched         int    `json:"enriched"`
	NotMatched       int    `json:"not_matched"`
	Skipped          int    `json:"skipped"`
	DeadLetters      int    `json:"dead_letters"`
	LeadspaceRecords int    `json:"leadspace_records"`
}

func (t tenantTally) outputs() int { return t.Enriched + t.NotMatched + t.Skipped + t.DeadLetters }

func newTally(seeded map[string]bool) *tally {
	return &tally{seeded: seeded, outcome: map[string]string{}}
}

func (t *tally) enriched(codec *schemas.Codec) func(kafka.Message) {
	return func(m kafka.Message) {
		if m.Value == nil || !t.seeded[string(m.Key)] {
			return
		}
		e, err := codec.DecodeEnriched(context.Background(), m.Value)
		if err != nil {
			return
		}
		t.mu.Lock()
		t.outcome[string(m.Key)] = e.Status // an answer supersedes a dead letter
		t.mu.Unlock()
	}
}

func (t *tally) dead(codec *schemas.Codec) func(kafka.Message) {
	return func(m kafka.Message) {
		if m.Value == nil || !t.seeded[string(m.Key)] {
			return
		}
		if _, err := codec.DecodeDead(context.Background(), m.Value); err != nil {
			return
		}
		t.mu.Lock()
		if t.outcome[string(m.Key)] == "" {
			t.outcome[string(m.Key)] = outcomeDead
		}
		t.mu.Unlock()
	}
}

// tenants counts outcomes per tenant.
func (t *tally) tenants() map[string]*tenantTally {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]*tenantTally{}
	for key, o := range t.outcome {
		tenant, _, _ := strings.Cut(key, "/")
		tt := out[tenant]
		if tt == nil {
			tt = &tenantTally{Tenant: tenant}
			out[tenant] = tt
		}
		switch o {
		case schemas.StatusEnriched:
			tt.Enriched++
		case schemas.StatusNotMatched:
			tt.NotMatched++
		case schemas.StatusSkipped:
			tt.Skipped++
		case outcomeDead:
			tt.DeadLetters++
		}
	}
	return out
}

func (t *tally) total() tenantTally {
	var sum tenantTally
	for _, tt := range t.tenants() {
		sum.Enriched += tt.Enriched
		sum.NotMatched += tt.NotMatched
		sum.Skipped += tt.Skipped
		sum.DeadLetters += tt.DeadLetters
	}
	return sum
}

func printSummary(f devFlags, t *tally, stack *embedded.Stack, took time.Duration) error {
	total := t.total()
	summary := struct {
		Profiles         int            `json:"profiles"`
		BadEvents        int            `json:"bad_events"`
		Enriched         int            `json:"enriched"`
		NotMatched       int            `json:"not_matched"`
		Skipped          int            `json:"skipped"`
		DeadLetters      int            `json:"dead_letters"`
		LeadspaceRecords int            `json:"leadspace_records"`
		Seconds          float64        `json:"seconds"`
		Tenants          []*tenantTally `json:"tenants"`
	}{Profiles: f.profiles, BadEvents: f.badEvents, Enriched: total.Enriched, NotMatched: total.NotMatched,
		Skipped: total.Skipped, DeadLetters: total.DeadLetters, Seconds: float64(took.Milliseconds()) / 1000}
	tenants := t.tenants()
	for i := 0; i < f.tenants; i++ {
		tt := tenants[devTenant(i)]
		if tt == nil {
			tt = &tenantTally{Tenant: devTenant(i)}
		}
		tt.LeadspaceRecords = stack.Simulator.RecordsReceived(devTenant(i))
		summary.LeadspaceRecords += tt.LeadspaceRecords
		summary.Tenants = append(summary.Tenants, tt)
	}
	sort.Slice(summary.Tenants, func(i, j int) bool { return summary.Tenants[i].Tenant < summary.Tenants[j].Tenant })
	return json.NewEncoder(os.Stdout).Encode(summary)
}

// simRecords is what the simulator received from all demo tenants.
func simRecords(stack *embedded.Stack, tenants int) int {
	n := 0
	for i := 0; i < tenants; i++ {
		n += stack.Simulator.RecordsReceived(devTenant(i))
	}
	return n
}
