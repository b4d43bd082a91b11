package processor

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/internal/group"
	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/processor/internal/offsets"
	"github.com/enrichment/leadspace-enricher/processor/internal/table"
	"github.com/enrichment/leadspace-enricher/processor/internal/window"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// partitionState is what an instance keeps of an input partition between
// generations: its table and how far it was restored. A partition the
// group gives back after a rebalance is caught up from there, not reloaded.
type partitionState struct {
	id       int
	table    *table.Table
	restorer *restorer
	credits  map[string]int64 // tenant -> records Leadspace accepted, cumulative
	runs     map[string]*schemas.RunProgress
	refresh  map[string]time.Time // tenant -> last Run finished here
}

// workerDeps are what a partition worker uses of the instance: the Kafka
// connection and topics, the gate, the window and pool it shares with the
// other partitions, the stages (handler, publisher, journal) and the
// instance's metrics and health. They are handed to the worker when it is
// made (like goka's newPartitionProcessor) rather than reached through the
// Processor.
type workerDeps struct {
	conn     kafkaio.Conn
	codec    *schemas.Codec
	topics   Topics
	control  *controlplane.Table
	requests *runRequests // the tenants' Runs
	purges   *removals
	programs *programs
	window   *window.Window
	pool     *pool
	pub      *kafkaio.Publisher
	handler  *handler
	journal  *journal
	metrics  *metrics
	health   *health
	enricher Enricher
}

// partitionWorker processes one assigned partition for one generation:
// it restores the partition's table, then fetches, admits each record into
// the window (or defers it, see package window), runs it through the pipeline in
// key order, and knows the offset up to which everything is done.
type partitionWorker struct {
	workerDeps
	id      int
	log     *zap.Logger
	state   *partitionState
	table   *table.Table
	tracker *offsets.Tracker

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
	keys             map[string]keyQueue // per key, in offset order; the head is running
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

// newPartitionWorker makes the worker of a partition whose state st the
// instance kept, from the committed offset on; claims are its offsets whose
// answers ride in journaled bulks (journal.go).
func newPartitionWorker(deps workerDeps, log *zap.Logger, st *partitionState, committed int64, claims map[int64]string) *partitionWorker {
	w := &partitionWorker{workerDeps: deps, id: st.id, state: st, table: st.table, tracker: offsets.NewTracker(committed),
		log: log.With(zap.String("topic", deps.topics.Profiles), zap.Int("partition", st.id)), claims: claims,
		idle: make(chan struct{}, 1), keys: map[string]keyQueue{}, deferredKeys: map[string]int{},
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
		_, purgesSeen := w.purges.snapshot()
		res, err := w.state.restorer.catchUp(w.fetchCtx, w.table, w.purges.before)
		if err != nil {
			return // released before the restore ended
		}
		if len(res.purge) > 0 {
			w.purge(res.purge)
		}
		w.restored.Store(true)
		w.log.Info("partition restored", zap.Int("records_read", res.records), zap.Int("keys", w.table.Len()),
			zap.Duration("took", time.Since(begin)))
		w.metrics.restoreSeconds.Observe(time.Since(begin).Seconds())
		w.readers.Go(w.readmit)
		w.readers.Go(w.unparkLoop)
		w.readers.Go(func() { w.background(purgesSeen) })
		w.fetch()
	})
}

