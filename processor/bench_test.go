package processor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor"
)

// BenchmarkPipeline measures the performance model of the design brief,
// end to end (kfake, Avro, the window, commits) against a Leadspace
// simulator at the published tier: 30 transactions/s, 120 ms latency.
//
//	throughput <= min(TPS x records per transaction, in-flight / latency, pipeline CPU)
//
// Run with: make bench (each case runs once; the figure is events/s).
func BenchmarkPipeline(b *testing.B) {
	cases := []struct {
		name   string
		events int
		opts   []startOpt
		replay bool
	}{
		{name: "single-calls", events: 300, opts: []startOpt{singleCallsAt(30)}},
		{name: "bulk", events: 5000, opts: []startOpt{leadspaceAt(30)}},
		{name: "replay-unchanged", events: 5000, opts: []startOpt{leadspaceAt(30)}, replay: true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				acme := tenant("acme")
				acme.tps = 30
				e := newEnvWith(b, envOptions{latency: 120 * time.Millisecond}, acme)
				e.start(c.opts...)
				ps := companies(c.events, "acme")
				if c.replay {
					// Enrich once; the measured pass replays the same profiles
					// under new event ids: nothing changed, so no call is due.
					e.produceProfiles(ps...)
					e.waitOutputs(5*time.Minute, func(o outputs) bool { return len(o.enriched) == c.events })
					for i := range ps {
						ps[i].EventID = fmt.Sprintf("replay-%d", i)
					}
				}
				calls := len(e.stack.Simulator.Calls())
				b.ResetTimer()
				start := time.Now()
				e.produceProfiles(ps...)
				if c.replay {
					e.waitStatus("acme", 5*time.Minute, func(s processor.TenantStatus) bool { return s.Profiles == int64(2*c.events) })
				} else {
					e.waitOutputs(5*time.Minute, func(o outputs) bool { return len(o.enriched) == c.events })
				}
				took := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(c.events)/took.Seconds(), "events/s")
				b.ReportMetric(float64(len(e.stack.Simulator.Calls())-calls), "leadspace-requests")
				e.shutdown()
			}
		})
	}
}

func leadspaceAt(tps float64) startOpt {
	return func(c *processor.Config, ls *leadspace.Config) {
		ls.TPS = tps
		c.Window = 5000
	}
}
