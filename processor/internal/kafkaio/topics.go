package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// Topics names every topic the processor touches.
type Topics struct {
	// Profiles carries ProfileUnified events. Default: profile-unified.
	Profiles string
	// Control carries connection, consent and mapping changes. Default: leadspace-control.
	Control string
	// Enriched receives EnrichedCompany events. Default: enriched-company.
	Enriched string
	// DeadLetters receives DeadLetter events. Default: enrichment-dlq.
	DeadLetters string
	// Status receives EnrichmentStatus events. Default: enrichment-status.
	Status string
	// Journal holds the bulks Leadspace accepted whose answers are not all
	// published yet (BulkInFlight), so that the instance redoing them after
	// a crash reads them instead of paying again. Internal to the enricher.
	// Default: enrichment-journal.
	Journal string
}

// WithDefaults returns t with every unset name at its default.
func (t Topics) WithDefaults() Topics {
	t.setDefaults()
	return t
}

func (t *Topics) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&t.Profiles, "profile-unified")
	def(&t.Control, "leadspace-control")
	def(&t.Enriched, "enriched-company")
	def(&t.DeadLetters, "enrichment-dlq")
	def(&t.Status, "enrichment-status")
	def(&t.Journal, "enrichment-journal")
}

// Subjects maps each record type to its registry subject under Confluent's
// TopicNameStrategy (<topic>-value), so other Confluent tools find them.
func (t Topics) Subjects() map[schemas.Type]string {
	t = t.WithDefaults()
	return map[schemas.Type]string{
		schemas.ProfileUnified:   t.Profiles + "-value",
		schemas.ControlEvent:     t.Control + "-value",
		schemas.EnrichedCompany:  t.Enriched + "-value",
		schemas.DeadLetter:       t.DeadLetters + "-value",
		schemas.EnrichmentStatus: t.Status + "-value",
		schemas.BulkInFlight:     t.Journal + "-value",
	}
}

// TopicLayout says how to create the topics.
type TopicLayout struct {
	// Partitions of profile-unified, enriched-company, the DLQ and status.
	// Enriched should match profiles so both hash a key alike. Default: 6.
	Partitions int
	// ReplicationFactor of every topic. Default: 1 (use 3 in production).
	ReplicationFactor int
}

// CreateTopics creates any missing topic with the cleanup policy the design
// gives it: compacted tables (profiles, control, enriched, status) and a
// deleting DLQ with long retention. The control topic has one partition so
// that its events keep one order, and broker-set timestamps. Existing topics are left as they are.
func CreateTopics(ctx context.Context, k Config, t Topics, layout TopicLayout) error {
	t.setDefaults()
	if layout.Partitions == 0 {
		layout.Partitions = 6
	}
	if layout.ReplicationFactor == 0 {
		layout.ReplicationFactor = 1
	}
	conn, err := k.Connect()
	if err != nil {
		return err
	}
	compact := []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
	// The broker stamps control records itself, so a record's time is when
	// it was really written (replays are refused by sequence, not by time).
	control := append(compact, kafka.ConfigEntry{ConfigName: "message.timestamp.type", ConfigValue: "LogAppendTime"})
	dlq := []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "delete"},
		{ConfigName: "retention.ms", ConfigValue: "2592000000"}} // 30 days: time for ops to replay
	// Bulks in flight: tombstoned once answered, and gone after a day in any
	// case (how long Leadspace keeps results is not documented).
	journal := []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact,delete"},
		{ConfigName: "retention.ms", ConfigValue: "86400000"}}
	req := &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: t.Profiles, NumPartitions: layout.Partitions, ReplicationFactor: layout.ReplicationFactor, ConfigEntries: compact},
		{Topic: t.Control, NumPartitions: 1, ReplicationFactor: layout.ReplicationFactor, ConfigEntries: control},
		{Topic: t.Enriched, NumPartitions: layout.Partitions, ReplicationFactor: layout.ReplicationFactor, ConfigEntries: compact},
		{Topic: t.DeadLetters, NumPartitions: layout.Partitions, ReplicationFactor: layout.ReplicationFactor, ConfigEntries: dlq},
		{Topic: t.Status, NumPartitions: layout.Partitions, ReplicationFactor: layout.ReplicationFactor, ConfigEntries: compact},
		{Topic: t.Journal, NumPartitions: 1, ReplicationFactor: layout.ReplicationFactor, ConfigEntries: journal},
	}}
	res, err := conn.Client().CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for topic, terr := range res.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic, terr)
		}
	}
	return nil
}

// ReadAll reads a topic from its start to the end it has now, calling apply
// for each record (one partition at a time per call, never concurrently),
// and returns once every partition is read.
func ReadAll(ctx context.Context, k Config, topic string, apply func(kafka.Message)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	returned := false // set when ReadAll returns: readers still winding down must not apply
	defer func() {
		mu.Lock()
		returned = true
		mu.Unlock()
	}()
	caught := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- Follow(ctx, k, topic, func(m kafka.Message) {
			mu.Lock()
			defer mu.Unlock()
			if !returned {
				apply(m)
			}
		}, func() { close(caught) })
	}()
	select {
	case <-caught:
		return nil
	case err := <-errc:
		return fmt.Errorf("read %s: %w", topic, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Follow reads a whole topic and then keeps following it; see follow.
func Follow(ctx context.Context, k Config, topic string, apply func(kafka.Message), caughtUp func()) error {
	conn, err := k.Connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	return FollowConn(ctx, conn, topic, apply, caughtUp, nil)
}

// TopicEnds lists the next offset of each partition of a topic now.
func TopicEnds(ctx context.Context, cl *kafka.Client, topic string) (map[int]int64, error) {
	spans, err := ClientSpans(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64, len(spans))
	for p, s := range spans {
		out[p] = s.End
	}
	return out, nil
}

// ErrTopicMissing means a topic the service needs does not exist (yet):
// `enricher topics create` makes it. It is waited for, like an outage.
var ErrTopicMissing = errors.New("topic does not exist (create it with 'enricher topics create')")

// PartitionCounts reads how many partitions each topic has.
func PartitionCounts(ctx context.Context, conn Conn, topics ...string) (map[string]int, error) {
	meta, err := conn.Client().Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	out := map[string]int{}
	for _, t := range meta.Topics {
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("%s: %w", t.Name, ErrTopicMissing)
			}
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		out[t.Name] = len(t.Partitions)
	}
	for _, t := range topics {
		if out[t] == 0 {
			return nil, fmt.Errorf("%s: %w", t, ErrTopicMissing)
		}
	}
	return out, nil
}

// defaultMaxMessageBytes is the broker's default message.max.bytes, which a
// topic without max.message.bytes inherits.
const defaultMaxMessageBytes = 1048588

// MaxMessageBytes reads each topic's max.message.bytes: the largest record
// batch it accepts, which our batches and dead letters must stay under.
func MaxMessageBytes(ctx context.Context, conn Conn, topics ...string) (map[string]int, error) {
	req := &kafka.DescribeConfigsRequest{}
	for _, t := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{ResourceType: kafka.ResourceTypeTopic,
			ResourceName: t, ConfigNames: []string{"max.message.bytes"}})
	}
	res, err := conn.Client().DescribeConfigs(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("describe configs: %w", err)
	}
	out := map[string]int{}
	for _, t := range topics {
		out[t] = defaultMaxMessageBytes
	}
	for _, r := range res.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("configs of %s: %w", r.ResourceName, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName == "max.message.bytes" {
				if n, err := strconv.Atoi(e.ConfigValue); err == nil && n > 0 {
					out[r.ResourceName] = n
				}
			}
		}
	}
	return out, nil
}
