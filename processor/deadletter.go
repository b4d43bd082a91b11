package processor

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// Header names of the dead-letter context, mirrored from the value so that
// tools which cannot read Avro (kcat, Kafka UIs) still see why. The
// __connect.errors.* names follow Kafka Connect's dead letter queue.
const (
	HeaderErrTopic     = "__connect.errors.topic"
	HeaderErrPartition = "__connect.errors.partition"
	HeaderErrOffset    = "__connect.errors.offset"
	HeaderErrStage     = "__connect.errors.stage"
	HeaderErrClass     = "__connect.errors.exception.class.name"
	HeaderErrMessage   = "__connect.errors.exception.message"
	HeaderErrReason    = "enricher.errors.reason"
	HeaderReplayable   = "enricher.errors.replayable"
	// HeaderReplayCount counts how often a record went DLQ -> source; the
	// replay tool refuses records past a limit so nothing loops forever.
	HeaderReplayCount = "enricher.replay.count"
)

// replayCount reads how often the input was replayed from the DLQ.
func replayCount(msg kafka.Message) int32 {
	for _, h := range msg.Headers {
		if h.Key == HeaderReplayCount {
			n, _ := strconv.Atoi(string(h.Value))
			return int32(n)
		}
	}
	return 0
}

// deadLetter wraps an input that failed: the original key, value and headers
// untouched, and the failure's context in the value and in headers. A dead
// letter must always fit the DLQ topic, or a single oversized input would
// stop its partition forever: when it would not, the original value is cut
// (its size and SHA-256 are kept, and original_value_truncated says so),
// then the original headers are left out of the Kafka headers.
func (h *handler) deadLetter(msg kafka.Message, se *stageError, tenant, profile string) (kafka.Message, error) {
	now := h.now().UTC().Truncate(time.Millisecond)
	first, last := se.firstFailure, se.lastFailure
	if last.IsZero() {
		last = now
	}
	if first.IsZero() {
		first = last
	}
	text := strings.ToValidUTF8(se.err.Error(), "\uFFFD")
	headers := make([]schemas.Header, len(msg.Headers))
	for i, hd := range msg.Headers {
		headers[i] = schemas.Header{Key: strings.ToValidUTF8(hd.Key, "\uFFFD"), Value: hd.Value}
	}
	d := schemas.Dead{
		ID:          deadLetterID(msg.Topic, msg.Partition, msg.Offset, se.stage),
		OriginalKey: msg.Key, OriginalValue: msg.Value, OriginalHeaders: headers,
		SourceTopic: msg.Topic, SourcePartition: int32(msg.Partition), SourceOffset: msg.Offset, SourceTimestamp: msg.Time,
		Stage: se.stage, Reason: se.reason, ErrorClass: se.class, ErrorMessage: text, Replayable: se.replayable,
		Attempts: int32(max(se.attempts, 1)), FirstFailureAt: first, LastFailureAt: last,
		TenantID: tenant, ProfileID: profile, ReplayCount: replayCount(msg), OriginalValueSize: -1,
	}
	if msg.Value != nil {
		sum := sha256.Sum256(msg.Value)
		d.OriginalValueSize, d.OriginalValueSHA256 = int64(len(msg.Value)), hex.EncodeToString(sum[:])
	}
	context := []kafka.Header{
		{Key: HeaderErrTopic, Value: []byte(msg.Topic)},
		{Key: HeaderErrPartition, Value: []byte(strconv.Itoa(msg.Partition))},
		{Key: HeaderErrOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		{Key: HeaderErrStage, Value: []byte(se.stage)},
		{Key: HeaderErrClass, Value: []byte(se.class)},
		{Key: HeaderErrMessage, Value: []byte(truncate(text, 1000))},
		{Key: HeaderErrReason, Value: []byte(se.reason)},
		{Key: HeaderReplayable, Value: []byte(strconv.FormatBool(se.replayable))},
	}
	out := kafka.Message{Topic: h.topics.DeadLetters, Partition: msg.Partition, Key: msg.Key}
	out.Headers = append(append(out.Headers, msg.Headers...), context...)
	value, err := h.codec.Encode(schemas.DeadLetter, d.Native())
	if err != nil {
		return kafka.Message{}, err
	}
	if limit := h.deadLetterLimit; limit > 0 && recordSize(out, value) > limit {
		d.OriginalValueTruncated = true
		// fit cuts the value to what the rest of the record leaves room for.
		fit := func() ([]byte, error) {
			d.OriginalValue = nil
			rest, err := h.codec.Encode(schemas.DeadLetter, d.Native())
			if err != nil {
				return nil, err
			}
			room := limit - recordSize(out, rest) - 16
			if room <= 0 || msg.Value == nil {
				return rest, nil
			}
			d.OriginalValue = msg.Value[:min(room, len(msg.Value))]
			return h.codec.Encode(schemas.DeadLetter, d.Native())
		}
		if value, err = fit(); err != nil {
			return kafka.Message{}, err
		}
		if recordSize(out, value) > limit {
			// The original headers alone are too big: keep the context only.
			out.Headers, d.OriginalHeaders = context, nil
			if value, err = fit(); err != nil {
				return kafka.Message{}, err
			}
		}
	}
	out.Value = value
	return out, nil
}

// recordSize is a record's size as the broker counts it against
// max.message.bytes, with room for the record's own framing.
func recordSize(m kafka.Message, value []byte) int {
	n := len(m.Key) + len(value) + 64
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}
