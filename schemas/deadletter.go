package schemas

import (
	"context"
	"time"
)

// Stages at which an input can fail.
const (
	StageDecode   = "DECODE"
	StageValidate = "VALIDATE"
	StageMap      = "MAP"
	StageEnrich   = "ENRICH"
	StageEncode   = "ENCODE"
	StageProduce  = "PRODUCE"
)

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Dead is a DeadLetter event: the untouched input plus why and where it failed.
type Dead struct {
	ID              string
	OriginalKey     []byte
	OriginalValue   []byte
	OriginalHeaders []Header
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64
	SourceTimestamp time.Time
	Stage           string
	Reason          string
	ErrorClass      string
	ErrorMessage    string
	Replayable      bool
	Attempts        int32
	FirstFailureAt  time.Time
	LastFailureAt   time.Time
	TenantID        string
	ProfileID       string
	ReplayCount     int32
	// OriginalValueSize is the input value's size (-1 for null) and
	// OriginalValueSHA256 its hash: a value cut to fit the topic
	// (OriginalValueTruncated) can still be matched to its source.
	OriginalValueSize      int64
	OriginalValueSHA256    string
	OriginalValueTruncated bool
}

// Native is the goavro form of d.
func (d Dead) Native() map[string]any {
	headers := make([]any, len(d.OriginalHeaders))
	for i, h := range d.OriginalHeaders {
		headers[i] = map[string]any{"key": h.Key, "value": optBytes(h.Value)}
	}
	return map[string]any{
		"dead_letter_id": d.ID, "original_key": optBytes(d.OriginalKey), "original_value": optBytes(d.OriginalValue),
		"original_headers": headers, "source_topic": d.SourceTopic, "source_partition": d.SourcePartition,
		"source_offset": d.SourceOffset, "source_timestamp": d.SourceTimestamp, "stage": d.Stage,
		"reason": d.Reason, "error_class": d.ErrorClass, "error_message": d.ErrorMessage, "replayable": d.Replayable,
		"attempts": d.Attempts, "first_failure_at": d.FirstFailureAt, "last_failure_at": d.LastFailureAt,
		"tenant_id": optString(d.TenantID), "profile_id": optString(d.ProfileID), "replay_count": d.ReplayCount,
		"original_value_size": d.OriginalValueSize, "original_value_sha256": d.OriginalValueSHA256,
		"original_value_truncated": d.OriginalValueTruncated,
	}
}

// DecodeDead decodes a framed DeadLetter value.
func (c *Codec) DecodeDead(ctx context.Context, value []byte) (Dead, error) {
	m, err := c.Decode(ctx, DeadLetter, value)
	if err != nil {
		return Dead{}, err
	}
	r := &record{m: m}
	d := Dead{
		ID: r.str("dead_letter_id"), OriginalKey: r.bytes("original_key"), OriginalValue: r.bytes("original_value"),
		SourceTopic: r.str("source_topic"), SourcePartition: int32(r.long("source_partition")), SourceOffset: r.long("source_offset"),
		SourceTimestamp: r.time("source_timestamp"), Stage: r.str("stage"), Reason: r.str("reason"),
		ErrorClass: r.str("error_class"), ErrorMessage: r.str("error_message"), Replayable: r.boolean("replayable"),
		Attempts: int32(r.long("attempts")), FirstFailureAt: r.time("first_failure_at"), LastFailureAt: r.time("last_failure_at"),
		TenantID: r.str("tenant_id"), ProfileID: r.str("profile_id"), ReplayCount: int32(r.long("replay_count")),
		OriginalValueSize: r.long("original_value_size"), OriginalValueSHA256: r.str("original_value_sha256"),
		OriginalValueTruncated: r.boolean("original_value_truncated"),
	}
	items, _ := r.m["original_headers"].([]any)
	for _, it := range items {
		if hm, ok := it.(map[string]any); ok {
			h := &record{m: hm}
			d.OriginalHeaders = append(d.OriginalHeaders, Header{Key: h.str("key"), Value: h.bytes("value")})
		}
	}
	return d, r.err
}
