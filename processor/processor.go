// Package processor is the enrichment pipeline: it consumes profile-unified,
// gates each profile on the tenant's connection, consent and mapping, maps
// the allowed fields, asks Leadspace, and publishes enriched-company events
// or dead letters, committing an offset only after its output was acked.
//
// The flow, one file each: follow.go (control and dedupe tables) ->
// processor.go (consumer group, fetch) -> window.go (ordering, backpressure)
// -> handler.go (decode, gate, map, dedupe, enrich) -> publish.go (produce)
// -> offsets.go (commit point).
package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// Processor runs the pipeline for one instance of the consumer group.
type Processor struct {
	cfg      Config
	conn     connection
	codec    *schemas.Codec
	control  *ControlTable
	handler  *handler
	window   *window
	pub      *publisher
	metrics  *metrics
	counts   counts
	log      *zap.Logger
	ready    atomic.Bool
	readyCh  chan struct{}
	inFlight sync.WaitGroup // partition fetchers of the current generation
}

// New builds a processor. The codec must have the profile, control, enriched
// and dead letter types registered.
func New(cfg Config, codec *schemas.Codec, control *ControlTable, enricher Enricher) (*Processor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := cfg.Kafka.connect()
	if err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg, conn: conn, codec: codec, control: control, window: newWindow(cfg.Window),
		log: cfg.Logger, readyCh: make(chan struct{})}
	p.handler = &handler{codec: codec, control: control, enricher: enricher, dedupe: newDedupe(), topics: cfg.Topics,
		log: cfg.Logger, now: time.Now, backoff: cfg.RetryBackoff}
	p.pub = newPublisher(conn, cfg.ProduceBatchTimeout, cfg.RetryBackoff, cfg.Logger)
	p.metrics = newMetrics(cfg.Registerer, func() float64 { return float64(p.window.inFlight()) })
	return p, nil
}

// Ready is true once the control table caught up with the control topic;
// before that no profile is processed.
func (p *Processor) Ready() bool { return p.ready.Load() }

// ReadyC is closed when the processor becomes ready.
func (p *Processor) ReadyC() <-chan struct{} { return p.readyCh }

// Stats returns per-tenant outcome totals since start.
func (p *Processor) Stats() map[string]Counts { return p.counts.snapshot() }

// Run processes until ctx ends, then stops fetching, lets in-flight work
// finish within ShutdownTimeout, commits what is done and returns nil.
func (p *Processor) Run(ctx context.Context) error {
	defer p.pub.close()
	tables, stopTables := context.WithCancel(context.Background())
	defer stopTables()
	tablesErr := make(chan error, 2)
	controlReady := make(chan struct{})
	dedupeReady := make(chan struct{})
	go func() {
		tablesErr <- follow(tables, p.conn, p.cfg.Topics.Control, p.applyControl, func() { close(controlReady) })
	}()
	go func() {
		tablesErr <- follow(tables, p.conn, p.cfg.Topics.Enriched, p.applyEnriched, func() { close(dedupeReady) })
	}()
	for _, ch := range []chan struct{}{controlReady, dedupeReady} {
		select {
		case <-ch:
		case err := <-tablesErr:
			return fmt.Errorf("load tables: %w", err)
		case <-ctx.Done():
			return nil
		}
	}
	p.ready.Store(true)
	p.metrics.ready.Set(1)
	close(p.readyCh)
	p.log.Info("ready: control table and dedupe cache loaded", zap.Int("tenants", len(p.control.Snapshot())),
		zap.Int("dedupe_entries", p.handler.dedupe.size()))
	return p.consume(ctx)
}

func (p *Processor) applyControl(msg kafka.Message) {
	if msg.Value == nil {
		return
	}
	ev, err := p.codec.DecodeControl(context.Background(), msg.Value)
	if err != nil {
		p.log.Warn("control event refused", zap.Int("partition", msg.Partition), zap.Int64("offset", msg.Offset), zap.Error(err))
		return
	}
	if err := p.control.Apply(ev); err != nil {
		p.log.Warn("control event refused", zap.Int64("offset", msg.Offset), zap.Error(err))
		return
	}
	p.log.Info("control event applied", zap.String("tenant", ev.TenantID), zap.String("kind", ev.Kind()), zap.Int64("offset", msg.Offset))
}

