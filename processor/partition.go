package processor

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// partitionState is what an instance keeps of an input partition between
// generations: its table and how far it was restored. A partition the
// group gives back after a rebalance is caught up from there, not reloaded.
type partitionState struct {
	id       int
	table    *table
	restorer *restorer
	credits  map[string]int64 // tenant -> records Leadspace accepted, cumulative
	runs     map[string]*schemas.RunProgress
	refresh  map[string]time.Time // tenant -> last Run finished here
}

// partitionWorker processes one assigned partition for one generation:
// it restores the partition's table, then fetches, admits each record into
// the window (or defers it, see window.go), runs it through the pipeline in
// key order, and knows the offset up to which everything is done.
type partitionWorker struct {
	p       *Processor
	id      int
	log     *zap.Logger
	state   *partitionState
	table   *table
	tracker *offsetTracker

	ctx       context.Context // the jobs'; cancelled when a drain runs out of time
	cancel    context.CancelFunc
	fetchCtx  context.Context // the readers'; cancelled when the partition is released
	stopFetch context.CancelFunc
	readers   sync.WaitGroup
	restored  atomic.Bool
	highWater atomic.Int64 // next offset the live reader reads
	end       atomic.Int64 // the partition's end at the live reader's last fetch; -1 before one
	idle      chan struct{}

	mu               sync.Mutex
	keys             map[string][]*job // per key, in offset order; the head is running
	running          int
	fenced           bool // released: late callbacks change nothing
	deferredKeys     map[string]int
	deferredPrograms map[string]int
	credits          map[string]int64
	runs             map[string]*runPass
	// claims are offsets whose answers ride in a bulk a dead instance paid
	// for (journal.go): offset -> the bulk's results path.
	claims map[int64]string
	// callCtxs: permit's context -> the calls' context under it (callCtx).
	callCtxs map[context.Context]context.Context
	// parked are fetched records of programs at their share, oldest first
	// per program, held so that the fetcher goes on to other programs'
	// records (see window.go); parkedKeys counts them per key, so that a
	// key's later records go behind them.
	parked     map[string][]*job
	parkedKeys map[string]int
	// admitting orders admissions (the live reader's and unparkAll's), so
	// that a key's records enter the pipeline in offset order.
	admitting sync.Mutex
}

// takeClaim returns, once, the journaled bulk an offset's answer rides in.
func (w *partitionWorker) takeClaim(offset int64) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	path, ok := w.claims[offset]
	if ok {
		delete(w.claims, offset)
	}
	return path, ok
}

func newPartitionWorker(p *Processor, st *partitionState, committed int64) *partitionWorker {
	w := &partitionWorker{p: p, id: st.id, state: st, table: st.table, tracker: newOffsetTracker(committed),
		log:  p.log.With(zap.String("topic", p.cfg.Topics.Profiles), zap.Int("partition", st.id)),
		idle: make(chan struct{}, 1), keys: map[string][]*job{}, deferredKeys: map[string]int{},
		deferredPrograms: map[string]int{}, credits: st.credits, runs: map[string]*runPass{},
		callCtxs: map[context.Context]context.Context{}, parked: map[string][]*job{}, parkedKeys: map[string]int{}}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.fetchCtx, w.stopFetch = context.WithCancel(context.Background())
	w.highWater.Store(committed)
	w.end.Store(-1)
	return w
}

// start restores the table, then fetches from the committed offset. It
// returns at once.
func (w *partitionWorker) start() {
	w.readers.Go(func() {
		begin := time.Now()
		_, purgesSeen := w.p.purges.snapshot()
		res, err := w.state.restorer.catchUp(w.fetchCtx, w.table, w.p.purgeRule())
		if err != nil {
			return // released before the restore ended
		}
		if len(res.purge) > 0 {
			w.purge(res.purge)
		}
		w.restored.Store(true)
		w.log.Info("partition restored", zap.Int("records_read", res.records), zap.Int("keys", w.table.len()),
			zap.Duration("took", time.Since(begin)))
		w.p.metrics.restoreSeconds.Observe(time.Since(begin).Seconds())
		w.readers.Go(w.readmit)
		w.readers.Go(w.unparkLoop)
		w.readers.Go(func() { w.background(purgesSeen) })
		w.fetch()
	})
}

