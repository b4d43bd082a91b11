package processor

import (
	"context"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/processor/internal/table"
)

// What commands need of the Kafka plumbing (processor/internal/kafkaio):
// the connection settings, the topics' names and layout, and whole-topic
// reads.

// Kafka says how to reach the cluster: plain, TLS, SASL PLAIN or SCRAM.
type Kafka = kafkaio.Config

// Topics names every topic the processor touches.
type Topics = kafkaio.Topics

// TopicLayout says how to create the topics.
type TopicLayout = kafkaio.TopicLayout

// HeaderState names the header on enriched-company and the DLQ that carries
// a record's answer state (outcome, fingerprint, offsets): internal to the
// enricher, but commands and contract tests read it.
const HeaderState = table.HeaderState

// CreateTopics creates any missing topic with the cleanup policy the design
// gives it; existing topics are left as they are.
func CreateTopics(ctx context.Context, k Kafka, t Topics, layout TopicLayout) error {
	return kafkaio.CreateTopics(ctx, k, t, layout)
}

// ReadAll reads a topic from its start to the end it has now, calling apply
// for each record, one at a time.
func ReadAll(ctx context.Context, k Kafka, topic string, apply func(kafka.Message)) error {
	return kafkaio.ReadAll(ctx, k, topic, apply)
}

// Follow reads a whole topic and then keeps following it until ctx ends.
func Follow(ctx context.Context, k Kafka, topic string, apply func(kafka.Message), caughtUp func()) error {
	return kafkaio.Follow(ctx, k, topic, apply, caughtUp)
}

// TopicEnds lists the next offset of each partition of a topic now.
func TopicEnds(ctx context.Context, cl *kafka.Client, topic string) (map[int]int64, error) {
	return kafkaio.TopicEnds(ctx, cl, topic)
}

// CloseClient releases a client from Kafka.Client: its transport's
// connections and background metadata refresh.
func CloseClient(cl *kafka.Client) { kafkaio.CloseClient(cl) }