// applyEnriched warms the dedupe cache from published enrichments.
func (p *Processor) applyEnriched(msg kafka.Message) {
	if msg.Value == nil {
		p.handler.dedupe.forget(string(msg.Key))
		return
	}
	e, err := p.codec.DecodeEnriched(context.Background(), msg.Value)
	if err != nil || (e.Status != schemas.StatusEnriched && e.Status != schemas.StatusNotMatched) {
		return
	}
	p.handler.dedupe.remember(string(msg.Key), e.InputFingerprint, e.EnrichedAt)
}

// consume joins the group and runs one generation after another. kafka-go's
// ConsumerGroup makes generation boundaries explicit: a generation's context
// ends at a rebalance, and its commits carry its generation id, so the broker
// refuses them once another member owns the partitions (kafka-go issue 1398
// is what the Reader-with-GroupID path gets wrong).
func (p *Processor) consume(ctx context.Context) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: p.cfg.GroupID, Brokers: p.conn.brokers, Dialer: p.conn.dialer, Topics: []string{p.cfg.Topics.Profiles},
		StartOffset: kafka.FirstOffset, WatchPartitionChanges: true, JoinGroupBackoff: time.Second,
		HeartbeatInterval: 3 * time.Second, SessionTimeout: 30 * time.Second, RebalanceTimeout: 30 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) { p.log.Debug(fmt.Sprintf(msg, args...)) }),
	})
	if err != nil {
		return fmt.Errorf("consumer group %s: %w", p.cfg.GroupID, err)
	}
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			p.log.Warn("join group failed, retrying", zap.String("group", p.cfg.GroupID), zap.Error(err))
			continue
		}
		p.startGeneration(ctx, gen)
	}
	// Drain before leaving the group: closing it would revoke the generation
	// and abandon the work we are about to finish and commit.
	p.inFlight.Wait()
	return group.Close()
}

// startGeneration starts one fetcher per assigned partition and a committer.
func (p *Processor) startGeneration(ctx context.Context, gen *kafka.Generation) {
	topic := p.cfg.Topics.Profiles
	assigned := gen.Assignments[topic]
	p.log.Info("generation started", zap.Int32("generation", gen.ID), zap.String("member", gen.MemberID), zap.Int("partitions", len(assigned)))
	c := &committer{gen: gen, topic: topic, trackers: map[int]*offsetTracker{}, log: p.log, metrics: p.metrics}
	for _, a := range assigned {
		tr := newOffsetTracker(a.Offset)
		c.trackers[a.ID] = tr
		p.inFlight.Add(1)
		gen.Start(func(genCtx context.Context) {
			defer p.inFlight.Done()
			p.fetchPartition(ctx, genCtx, gen, a, tr, c)
		})
	}
	gen.Start(func(genCtx context.Context) {
		t := time.NewTicker(p.cfg.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-genCtx.Done():
				return
			case <-ctx.Done():
				return
			case <-t.C:
				c.commit()
			}
		}
	})
}

