package controlplane

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Config configures a ControlPlane. Zero values take the
// documented defaults.
type Config struct {
	Kafka  kafkaio.Config
	Topics kafkaio.Topics
	// Codec decodes control events and encodes status records. Required.
	Codec *schemas.Codec
	// Auth verifies control events. Default: none (not authenticated).
	Auth Auth
	// Table is the control table the plane fills. Required.
	Table *Table
	// Logger receives structured logs. Default: a no-op logger.
	Logger *zap.Logger
	// Registerer receives the plane's metrics. Default: none.
	Registerer prometheus.Registerer
	// StatusInterval is the longest a change of a tenant's control record
	// waits to be written (changes are written at once; this is the retry
	// and catch-all period). Default: 1s.
	StatusInterval time.Duration
	// RetryBackoff is the first wait after a failed read or write; it
	// doubles up to 30s. Default: 500ms.
	RetryBackoff time.Duration
}

func (c *Config) setDefaults() {
	c.Topics = c.Topics.WithDefaults()
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = time.Second
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
}

// Validate reports the first invalid setting by name.
func (c *Config) Validate() error {
	switch {
	case c.Codec == nil:
		return errors.New("control plane: codec is required")
	case c.Table == nil:
		return errors.New("control plane: table is required")
	case c.StatusInterval < 10*time.Millisecond:
		return errors.New("control plane: status interval below 10ms")
	case c.RetryBackoff <= 0:
		return errors.New("control plane: retry backoff must be positive")
	}
	return c.Kafka.Validate()
}

// Plane keeps a ControlTable in step with the control topic and
// owns the tenants' control status records (key tenant/control):
//
//   - at start it reads those records back (the sequences applied, the
//     refusals counted, the pauses), then the whole control topic;
//   - it is ready once it caught up with the end the topic had at start;
//   - it writes each tenant's record when it changes (state, refusals by
//     reason, sequences and event ids applied);
//   - when a record under a key is refused (a replay, a forgery, a
//     tombstone), it writes the genuine event of that key again, so that
//     compaction keeps the genuine one.
//
// Every instance does the same from the same log, so instances agree on
// the records they write.
type Plane struct {
	cfg     Config
	conn    kafkaio.Conn
	log     *zap.Logger
	w       *kafka.Writer
	ready   chan struct{}
	once    sync.Once
	records *prometheus.CounterVec
	copies  prometheus.Counter
	// backoff paces its reads and writes while the broker fails: from
	// RetryBackoff, doubling up to 30s.
	backoff retry.Schedule
}

// New checks cfg and builds a plane; Run starts it.
func New(cfg Config) (*Plane, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := cfg.Kafka.Connect()
	if err != nil {
		return nil, err
	}
	c := &Plane{cfg: cfg, conn: conn, log: cfg.Logger.Named("control"), ready: make(chan struct{}),
		w:       conn.KeyedWriter(),
		backoff: retry.Schedule{First: cfg.RetryBackoff, Max: 30 * time.Second, Jitter: retry.Equal},
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "enricher", Name: "control_records_total",
			Help: "Control-topic records read, by result (applied, unchanged, refused) and reason."}, []string{"result", "reason"}),
		copies: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "enricher", Name: "control_rewrites_total",
			Help: "Genuine control events written again after a record under their key was refused."}),
	}
	c.w.MaxAttempts = 3
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(c.records); err != nil {
			return nil, err
		}
		if err := cfg.Registerer.Register(c.copies); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Ready is closed once the table holds the status records read back and
// every control record up to the end the topic had when Run started.
func (c *Plane) Ready() <-chan struct{} { return c.ready }

