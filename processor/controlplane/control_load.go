package controlplane

import (
	"context"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Load builds table as the service does before it is ready: the
// tenants' control records from the status topic first (what the service
// applied, so an event compaction brought back cannot win), then every
// event of the control topic, verified with auth. Commands that show the
// service's view (status, refresh) use it.
func Load(ctx context.Context, k kafkaio.Config, topics kafkaio.Topics, codec *schemas.Codec, auth Auth, table *Table) error {
	topics = topics.WithDefaults()
	applied, err := ReadApplied(ctx, k, topics.Status, codec)
	if err != nil {
		return err
	}
	records := make([]schemas.Status, 0, len(applied))
	for _, s := range applied {
		records = append(records, s)
	}
	table.Restore(records)
	return kafkaio.ReadAll(ctx, k, topics.Control, func(m kafka.Message) { _, _ = table.ApplyRecord(codec, auth, m) })
}