// fetchPartition feeds one partition into the window until the generation
// or the run ends, then settles the partition's in-flight work.
func (p *Processor) fetchPartition(runCtx, genCtx context.Context, gen *kafka.Generation, a kafka.PartitionAssignment, tr *offsetTracker, c *committer) {
	topic := p.cfg.Topics.Profiles
	log := p.log.With(zap.String("topic", topic), zap.Int("partition", a.ID), zap.Int32("generation", gen.ID))
	fetchCtx, stopFetch := context.WithCancel(runCtx)
	defer stopFetch()
	stopOnRevoke := context.AfterFunc(genCtx, stopFetch)
	defer stopOnRevoke()
	// Jobs outlive fetching on shutdown (to finish and commit) but not a
	// revoke: the new owner must not race our late outputs for the same keys.
	jobCtx, cancelJobs := context.WithCancel(context.Background())
	defer cancelJobs()
	cancelOnRevoke := context.AfterFunc(genCtx, func() {
		if runCtx.Err() == nil {
			cancelJobs()
		}
	})
	defer cancelOnRevoke()

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: p.conn.brokers, Dialer: p.conn.dialer, Topic: topic, Partition: a.ID,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(a.Offset); err != nil {
		log.Error("set offset", zap.Int64("offset", a.Offset), zap.Error(err))
		return
	}
	log.Info("partition assigned", zap.Int64("offset", a.Offset))

	var jobs sync.WaitGroup
	for {
		msg, err := r.FetchMessage(fetchCtx)
		if err != nil {
			if fetchCtx.Err() == nil {
				log.Error("fetch failed", zap.Error(err))
			}
			break
		}
		tr.fetched(msg.Offset)
		jobs.Add(1)
		key := string(msg.Key)
		if msg.Key == nil {
			key = "\x00" + strconv.Itoa(msg.Partition) + "/" + strconv.FormatInt(msg.Offset, 10)
		}
		if err := p.window.submit(fetchCtx, key, func() {
			defer jobs.Done()
			p.process(jobCtx, msg, tr)
		}); err != nil {
			jobs.Done()
			break
		}
	}

	// Settle: on shutdown give in-flight work ShutdownTimeout to finish; on a
	// revoke it was cancelled above and returns at once.
	settled := make(chan struct{})
	go func() { jobs.Wait(); close(settled) }()
	select {
	case <-settled:
	case <-time.After(p.cfg.ShutdownTimeout):
		log.Warn("in-flight work did not finish in time; it will be redelivered", zap.Int64s("unfinished", tr.unfinished()))
		cancelJobs()
		<-settled
	}
	c.commitPartition(a.ID)
	log.Info("partition released", zap.Int64s("unfinished", tr.unfinished()))
}

// process runs one input through the handler and the publisher, then marks
// its offset done. Anything short of an acked output leaves it unfinished.
func (p *Processor) process(ctx context.Context, msg kafka.Message, tr *offsetTracker) {
	res, err := p.handler.handle(ctx, msg)
	if err != nil {
		return
	}
	if err := p.pub.publish(ctx, res.messages); err != nil {
		return
	}
	tr.done(msg.Offset)
	p.counts.add(res)
	p.metrics.outcomes.WithLabelValues(res.tenant, res.outcome, res.reason).Inc()
	if res.records > 0 {
		p.metrics.records.WithLabelValues(res.tenant).Add(float64(res.records))
	}
}

// committer commits the generation's finished offsets.
type committer struct {
	mu       sync.Mutex
	gen      *kafka.Generation
	topic    string
	trackers map[int]*offsetTracker
	log      *zap.Logger
	metrics  *metrics
}

func (c *committer) commit() { c.commitOnly(nil) }

func (c *committer) commitPartition(id int) { c.commitOnly(&id) }

func (c *committer) commitOnly(only *int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	offsets := map[int]int64{}
	for id, tr := range c.trackers {
		if only != nil && id != *only {
			continue
		}
		if next, moved := tr.commitPoint(); moved {
			offsets[id] = next
		}
	}
	if len(offsets) == 0 {
		return
	}
	if err := c.gen.CommitOffsets(map[string]map[int]int64{c.topic: offsets}); err != nil {
		// Refused after a rebalance: the partitions are someone else's now.
		c.metrics.committed.WithLabelValues("refused").Inc()
		c.log.Info("commit not accepted", zap.Int32("generation", c.gen.ID), zap.Error(err))
		return
	}
	c.metrics.committed.WithLabelValues("ok").Inc()
	for id, next := range offsets {
		c.trackers[id].committedTo(next)
	}
}