// Run follows the control topic and writes the control records until ctx
// ends, then returns nil. A broker that fails for a while delays it; it
// never ends it: the topic is read again from the start (applying is
// idempotent) and writes are retried.
func (c *Plane) Run(ctx context.Context) error {
	defer c.w.Close()
	if !c.cfg.Auth.Enabled() {
		c.log.Warn("control events are not authenticated: anyone who can write to the control topic can change consent and tokens; set admin keys",
			zap.String("topic", c.cfg.Topics.Control))
	} else {
		c.log.Info("control events are verified", zap.Strings("key_ids", c.cfg.Auth.KeyIDs()))
	}
	records, err := c.readRecords(ctx)
	if err != nil {
		return nil // ctx ended
	}
	c.cfg.Table.Restore(records)
	var writer sync.WaitGroup
	writer.Go(func() { c.writeRecords(ctx, records) })
	defer writer.Wait()
	for failures := 1; ; failures++ {
		err := kafkaio.FollowConn(ctx, c.conn, c.cfg.Topics.Control, c.apply, c.caughtUp, nil)
		if ctx.Err() != nil {
			return nil
		}
		wait := c.backoff.Delay(failures)
		c.log.Warn("control topic not followed; reading it again from the start", zap.Error(err), zap.Duration("in", wait))
		if retry.Sleep(ctx, wait) != nil {
			return nil
		}
	}
}

func (c *Plane) caughtUp() {
	c.cfg.Table.settle()
	c.once.Do(func() {
		close(c.ready)
		c.log.Info("control table caught up", zap.Int("tenants", len(c.cfg.Table.Snapshot())))
	})
}

func (c *Plane) apply(msg kafka.Message) {
	if msg.Value == nil && c.emptyNotNull(msg) {
		msg.Value = []byte{}
	}
	ev, err := c.cfg.Table.ApplyRecord(c.cfg.Codec, c.cfg.Auth, msg)
	var re *RefusedError
	switch {
	case errors.As(err, &re) && re.Repeat:
		c.log.Debug("control record refused again (counted before)", zap.String("key", safeKey(msg.Key)),
			zap.Int64("offset", msg.Offset), zap.String("reason", re.Reason))
	case errors.As(err, &re):
		c.records.WithLabelValues("refused", re.Reason).Inc()
		c.log.Warn("control record refused", zap.String("key", safeKey(msg.Key)), zap.Int("partition", msg.Partition),
			zap.Int64("offset", msg.Offset), zap.String("reason", re.Reason), zap.Error(re.Err))
	case err != nil:
		c.records.WithLabelValues("refused", "").Inc()
		c.log.Warn("control record refused", zap.String("key", safeKey(msg.Key)), zap.Int64("offset", msg.Offset), zap.Error(err))
	case ev == nil:
		c.records.WithLabelValues("unchanged", "").Inc()
	default:
		c.records.WithLabelValues("applied", "").Inc()
		c.log.Info("control event applied", zap.String("tenant", ev.TenantID), zap.String("kind", ev.Kind()),
			zap.Int64("sequence", ev.Sequence), zap.String("key_id", ev.KeyID), zap.Int64("offset", msg.Offset))
	}
}

