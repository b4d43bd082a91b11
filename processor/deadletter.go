package processor

import (
	"strconv"

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
// untouched, and the failure's context in the value and in headers.
func (h *handler) deadLetter(msg kafka.Message, se *stageError, tenant, profile string) (kafka.Message, error) {
	now := h.now()
	firstFailure := se.firstFailure
	if firstFailure.IsZero() {
		firstFailure = now
	}
	headers := make([]schemas.Header, len(msg.Headers))
	for i, hd := range msg.Headers {
		headers[i] = schemas.Header{Key: hd.Key, Value: hd.Value}
	}
	if tenant == "" {
		tenant, profile, _ = splitKey(msg.Key)
	}
	d := schemas.Dead{
		ID:          deadLetterID(msg.Topic, msg.Partition, msg.Offset, se.stage),
		OriginalKey: msg.Key, OriginalValue: msg.Value, OriginalHeaders: headers,
		SourceTopic: msg.Topic, SourcePartition: int32(msg.Partition), SourceOffset: msg.Offset, SourceTimestamp: msg.Time,
		Stage: se.stage, Reason: se.reason, ErrorClass: se.class, ErrorMessage: se.err.Error(), Replayable: se.replayable,
		Attempts: int32(max(se.attempts, 1)), FirstFailureAt: firstFailure, LastFailureAt: now,
		TenantID: tenant, ProfileID: profile, ReplayCount: replayCount(msg),
	}
	value, err := h.codec.Encode(schemas.DeadLetter, d.Native())
	if err != nil {
		return kafka.Message{}, err
	}
	out := kafka.Message{Topic: h.topics.DeadLetters, Key: msg.Key, Value: value}
	out.Headers = append(out.Headers, msg.Headers...)
	out.Headers = append(out.Headers,
		kafka.Header{Key: HeaderErrTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: HeaderErrPartition, Value: []byte(strconv.Itoa(msg.Partition))},
		kafka.Header{Key: HeaderErrOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		kafka.Header{Key: HeaderErrStage, Value: []byte(se.stage)},
		kafka.Header{Key: HeaderErrClass, Value: []byte(se.class)},
		kafka.Header{Key: HeaderErrMessage, Value: []byte(se.err.Error())},
		kafka.Header{Key: HeaderErrReason, Value: []byte(se.reason)},
		kafka.Header{Key: HeaderReplayable, Value: []byte(strconv.FormatBool(se.replayable))},
	)
	return out, nil
}
