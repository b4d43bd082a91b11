package main

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"go.uber.org/zap"
)

// keepMemoryUnder gives the Go runtime a soft memory limit that follows
// the heap that is live.
//
// Most of the heap is the partitions' tables, which live as long as the
// process. With the runtime's default alone (GOGC=100) the heap grows to
// twice what is live before a collection: 350 MiB of RSS for 171 MiB live
// at 1,000,000 profiles. A lower GOGC costs CPU at every size (at 30, the
// two-program backlog became CPU-bound on 2 cores). A soft limit costs
// nothing while the heap is small, and near it the GC works harder. Were
// the tables alone to outgrow the limit, the GC would run back to back, so
// the limit rises to 1.25 x what is live: then the heap peaks at 1.25 x
// live, like GOGC=25. GOMEMLIMIT in the environment takes precedence.
//
// Under the limit, GOGC's own trigger (a collection whenever the heap
// doubles what is live) only adds collections: with one program's backlog
// the heap is about 70 MiB live, so the GC ran at 140 MiB, twice as often
// as the limit needs, and with four programs the GC (marking and assists)
// was a quarter to a third of the instance's CPU (issue 21). So, with our
// limit, GOGC is 400 unless set in the environment: the limit bounds the
// heap, and the GC runs when the heap nears it.
func keepMemoryUnder(ctx context.Context, limit int64, log *zap.Logger) {
	if limit <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercentUnderLimit)
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := int64(0)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		metrics.Read(sample)
		want := limit
		if v := sample[0].Value; v.Kind() == metrics.KindUint64 {
			want = limitFor(limit, v.Uint64())
		}
		if want != set {
			debug.SetMemoryLimit(want)
			if set != 0 && want > limit {
				log.Info("memory limit follows the live heap", zap.Int64("limit_bytes", want), zap.Int64("configured_bytes", limit))
			}
			set = want
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// gcPercentUnderLimit is GOGC while our soft limit bounds the heap.
const gcPercentUnderLimit = 400

// limitFor is the soft limit for a live heap: the configured one, or 1.25 x
// the live heap when that is more, rounded up to 16 MiB so that it moves in
// steps.
func limitFor(limit int64, live uint64) int64 {
	need := float64(live) * 1.25
	if need <= float64(limit) {
		return limit
	}
	const step = 16 << 20
	return int64(math.Ceil(need/step)) * step
}