// emptyNotNull tells a 0-byte value from a null one (a tombstone), which
// kafka-go's Reader does not: it hands both over as nil. The protocol-level
// fetch keeps them apart. Such records are rare (a mistake or an attack),
// so one extra fetch each costs nothing; if it fails, the record counts as
// a tombstone, refused all the same.
func (c *Plane) emptyNotNull(msg kafka.Message) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.conn.Client().Fetch(ctx, &kafka.FetchRequest{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	if err != nil || res.Error != nil || res.Records == nil {
		return false
	}
	for {
		rec, err := res.Records.ReadRecord()
		if err != nil {
			return false
		}
		present, offset := rec.Value != nil, rec.Offset
		for _, b := range []kafka.Bytes{rec.Key, rec.Value} {
			if b != nil {
				_ = b.Close()
			}
		}
		switch {
		case offset == msg.Offset:
			return present
		case offset > msg.Offset:
			return false
		}
	}
}

// readRecords reads the tenants' control records back from the status
// topic, retrying until it can or ctx ends.
func (c *Plane) readRecords(ctx context.Context) ([]schemas.Status, error) {
	for failures := 1; ; failures++ {
		latest := map[string]*schemas.Status{}
		err := kafkaio.ReadAll(ctx, c.cfg.Kafka, c.cfg.Topics.Status, func(m kafka.Message) {
			tenant, ok := strings.CutSuffix(string(m.Key), "/control")
			if !ok {
				return
			}
			if m.Value == nil {
				delete(latest, tenant)
				return
			}
			s, err := c.cfg.Codec.DecodeStatus(ctx, m.Value)
			if err != nil || s.TenantID != tenant || s.Partition != schemas.ControlPartition {
				return
			}
			latest[tenant] = &s
		})
		if err == nil {
			out := make([]schemas.Status, 0, len(latest))
			for _, s := range latest {
				out = append(out, *s)
			}
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		wait := c.backoff.Delay(failures)
		c.log.Warn("control records not read back from the status topic; retrying", zap.Error(err), zap.Duration("in", wait))
		if err := retry.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// writeRecords writes changed control records and copies of genuine
// events, once ready, until ctx ends.
func (c *Plane) writeRecords(ctx context.Context, restored []schemas.Status) {
	select {
	case <-ctx.Done():
		return
	case <-c.ready:
	}
	written := map[string]schemas.Status{}
	for _, s := range restored {
		written[s.TenantID] = s
	}
	tick := time.NewTicker(c.cfg.StatusInterval)
	defer tick.Stop()
	failures := 0
	for {
		if err := c.flush(ctx, written); err != nil && ctx.Err() == nil {
			failures++
			wait := c.backoff.Delay(failures)
			c.log.Warn("control records not written; retrying", zap.Error(err), zap.Duration("in", wait))
			if retry.Sleep(ctx, wait) != nil {
				return
			}
			continue
		}
		failures = 0
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.cfg.Table.dirty:
		}
	}
}

func (c *Plane) flush(ctx context.Context, written map[string]schemas.Status) error {
	var msgs []kafka.Message
	var changed []schemas.Status
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, r := range c.cfg.Table.controlRecords() {
		if prev, ok := written[r.TenantID]; ok && sameControlRecord(prev, r) {
			continue
		}
		r.UpdatedAt = now
		value, err := c.cfg.Codec.Encode(schemas.EnrichmentStatus, r.Native())
		if err != nil {
			return err
		}
		msgs = append(msgs, kafka.Message{Topic: c.cfg.Topics.Status, Key: []byte(r.TenantID + "/control"), Value: value})
		changed = append(changed, r)
	}
	copies := c.cfg.Table.rewrites(c.cfg.Topics.Control)
	if len(msgs)+len(copies) == 0 {
		return nil
	}
	// The records first: what was applied is on the status topic before the
	// copies make compaction drop what was refused.
	if len(msgs) > 0 {
		if err := c.w.WriteMessages(ctx, msgs...); err != nil {
			c.cfg.Table.rewriteFailed(copies)
			return err
		}
	}
	for _, r := range changed {
		written[r.TenantID] = r
	}
	if len(copies) == 0 {
		return nil
	}
	if err := c.w.WriteMessages(ctx, copies...); err != nil {
		c.cfg.Table.rewriteFailed(copies)
		return err
	}
	c.copies.Add(float64(len(copies)))
	for _, m := range copies {
		c.log.Info("genuine control event written again after a refused record under its key", zap.String("key", safeKey(m.Key)))
	}
	return nil
}

// sameControlRecord is whether two control records say the same (the
// update time aside).
func sameControlRecord(a, b schemas.Status) bool {
	return a.State == b.State && a.StateReason == b.StateReason && a.RefusedControl == b.RefusedControl &&
		a.LastRefused == b.LastRefused && maps.Equal(a.RefusedByReason, b.RefusedByReason) &&
		maps.Equal(a.ControlSequences, b.ControlSequences) && maps.Equal(a.AppliedControl, b.AppliedControl)
}

// safeKey shows a record key in logs: keys are written by whoever can write
// to the topic, so they are cut short and made valid UTF-8.
func safeKey(key []byte) string {
	const limit = 80
	if len(key) > limit {
		key = key[:limit]
	}
	return strings.ToValidUTF8(string(key), "?")
}
