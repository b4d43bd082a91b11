package leadspace

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

// BenchmarkTiers measures the throughput tiers of the design's performance
// model against the simulator at the published 30 TPS and 120 ms (±80 ms)
// latency, bulks ready 1 s after their submit (the simulator's default),
// with the client's defaults:
//
//	go test ./leadspace -run '^$' -bench Tiers -benchtime 1x
//
// single: 300 lookups from 64 concurrent callers as single calls: at most
// TPS records/s.
// backlog: 60,000 records submitted at once; the dispatcher turns them into
// bulks of 500 and polls each when its results are likely ready. Polls count
// as transactions, so the ceiling is TPS / (1 + polls per bulk) × 500:
// 7,500 records/s at one poll per bulk.
// backlog-free-polls: the same with polls free on both sides (the other
// case of the UNCERTAIN fact): the ceiling is TPS × 500 = 15,000 records/s.
// capacity-window: the same 60,000, but never more than Capacity() pending,
// as the processor's window will be: Little's law should keep the rate at
// the ceiling with no more records in flight than that.
//
// records/s is over the whole run (including the first cycle, when nothing
// has come back yet); steady is over the middle 80 % of outcomes.
func BenchmarkTiers(b *testing.B) {
	realistic := func(free bool) func(*simulator.Config) {
		return func(c *simulator.Config) {
			c.Programs[0].TPS = 30
			c.Latency, c.Jitter = 120*time.Millisecond, 80*time.Millisecond
			c.BulkReadyAfterPolls, c.BulkReadyAfter = 0, 0 // defaults: ready 1 s after the submit
			c.FreePolls = free
		}
	}
	defaults := func(free, singles bool) func(*Config) {
		return func(c *Config) {
			*c = Config{BaseURL: c.BaseURL, FreePolls: free}
			if singles {
				c.BulkThreshold = 1 << 30
			}
		}
	}
	tiers := []struct {
		name    string
		records int
		free    bool
		singles bool
		callers int  // 0: submit everything at once
		window  bool // keep Pending() under Capacity()
	}{
		{"single", 300, false, true, 64, false},
		{"backlog", 60_000, false, false, 0, false},
		{"backlog-free-polls", 60_000, true, false, 0, false},
		{"capacity-window", 60_000, false, false, 0, true},
	}
	for _, tier := range tiers {
		b.Run(tier.name, func(b *testing.B) {
			for range b.N {
				w := newWorld(b, realistic(tier.free), defaults(tier.free, tier.singles))
				p := w.program()
				reqs := companies(tier.records)
				var (
					mu     sync.Mutex
					times  []time.Duration
					failed int
					wg     sync.WaitGroup
				)
				start := time.Now()
				freed := make(chan struct{}, 1)
				done := func(o Outcome) {
					mu.Lock()
					times = append(times, time.Since(start))
					if o.Err != nil {
						failed++
					}
					mu.Unlock()
					select {
					case freed <- struct{}{}:
					default:
					}
					wg.Done()
				}
				wg.Add(len(reqs))
				maxCapacity := 0
				if tier.window {
					for i := 0; i < len(reqs); {
						capacity := p.Capacity()
						maxCapacity = max(maxCapacity, capacity)
						room := capacity - p.Pending()
						for ; room > 0 && i < len(reqs); room-- {
							p.Submit(context.Background(), reqs[i], done)
							i++
						}
						if room <= 0 {
							<-freed
						}
					}
				} else if tier.callers == 0 {
					for _, r := range reqs {
						p.Submit(context.Background(), r, done)
					}
				} else {
					work := make(chan Request)
					for range tier.callers {
						go func() {
							for r := range work {
								_, err := p.Enrich(context.Background(), r)
								done(Outcome{Err: err})
							}
						}()
					}
					for _, r := range reqs {
						work <- r
					}
					close(work)
				}
				wg.Wait()
				secs := time.Since(start).Seconds()
				sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
				lo, hi := times[len(times)/10], times[len(times)*9/10]
				steady := float64(len(times)*8/10) / (hi - lo).Seconds()
				st, sim := p.Stats(), w.sim.Stats()[testProgramID]
				polls := float64(sim.Requests[simulator.EndpointPoll])
				bulks := float64(sim.BulksReady)
				ppb, perBulk, ceiling := 0.0, 0.0, 30.0
				if bulks > 0 {
					ppb, perBulk = polls/bulks, float64(sim.RecordsReceived)/float64(sim.Requests[simulator.EndpointBulk])
					charged := ppb
					if tier.free {
						charged = 0
					}
					ceiling = 30 / (1 + charged) * 500
				}
				rate := float64(tier.records) / secs
				b.ReportMetric(rate, "records/s")
				b.ReportMetric(steady, "steady-records/s")
				b.ReportMetric(ppb, "polls/bulk")
				b.ReportMetric(float64(sim.RateLimited), "429s")
				b.ReportMetric(float64(failed), "failed")
				fmt.Printf("tier %-18s %6d records in %6.2fs = %8.1f records/s (steady %8.1f; ceiling %8.1f = %3.0f%%), "+
					"%d transactions, %.0f records/bulk, %.2f polls/bulk, turnaround %s, cycle %s, capacity %d (max %d), %d 429s, %d failed\n",
					tier.name, tier.records, secs, rate, steady, ceiling, 100*steady/ceiling,
					st.Transactions, perBulk, ppb, st.BulkTurnaround.Round(time.Millisecond), st.BulkCycle.Round(time.Millisecond),
					st.Capacity, maxCapacity, sim.RateLimited, failed)
			}
		})
	}
}