// fetch is the live reader: from the commit point on, every record is
// admitted or deferred, in offset order.
func (w *partitionWorker) fetch() {
	f := newFetcher(w.p.conn, w.p.cfg.Topics.Profiles, w.id, w.tracker.base, 1<<20)
	failures := 0
	for {
		msg, err := f.fetch(w.fetchCtx)
		if err != nil {
			if w.fetchCtx.Err() != nil {
				return
			}
			failures++
			w.p.health.set("fetch "+strconv.Itoa(w.id), err)
			if dependencyBackoff.wait(w.fetchCtx, failures) != nil {
				return
			}
			continue
		}
		if failures > 0 {
			failures = 0
			w.p.health.set("fetch "+strconv.Itoa(w.id), nil)
		}
		w.highWater.Store(msg.Offset + 1)
		w.end.Store(f.end)
		if !w.offer(msg) {
			return
		}
	}
}

// offer admits one live record into the window, parks it, or defers it:
// its key has deferred records (order per key), or its program is stalled.
// It waits only while the window is full, or while its program is at its
// share and the parking budget is spent; false when the reader stops.
func (w *partitionWorker) offer(msg kafka.Message) bool {
	key, program, size := w.classify(msg)
	j := &job{w: w, msg: msg, key: key, program: program, size: size}
	for {
		w.admitting.Lock()
		placed := w.place(j)
		changed := w.p.window.roomChanged()
		w.admitting.Unlock()
		if placed {
			return true
		}
		// Re-check at least every stallAfter/4: a busy program can become
		// stalled without anything else happening.
		t := time.NewTimer(max(w.p.window.stallAfter/4, 50*time.Millisecond))
		select {
		case <-w.fetchCtx.Done():
			t.Stop()
			return false
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// place decides a live record's way without waiting: behind its key's
// deferred records, behind its key's or its program's parked ones, into
// the pipeline, deferred (stalled program) or parked (program at its
// share); false: it must wait. Called with w.admitting held.
func (w *partitionWorker) place(j *job) bool {
	w.mu.Lock()
	_, behind := w.deferredKeys[j.key]
	queued := w.parkedKeys[j.key] > 0 || len(w.parked[j.program]) > 0
	w.mu.Unlock()
	if behind {
		w.deferJob(j)
		return true
	}
	if !queued {
		v, wait, atShare := w.p.window.try(j.program, j.size)
		switch {
		case !wait && v == admitted:
			w.tracker.admitted(j.msg.Offset)
			w.enqueue(j)
			return true
		case !wait:
			w.deferJob(j)
			return true
		case !atShare || j.program == "":
			return false
		}
	}
	if !w.p.window.park(j.size) {
		return false
	}
	w.tracker.park(j.msg.Offset)
	w.mu.Lock()
	w.parked[j.program] = append(w.parked[j.program], j)
	w.parkedKeys[j.key]++
	w.mu.Unlock()
	return true
}

// deferJob leaves a record for the re-reader (readmit).
func (w *partitionWorker) deferJob(j *job) {
	w.tracker.deferOffset(j.msg.Offset)
	w.mu.Lock()
	w.deferredKeys[j.key]++
	w.deferredPrograms[j.program]++
	w.mu.Unlock()
	w.p.metrics.deferred.Inc()
}

// unparkLoop admits parked records as their programs get room. It looks
// when the window's room changes, at most every 5 ms (every partition's
// loop wakes at a release), and every 250 ms for a program that became
// stalled.
func (w *partitionWorker) unparkLoop() {
	for {
		changed := w.p.window.roomChanged()
		w.unparkAll()
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-w.fetchCtx.Done():
			t.Stop()
			return
		case <-changed:
		case <-t.C:
		}
		t.Stop()
		select {
		case <-w.fetchCtx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// unparkAll admits (or defers, for a stalled program) each program's
// parked records, oldest first, while the program has room.
func (w *partitionWorker) unparkAll() {
	w.admitting.Lock()
	defer w.admitting.Unlock()
	w.mu.Lock()
	programs := make([]string, 0, len(w.parked))
	for p, q := range w.parked {
		if len(q) > 0 {
			programs = append(programs, p)
		}
	}
	w.mu.Unlock()
	for _, program := range programs {
		for {
			w.mu.Lock()
			q := w.parked[program]
			if len(q) == 0 {
				delete(w.parked, program)
				w.mu.Unlock()
				break
			}
			j := q[0]
			_, behind := w.deferredKeys[j.key]
			w.mu.Unlock()
			v := deferIt
			if !behind {
				var wait bool
				if v, wait, _ = w.p.window.try(program, j.size); wait {
					break
				}
			}
			w.mu.Lock()
			q[0] = nil
			w.parked[program] = q[1:]
			if w.parkedKeys[j.key]--; w.parkedKeys[j.key] <= 0 {
				delete(w.parkedKeys, j.key)
			}
			w.mu.Unlock()
			w.p.window.unpark(j.size)
			if v == admitted {
				w.tracker.admitted(j.msg.Offset)
				w.enqueue(j)
			} else {
				w.deferJob(j)
			}
		}
	}
}

// dropParked lets the parked records go when the partition is released:
// they were never admitted, so the commit point is below them and the next
// owner reads them again.
func (w *partitionWorker) dropParked() {
	w.admitting.Lock()
	defer w.admitting.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, q := range w.parked {
		for _, j := range q {
			w.p.window.unpark(j.size)
		}
	}
	clear(w.parked)
	clear(w.parkedKeys)
}

// classify names a record's key, the program its tenant calls (before
// decoding: the key says the tenant), and its size.
func (w *partitionWorker) classify(msg kafka.Message) (key, program string, size int) {
	key = string(msg.Key)
	if msg.Key == nil {
		key = "\x00" + strconv.FormatInt(msg.Offset, 10) // no key, no order to keep
	}
	if tenant, _, ok := splitKey(msg.Key); ok {
		program = w.p.programOf(tenant)
	}
	return key, program, jobSize(msg)
}

// readmit re-reads deferred records once their program can take them again,
// walking from the lowest deferred offset to where the live reader is, in
// offset order, so every key keeps its order.
func (w *partitionWorker) readmit() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.fetchCtx.Done():
			return
		case <-t.C:
		}
		from, ok := w.tracker.lowestDeferred()
		if !ok || !w.someDeferredProgramHasRoom() {
			continue
		}
		w.pass(from, w.highWater.Load())
	}
}

func (w *partitionWorker) someDeferredProgramHasRoom() bool {
	w.mu.Lock()
	programs := make([]string, 0, len(w.deferredPrograms))
	for p, n := range w.deferredPrograms {
		if n > 0 {
			programs = append(programs, p)
		}
	}
	w.mu.Unlock()
	for _, p := range programs {
		if w.p.window.hasRoom(p) {
			return true
		}
	}
	return len(programs) == 0 // counts drifted (a tenant changed program): try anyway
}

// pass re-reads [from, to) and admits the deferred records it can.
func (w *partitionWorker) pass(from, to int64) {
	f := newFetcher(w.p.conn, w.p.cfg.Topics.Profiles, w.id, from, 1<<20)
	readmitted := 0
	for next := from; next < to; {
		msg, err := f.fetch(w.fetchCtx)
		if err != nil {
			return // the next tick tries again
		}
		next = msg.Offset + 1
		if !w.tracker.isDeferred(msg.Offset) {
			continue
		}
		key, program, size := w.classify(msg)
		v, err := w.p.window.admit(w.fetchCtx, program, size)
		if err != nil {
			return
		}
		if v != admitted {
			continue // still stalled: it stays deferred
		}
		w.tracker.admitted(msg.Offset)
		w.enqueue(&job{w: w, msg: msg, key: key, program: program, size: size})
		w.mu.Lock()
		if w.deferredKeys[key]--; w.deferredKeys[key] <= 0 {
			delete(w.deferredKeys, key)
		}
		if w.deferredPrograms[program] > 0 {
			w.deferredPrograms[program]--
		}
		if _, n := w.tracker.pending(); n == 0 {
			clear(w.deferredPrograms)
		}
		w.mu.Unlock()
		readmitted++
	}
	if readmitted > 0 {
		w.log.Info("deferred records readmitted", zap.Int("records", readmitted), zap.Int64("from", from), zap.Int64("to", to))
	}
}

// signalIdle wakes a drain waiting for the last job.
func (w *partitionWorker) signalIdle() {
	select {
	case w.idle <- struct{}{}:
	default:
	}
}

// waitIdle waits until no job runs, or the time is up.
func (w *partitionWorker) waitIdle(timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		n := w.running
		w.mu.Unlock()
		if n <= 0 {
			return true
		}
		select {
		case <-w.idle:
		case <-deadline.C:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// drain stops fetching and lets in-flight work finish within timeout; what
// is left is then abandoned (redelivered to the next owner, at no cost: the
// records it holds were never sent, or their answers are on the table's
// topic). Afterwards late callbacks change nothing.
func (w *partitionWorker) drain(timeout time.Duration) {
	w.stopFetch()
	w.readers.Wait()
	w.dropParked()
	if !w.waitIdle(timeout) {
		w.mu.Lock()
		left := w.running
		w.mu.Unlock()
		w.log.Warn("in-flight work did not finish in time; it will be redelivered", zap.Int("inputs", left))
		w.cancel()
		w.waitIdle(5 * time.Second)
	}
	w.mu.Lock()
	w.fenced = true
	w.mu.Unlock()
	w.cancel()
}

// purge withdraws the standing answers of tenants removed with purge.
func (w *partitionWorker) purge(keys []string) {
	msgs := make([]kafka.Message, len(keys))
	for i, k := range keys {
		rs := recordState{offset: -1}
		msgs[i] = kafka.Message{Topic: w.p.cfg.Topics.Enriched, Partition: w.id, Key: []byte(k),
			Headers: []kafka.Header{{Key: HeaderState, Value: rs.encode()}}}
	}
	if err := w.p.pub.publish(w.fetchCtx, msgs); err != nil {
		return
	}
	for _, k := range keys {
		w.table.remove(k)
	}
	w.log.Info("enrichment removed with purge: published enrichments withdrawn", zap.Int("tombstones", len(keys)))
}

// statusRecords are the partition's status records of tenants whose counts
// moved (or all, with all), as of commit point next.
func (w *partitionWorker) statusRecords(next int64, all bool) []schemas.Status {
	if !w.restored.Load() {
		return nil
	}
	views := w.table.takeDirty(all)
	out := make([]schemas.Status, 0, len(views))
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range views {
		if v.tenant == "" {
			continue
		}
		s := schemas.Status{TenantID: v.tenant, Partition: int32(w.id), Profiles: v.profiles, Enriched: v.enriched,
			NotMatched: v.notMatched, Skipped: v.skipped, Failed: v.failed, SkippedReasons: v.skippedReasons,
			LastEnrichedAt: v.lastEnrichedAt, CreditsSpent: w.credits[v.tenant], CommittedOffset: next,
			LastRefreshAt: w.state.refresh[v.tenant]}
		if r := w.state.runs[v.tenant]; r != nil {
			rc := *r
			s.Run = &rc
		}
		out = append(out, s)
	}
	return out
}
