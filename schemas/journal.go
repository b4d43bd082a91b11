package schemas

import (
	"context"
	"time"
)

// BulkInput is one input record whose answer rides in a bulk.
type BulkInput struct {
	Partition int32
	Offset    int64
}

// Bulk is a BulkInFlight record: an accepted bulk whose answers are not all
// published yet.
type Bulk struct {
	Program     string
	Path        string
	AcceptedAt  time.Time
	SourceTopic string
	Inputs      []BulkInput
}

// Native is the goavro form of b.
func (b Bulk) Native() map[string]any {
	inputs := make([]any, len(b.Inputs))
	for i, in := range b.Inputs {
		inputs[i] = map[string]any{"partition": in.Partition, "offset": in.Offset}
	}
	return map[string]any{"program": b.Program, "path": b.Path, "accepted_at": b.AcceptedAt,
		"source_topic": b.SourceTopic, "inputs": inputs}
}

// DecodeBulk decodes a framed BulkInFlight value.
func (c *Codec) DecodeBulk(ctx context.Context, value []byte) (Bulk, error) {
	m, err := c.Decode(ctx, BulkInFlight, value)
	if err != nil {
		return Bulk{}, err
	}
	r := &record{m: m}
	b := Bulk{Program: r.str("program"), Path: r.str("path"), AcceptedAt: r.time("accepted_at"), SourceTopic: r.str("source_topic")}
	items, _ := m["inputs"].([]any)
	for _, it := range items {
		in := &record{m: asMap(it)}
		b.Inputs = append(b.Inputs, BulkInput{Partition: int32(in.long("partition")), Offset: in.long("offset")})
		if in.err != nil && r.err == nil {
			r.err = in.err
		}
	}
	return b, r.err
}