// fetch is the live reader: from the commit point on, every record is
// admitted or deferred, in offset order.
func (w *partitionWorker) fetch() {
	f := kafkaio.NewFetcher(w.conn, w.topics.Profiles, w.id, w.tracker.Base(), 1<<20)
	failures := 0
	for {
		msg, err := f.Fetch(w.fetchCtx)
		if err != nil {
			if w.fetchCtx.Err() != nil {
				return
			}
			failures++
			w.health.set("fetch "+strconv.Itoa(w.id), err)
			if kafkaio.Backoff.Wait(w.fetchCtx, failures) != nil {
				return
			}
			continue
		}
		if failures > 0 {
			failures = 0
			w.health.set("fetch "+strconv.Itoa(w.id), nil)
		}
		w.highWater.Store(msg.Offset + 1)
		w.end.Store(f.End)
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
		changed := w.window.RoomChanged()
		w.admitting.Unlock()
		if placed {
			return true
		}
		// Re-check at least every stallAfter/4: a busy program can become
		// stalled without anything else happening.
		t := time.NewTimer(max(w.window.StallAfter()/4, 50*time.Millisecond))
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
		v, wait, atShare := w.window.Try(j.program, j.size)
		switch {
		case !wait && v == window.Admitted:
			w.tracker.Admitted(j.msg.Offset)
			w.enqueue(j)
			return true
		case !wait:
			w.deferJob(j)
			return true
		case !atShare || j.program == "":
			return false
		}
	}
	if !w.window.Park(j.size) {
		return false
	}
	w.tracker.Park(j.msg.Offset)
	w.mu.Lock()
	w.parked[j.program] = append(w.parked[j.program], j)
	w.parkedKeys[j.key]++
	w.mu.Unlock()
	return true
}

// deferJob leaves a record for the re-reader (readmit).
func (w *partitionWorker) deferJob(j *job) {
	w.tracker.DeferOffset(j.msg.Offset)
	w.mu.Lock()
	w.deferredKeys[j.key]++
	w.deferredPrograms[j.program]++
	w.mu.Unlock()
	w.metrics.deferred.Inc()
}

