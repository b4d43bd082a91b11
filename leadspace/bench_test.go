package leadspace

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

// BenchmarkTiers measures the two throughput tiers of the design's
// performance model against the simulator at the published 30 TPS and
// 120 ms (±80 ms) latency:
//
//	go test ./leadspace -run '^$' -bench Tiers -benchtime 1x
//
// single: 3,000 lookups from 64 concurrent callers, at most TPS records/s.
// bulk: the same 3,000 in submits of 500, polled; seconds, not minutes.
// enrich: the same 3,000 through Enrich from a window of 1,000 callers; it
// turns the backlog into bulks by itself. Bulk latency (submit + polls) is
// about 1.5 s, so this tier is bound by window / latency, not by TPS.
func BenchmarkTiers(b *testing.B) {
	const (
		records = 3000
		callers = 64   // single tier: plenty for 30 TPS x 0.2 s latency
		window  = 1000 // enrich tier: the processor's in-flight window
	)
	realistic := func(c *simulator.Config) {
		c.Programs[0].TPS = 30
		c.Latency, c.Jitter = 120*time.Millisecond, 80*time.Millisecond
		c.BulkReadyAfterPolls = 2
	}
	defaults := func(c *Config) {
		c.TPS, c.BackoffBase, c.BackoffMax, c.BulkPollFirst, c.BulkPollMin = 0, 0, 0, 0, 0 // package defaults
		c.RequestTimeout = 0
	}
	concurrently := func(p *Program, reqs []Request, callers int, call func(*Program, context.Context, Request) (Result, error)) int {
		work := make(chan Request)
		var mu sync.Mutex
		failed := 0
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				for r := range work {
					if _, err := call(p, context.Background(), r); err != nil {
						mu.Lock()
						failed++
						mu.Unlock()
					}
				}
			})
		}
		for _, r := range reqs {
			work <- r
		}
		close(work)
		wg.Wait()
		return failed
	}
	tiers := []struct {
		name string
		run  func(*Program, []Request) int
	}{
		{"single", func(p *Program, reqs []Request) int { return concurrently(p, reqs, callers, (*Program).Enrich) }},
		{"bulk", func(p *Program, reqs []Request) int {
			_, err := p.EnrichBulk(context.Background(), reqs)
			if be, ok := err.(*BulkError); ok {
				return len(be.Unwrap())
			} else if err != nil {
				return len(reqs)
			}
			return 0
		}},
		{"enrich", func(p *Program, reqs []Request) int { return concurrently(p, reqs, window, (*Program).Enrich) }},
	}
	for _, tier := range tiers {
		b.Run(tier.name, func(b *testing.B) {
			for range b.N {
				w := newWorld(b, realistic, defaults)
				p := w.program()
				reqs := companies(records)
				start := time.Now()
				failed := tier.run(p, reqs)
				secs := time.Since(start).Seconds()
				st := p.Stats()
				rate := float64(records) / secs
				b.ReportMetric(rate, "records/s")
				b.ReportMetric(float64(st.RateLimited), "429s")
				b.ReportMetric(secs, "s")
				b.ReportMetric(float64(failed), "failed")
				fmt.Printf("tier %-6s %d records in %6.2fs = %8.1f records/s, %d transactions, %d 429s, %d failed\n",
					tier.name, records, secs, rate, st.Transactions, st.RateLimited, failed)
			}
		})
	}
}
