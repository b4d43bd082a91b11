package leadspace

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

func TestLittleCapacity(t *testing.T) {
	for _, c := range []struct {
		name  string
		rate  float64
		polls float64
		cycle time.Duration
		want  int
	}{
		// λ = 30·500/2 = 7,500/s; ·1.25 s·1.25 = 11,719 → 24 bulks + 1
		{"defaults before any bulk", 30, 1, 1250 * time.Millisecond, 12_500},
		// 7,500/s · 1.05 s · 1.25 = 9,844 → 20 bulks + 1
		{"one poll per bulk, measured", 30, 1, 1050 * time.Millisecond, 10_500},
		// 15,000/s · 1 s · 1.25 = 18,750 → 38 bulks + 1
		{"free polls", 30, 0, time.Second, 19_500},
		// 30·500/4 = 3,750/s · 1.9 s · 1.25 = 8,906 → 18 bulks + 1
		{"three polls per bulk", 30, 3, 1900 * time.Millisecond, 9_500},
		// a third of the fleet's 30 TPS: 2,500/s · 1 s · 1.25 = 3,125 → 7 bulks + 1
		{"fleet of 3", 10, 1, time.Second, 4_000},
		{"never below two bulks", 1, 1, 100 * time.Millisecond, 1_000},
		// 7,500/s · 20 s: more than Leadspace's processing backlog holds
		{"never above Leadspace's backlog", 30, 1, 20 * time.Second, 100_000},
	} {
		if got := littleCapacity(c.rate, 500, c.polls, c.cycle); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// Capacity follows what the program measures: polls per bulk, the cycle,
// the rate it may use (fleet share, AIMD).
func TestCapacityFollowsMeasurements(t *testing.T) {
	c, err := New(Config{BaseURL: "http://127.0.0.1:9"}) // never called
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.Program(Credentials{Token: testToken})
	// Before the first results no poll is due: 15,000/s · 1.25 s · 1.25 =
	// 23,438 → 47 bulks + 1.
	if got := p.Capacity(); got != 24_000 {
		t.Fatalf("default estimate %d, want 24,000 (30 TPS, no poll yet, 1.25 s cycle)", got)
	}
	for range 200 { // bulks that took two polls and two seconds
		p.clock.ready(2, 2*time.Second, true)
	}
	// 30·500/3 = 5,000/s · 2 s · 1.25 = 12,500 → 25 bulks + 1
	if got := p.Capacity(); got != 13_000 {
		t.Fatalf("after 2-poll, 2 s bulks: %d, want 13,000", got)
	}
	c.SetShare(1.0 / 3) // 10 TPS: 1,667/s · 2 s · 1.25 = 4,167 → 9 bulks + 1
	if got := p.Capacity(); got != 5_000 {
		t.Fatalf("a third of the rate: %d, want 5,000", got)
	}
	p.lim.throttled(0) // a 429 halves the rate: 833/s · 2 s · 1.25 = 2,083 → 5 bulks + 1
	if got := p.Capacity(); got != 3_000 {
		t.Fatalf("after a 429: %d, want 3,000", got)
	}
	free, _ := New(Config{BaseURL: "http://127.0.0.1:9", FreePolls: true})
	defer free.Close()
	// 15,000/s · 1.25 s · 1.25 = 23,438 → 47 bulks + 1
	if got := free.Program(Credentials{Token: testToken}).Capacity(); got != 24_000 {
		t.Fatalf("free polls: %d, want 24,000", got)
	}
}

func TestPollClockLearnsTurnaround(t *testing.T) {
	cfg := Config{BulkPollFirst: time.Second, BulkPollMin: 50 * time.Millisecond, BulkMaxWait: time.Minute}
	c := newPollClock(&cfg)
	// Slower than the guess: each "not ready" lifts the first poll just past it.
	c.notReady(time.Second)
	c.notReady(1050 * time.Millisecond)
	if got := c.first(); got != 1100*time.Millisecond {
		t.Fatalf("after two misses: %s", got)
	}
	c.ready(3, 1200*time.Millisecond, true)
	if got := c.first(); got != 1100*time.Millisecond {
		t.Fatalf("a multi-poll bulk must not move the estimate past the last miss: %s", got)
	}
	// Ready at the first poll, again and again: it creeps down, slowly.
	for range 100 {
		c.ready(1, time.Second, true)
	}
	if got := c.first(); got > 1100*time.Millisecond*78/100 || got < 1100*time.Millisecond*77/100 {
		t.Fatalf("after 100 first-poll hits: %s, want about 0.9975^100 = 78%% of 1.1 s", got)
	}
	// Disturbed polls teach nothing about the turnaround.
	before := c.first()
	c.ready(1, time.Second, false)
	if c.first() != before {
		t.Fatal("a disturbed bulk moved the estimate")
	}
	for range 2000 {
		c.ready(1, time.Second, true)
	}
	if got := c.first(); got != 50*time.Millisecond {
		t.Fatalf("floor: %s", got)
	}
	if _, ppb, _, measured := c.snapshot(); !measured || ppb < 0.99 || ppb > 1.01 {
		t.Fatalf("polls per bulk %.2f", ppb)
	}
}

// Against time-based readiness, the program learns when results are ready
// and polls each bulk about once.
func TestBulksArePolledAboutOnce(t *testing.T) {
	const turnaround = 60 * time.Millisecond
	w := newWorld(t, func(c *simulator.Config) { c.BulkReadyAfterPolls = 0; c.BulkReadyAfter = turnaround },
		func(c *Config) {
			c.BulkThreshold = 1
			c.BulkPollFirst = 10 * time.Millisecond
			c.BulkPollMin = 5 * time.Millisecond
		})
	p := w.program()
	run := func(bulks int) {
		reqs := companies(bulks * 5)
		for i := range bulks {
			if _, err := p.EnrichBulk(context.Background(), reqs[i*5:(i+1)*5]); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(3) // learning: the guess (10 ms) is far too early
	warm := w.sim.Stats()[testProgramID]
	run(40)
	st := w.sim.Stats()[testProgramID]
	bulks := st.BulksReady - warm.BulksReady
	polls := st.Requests[simulator.EndpointPoll] - warm.Requests[simulator.EndpointPoll]
	est := p.Stats().BulkTurnaround
	t.Logf("learning: %d polls for %d bulks; then %d polls for %d bulks; turnaround learnt %s (simulator %s)",
		warm.Requests[simulator.EndpointPoll], warm.BulksReady, polls, bulks, est, turnaround)
	if bulks != 40 || float64(polls)/float64(bulks) > 1.25 {
		t.Fatalf("%d polls for %d bulks after learning, want about one each", polls, bulks)
	}
	if est < turnaround*8/10 || est > turnaround+30*time.Millisecond {
		t.Fatalf("learnt turnaround %s, simulator's is %s", est, turnaround)
	}
}

// With FreePolls the limiter does not pace polls: a bulk that needs many
// polls does not wait for tokens between them.
func TestFreePollsAreNotPaced(t *testing.T) {
	for _, free := range []bool{false, true} {
		w := newWorld(t, func(c *simulator.Config) { c.BulkReadyAfterPolls = 20; c.FreePolls = free },
			func(c *Config) {
				c.TPS, c.MinTPS = 10, 10 // a token every 100 ms
				c.BulkThreshold, c.FreePolls = 1, free
				c.BulkPollFirst, c.BulkPollMin, c.BulkPollMax = time.Millisecond, time.Millisecond, time.Millisecond
			})
		start := time.Now()
		if _, err := w.program().EnrichBulk(context.Background(), companies(2)); err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		st := w.sim.Stats()[testProgramID]
		if st.Requests[simulator.EndpointPoll] != 21 || st.RateLimited != 0 {
			t.Fatalf("free=%v: %+v", free, st)
		}
		if free && el > time.Second {
			t.Fatalf("21 free polls took %s: they were paced", el)
		}
		if !free && el < 2*time.Second {
			t.Fatalf("21 paced polls at 10 TPS took only %s", el)
		}
	}
}

// Polls per bulk, turnaround, capacity and pending are exported, labelled
// by the program key only.
func TestProgramMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	w := newWorld(t, func(c *simulator.Config) { c.BulkReadyAfterPolls = 0; c.BulkReadyAfter = 10 * time.Millisecond },
		func(c *Config) { c.Registerer = reg; c.BulkThreshold = 1 })
	p := w.program()
	if _, err := p.EnrichBulk(context.Background(), companies(3)); err != nil {
		t.Fatal(err)
	}
	p.Capacity()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		seen[f.GetName()] = true
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "program" && l.GetValue() != p.Key() {
					t.Fatalf("%s labelled program=%q", f.GetName(), l.GetValue())
				}
			}
		}
		if strings.Contains(f.String(), testToken) {
			t.Fatalf("%s holds the token", f.GetName())
		}
	}
	for _, name := range []string{"leadspace_bulk_polls", "leadspace_bulk_cycle_seconds", "leadspace_bulk_turnaround_seconds",
		"leadspace_program_capacity_records", "leadspace_program_pending_records", "leadspace_requests_total"} {
		if !seen[name] {
			t.Errorf("metric %s missing", name)
		}
	}
}