// unparkLoop admits parked records as their programs get room. It looks
// when the window's room changes, at most every 5 ms (every partition's
// loop wakes at a release), and every 250 ms for a program that became
// stalled.
func (w *partitionWorker) unparkLoop() {
	for {
		changed := w.window.RoomChanged()
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
			v := window.Defer
			if !behind {
				var wait bool
				if v, wait, _ = w.window.Try(program, j.size); wait {
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
			w.window.Unpark(j.size)
			if v == window.Admitted {
				w.tracker.Admitted(j.msg.Offset)
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
			w.window.Unpark(j.size)
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
	if tenant, _, ok := cutKey(key); ok {
		program = w.programs.of(tenant)
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
		from, ok := w.tracker.LowestDeferred()
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
		if w.window.HasRoom(p) {
			return true
		}
	}
	return len(programs) == 0 // counts drifted (a tenant changed program): try anyway
}

// pass re-reads [from, to) and admits the deferred records it can.
func (w *partitionWorker) pass(from, to int64) {
	f := kafkaio.NewFetcher(w.conn, w.topics.Profiles, w.id, from, 1<<20)
	readmitted := 0
	for next := from; next < to; {
		msg, err := f.Fetch(w.fetchCtx)
		if err != nil {
			return // the next tick tries again
		}
		next = msg.Offset + 1
		if !w.tracker.IsDeferred(msg.Offset) {
			continue
		}
		key, program, size := w.classify(msg)
		v, err := w.window.Admit(w.fetchCtx, program, size)
		if err != nil {
			return
		}
		if v != window.Admitted {
			continue // still stalled: it stays deferred
		}
		w.tracker.Admitted(msg.Offset)
		w.enqueue(&job{w: w, msg: msg, key: key, program: program, size: size})
		w.mu.Lock()
		if w.deferredKeys[key]--; w.deferredKeys[key] <= 0 {
			delete(w.deferredKeys, key)
		}
		if w.deferredPrograms[program] > 0 {
			w.deferredPrograms[program]--
		}
		if _, n := w.tracker.Pending(); n == 0 {
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
		rs := table.State{Offset: -1}
		msgs[i] = kafka.Message{Topic: w.topics.Enriched, Partition: w.id, Key: []byte(k),
			Headers: []kafka.Header{{Key: table.HeaderState, Value: rs.Encode()}}}
	}
	if err := w.pub.Publish(w.fetchCtx, msgs); err != nil {
		return
	}
	for _, k := range keys {
		w.table.Remove(k)
	}
	w.log.Info("enrichment removed with purge: published enrichments withdrawn", zap.Int("tombstones", len(keys)))
}

// statusRecords are the partition's status records of tenants whose counts
// moved (or all, with all), as of commit point next.
func (w *partitionWorker) statusRecords(next int64, all bool) []schemas.Status {
	if !w.restored.Load() {
		return nil
	}
	views := w.table.TakeDirty(all)
	out := make([]schemas.Status, 0, len(views))
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range views {
		if v.Tenant == "" {
			continue
		}
		s := schemas.Status{TenantID: v.Tenant, Partition: int32(w.id), Profiles: v.Profiles, Enriched: v.Enriched,
			NotMatched: v.NotMatched, Skipped: v.Skipped, Failed: v.Failed, SkippedReasons: v.SkippedReasons,
			LastEnrichedAt: v.LastEnrichedAt, CreditsSpent: w.credits[v.Tenant], CommittedOffset: next,
			LastRefreshAt: w.state.refresh[v.Tenant]}
		if r := w.state.runs[v.Tenant]; r != nil {
			rc := *r
			s.Run = &rc
		}
		out = append(out, s)
	}
	return out
}

// What the generation (generation.go) and the metrics ask of a worker.

// halt stops the worker's jobs at once, without waiting for them: another
// member may own the partition already.
func (w *partitionWorker) halt() { w.cancel() }

// work is what is left to do on the partition, for the split of the rate:
// unread records past the fetch position, deferred ones, and those in
// flight. False before the live reader fetched: the leader reads the
// partition's committed lag instead.
func (w *partitionWorker) work() (group.WorkLeft, bool) {
	end := w.end.Load()
	if end < 0 {
		return group.WorkLeft{}, false
	}
	inFlight, deferred := w.tracker.Pending()
	return group.WorkLeft{Unread: max(end-w.highWater.Load(), 0) + int64(deferred), InFlight: int64(inFlight)}, true
}

// toCommit is the partition's commit point, whether it moved since the last
// commit, and the status records of the tenants whose counts moved, as of it.
func (w *partitionWorker) toCommit() (next int64, moved bool, records []schemas.Status) {
	next, moved = w.tracker.CommitPoint()
	records = w.statusRecords(next, false)
	w.tracker.CaughtUp()
	return next, moved, records
}

// unwritten says a tenant's status record was not written: the next commit
// writes it again.
func (w *partitionWorker) unwritten(tenant string) { w.table.MarkDirty(tenant) }

// committed says the group took the commit point next.
func (w *partitionWorker) committed(next int64) { w.tracker.CommittedTo(next) }

// released keeps, for the next generation that gives this instance the
// partition back, where the table's topics end now: everything this
// instance wrote is in its table, so the next restore starts there.
func (w *partitionWorker) released() {
	if !w.restored.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := kafkaio.PartitionSpan(ctx, w.conn, w.topics.Enriched, w.id); err == nil {
		w.state.restorer.enrichedNext = s.End
	}
	if s, err := kafkaio.PartitionSpan(ctx, w.conn, w.topics.DeadLetters, w.id); err == nil {
		w.state.restorer.deadNext = s.End
	}
}

// stalled is how long the commit point has not advanced while there was
// work, and how many records are deferred: the signs of a stalled partition.
func (w *partitionWorker) stalled(now time.Time) (time.Duration, int) {
	_, deferred := w.tracker.Pending()
	return w.tracker.SinceAdvance(now), deferred
}

// lag is how many records of the partition lie past its commit point, as of
// the live reader's last fetch; false before one.
func (w *partitionWorker) lag() (int64, bool) {
	end := w.end.Load()
	if end < 0 {
		return 0, false
	}
	base, _ := w.tracker.CommitPoint()
	return max(end-base, 0), true
}

// addRuns adds the scope and the finished records of each tenant's latest
// Run on the partition.
func (w *partitionWorker) addRuns(scope, done map[string]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for tenant, r := range w.state.runs {
		scope[tenant] += max(r.Scope, 0)
		done[tenant] += r.Done
	}
}
