package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
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
	if err := s.parse(args); err != nil {
		return err
	}
	switch {
	case f.profiles < 0 || f.badEvents < 0:
		return errors.New("profiles, bad-events: must not be negative")
	case f.tenants < 1:
		return errors.New("tenants: at least 1")
	case f.withoutConsent < 0 || f.withoutConsent > f.tenants:
		return fmt.Errorf("without-consent: %d is outside 0..%d (tenants)", f.withoutConsent, f.tenants)
	case f.tps <= 0:
		return errors.New("leadspace-tps: must be positive")
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

	if err := seedDev(ctx, stack, f); err != nil {
		return err
	}

	sf := &serviceFlags{kafkaFlags: kafkaFlags{brokers: stack.Kafka.Brokers, registryURL: stack.RegistryURL, topics: stack.Topics},
		group: "leadspace-enricher-dev", window: 50000, maxInFlightBytes: 64 << 20, commitInterval: time.Second, shutdownTimeout: 20 * time.Second,
		leadspaceURL: stack.LeadspaceURL, leadspaceTPS: f.tps, leadspaceTimeout: 15 * time.Second,
		leadspaceBulkFrom: 20, breakerOpen: 10 * time.Second, allowPlaintextTokens: true}
	svc, err := newService(ctx, sf, log)
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- svc.run(runCtx) }()

	if !f.exitWhenDone {
		fmt.Printf("enricher dev is running (Ctrl-C to stop)\n  kafka:           %s\n  schema registry: %s\n  leadspace sim:   %s\n  topics:          %s, %s, %s, %s, %s\n",
			stack.Kafka.Brokers[0], stack.RegistryURL, stack.LeadspaceURL, stack.Topics.Profiles, stack.Topics.Control,
			stack.Topics.Enriched, stack.Topics.DeadLetters, stack.Topics.Status)
	}
	tally := newTally()
	tallyErr := make(chan error, 2)
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	go func() {
		tallyErr <- processor.Follow(followCtx, stack.Kafka, stack.Topics.Enriched, tally.enriched(stack.Codec), func() {})
	}()
	go func() {
		tallyErr <- processor.Follow(followCtx, stack.Kafka, stack.Topics.DeadLetters, tally.dead(stack.Codec), func() {})
	}()

	want := f.profiles + f.badEvents
	deadline := time.After(f.timeout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t := tally.total()
			fmt.Fprintf(os.Stderr, "\r%5.1fs  enriched %d  not matched %d  skipped %d  dead letters %d  (%d of %d outputs, %d Leadspace records)   ",
				time.Since(start).Seconds(), t.Enriched, t.NotMatched, t.Skipped, t.DeadLetters, t.outputs(), want, simRecords(stack, f.tenants))
			if f.exitWhenDone && t.outputs() >= want {
				fmt.Fprintln(os.Stderr)
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
			if f.exitWhenDone {
				return fmt.Errorf("timeout: %d of %d outputs after %s", tally.total().outputs(), want, f.timeout)
			}
		case <-ctx.Done():
			stopRun()
			<-runErr
			fmt.Fprintln(os.Stderr, "\nstopped")
			return nil
		}
	}
}

// seedDev writes each tenant's connection, consent and mapping, then its
// profiles and the bad events, like the admin and upstream would.
func seedDev(ctx context.Context, stack *embedded.Stack, f devFlags) error {
	prod, err := processor.NewProducer(stack.Kafka, stack.Codec)
	if err != nil {
		return err
	}
	defer prod.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	tenants := make([]string, f.tenants)
	for i := range tenants {
		t := devTenant(i)
		tenants[i] = t
		events := tenantControl(t, "plain:"+devToken(t), i < f.tenants-f.withoutConsent, now)
		if err := publishControl(ctx, prod, stack.Topics.Control, processor.ControlAuth{}, events); err != nil {
			return err
		}
	}
	msgs, err := demoMessages(stack.Codec, stack.Topics.Profiles, tenants, f.profiles, f.badEvents, now)
	if err != nil {
		return err
	}
	return writeBatches(ctx, prod, msgs)
}

// tally counts outputs read back from the output topics, once per event id
// (outputs are at-least-once).
type tally struct {
	mu      sync.Mutex
	seen    map[string]bool
	tenants map[string]*tenantTally
}

type tenantTally struct {
	Tenant           string `json:"tenant"`
	Enriched         int    `json:"enriched"`
	NotMatched       int    `json:"not_matched"`
	Skipped          int    `json:"skipped"`
	DeadLetters      int    `json:"dead_letters"`
	LeadspaceRecords int    `json:"leadspace_records"`
}

func (t tenantTally) outputs() int { return t.Enriched + t.NotMatched + t.Skipped + t.DeadLetters }

func newTally() *tally { return &tally{seen: map[string]bool{}, tenants: map[string]*tenantTally{}} }

func (t *tally) count(id, tenant string, add func(*tenantTally)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[id] {
		return
	}
	t.seen[id] = true
	tt := t.tenants[tenant]
	if tt == nil {
		tt = &tenantTally{Tenant: tenant}
		t.tenants[tenant] = tt
	}
	add(tt)
}

func (t *tally) enriched(codec *schemas.Codec) func(kafka.Message) {
	return func(m kafka.Message) {
		if m.Value == nil {
			return
		}
		e, err := codec.DecodeEnriched(context.Background(), m.Value)
		if err != nil {
			return
		}
		t.count("e/"+e.EventID, e.TenantID, func(tt *tenantTally) {
			switch e.Status {
			case schemas.StatusEnriched:
				tt.Enriched++
			case schemas.StatusNotMatched:
				tt.NotMatched++
			case schemas.StatusSkipped:
				tt.Skipped++
			}
		})
	}
}

func (t *tally) dead(codec *schemas.Codec) func(kafka.Message) {
	return func(m kafka.Message) {
		d, err := codec.DecodeDead(context.Background(), m.Value)
		if err != nil {
			return
		}
		t.count("d/"+d.ID, d.TenantID, func(tt *tenantTally) { tt.DeadLetters++ })
	}
}

func (t *tally) total() tenantTally {
	t.mu.Lock()
	defer t.mu.Unlock()
	var sum tenantTally
	for _, tt := range t.tenants {
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
	t.mu.Lock()
	for i := 0; i < f.tenants; i++ {
		tt := t.tenants[devTenant(i)]
		if tt == nil {
			tt = &tenantTally{Tenant: devTenant(i)}
		}
		tt.LeadspaceRecords = stack.Simulator.RecordsReceived(devTenant(i))
		summary.LeadspaceRecords += tt.LeadspaceRecords
		summary.Tenants = append(summary.Tenants, tt)
	}
	t.mu.Unlock()
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
