package processor

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor/internal/table"
	"github.com/enrichment/leadspace-enricher/processor/internal/testkit"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// testCodec is a real codec on an in-memory registry.
func testCodec(t *testing.T) *schemas.Codec { return testkit.Codec(t, Subjects(Topics{})) }

// testHandler is a handler with a real codec on an in-memory registry.
func testHandler(t *testing.T) *handler {
	t.Helper()
	return &handler{codec: testCodec(t), topics: Topics{}.WithDefaults(), log: zap.NewNop(), now: time.Now, names: table.NewInterner()}
}

func TestADeadLetterAlwaysFitsItsTopic(t *testing.T) {
	h := testHandler(t)
	h.deadLetterLimit = 10 << 10
	in := kafka.Message{Topic: "profile-unified", Partition: 2, Offset: 7, Key: []byte("acme/p1"),
		Value: bytes.Repeat([]byte{7}, 50<<10), Headers: []kafka.Header{{Key: "trace", Value: []byte("abc")}}}
	se := &stageError{stage: schemas.StageDecode, reason: schemas.ReasonBadMagicByte, class: classInput, err: errors.New("bad")}
	out, err := h.deadLetter(in, se, "acme", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if n := recordSize(out, out.Value); n > h.deadLetterLimit {
		t.Fatalf("dead letter of %d bytes, limit %d", n, h.deadLetterLimit)
	}
	d, err := h.codec.DecodeDead(context.Background(), out.Value)
	if err != nil {
		t.Fatal(err)
	}
	if !d.OriginalValueTruncated || d.OriginalValueSize != int64(len(in.Value)) || !bytes.HasPrefix(in.Value, d.OriginalValue) ||
		len(d.OriginalValue) < 5<<10 || d.OriginalValueSHA256 == "" {
		t.Fatalf("cut dead letter: truncated %v, size %d, kept %d", d.OriginalValueTruncated, d.OriginalValueSize, len(d.OriginalValue))
	}
	if out.Partition != 2 {
		t.Fatalf("the dead letter goes to partition %d, want the input's 2", out.Partition)
	}

	// Headers too big for the topic on their own: they stay out of the
	// Kafka headers, the context stays in.
	in.Headers = []kafka.Header{{Key: "huge", Value: bytes.Repeat([]byte{1}, 20<<10)}}
	out, err = h.deadLetter(in, se, "acme", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if n := recordSize(out, out.Value); n > h.deadLetterLimit {
		t.Fatalf("dead letter with huge headers: %d bytes, limit %d", n, h.deadLetterLimit)
	}
	if v, ok := table.Header(out, HeaderErrReason); !ok || string(v) != se.reason {
		t.Fatal("the reason header is missing")
	}
}

func TestAPanicBecomesADeadLetter(t *testing.T) {
	h := testHandler(t)
	deps := workerDeps{handler: h, metrics: newMetrics(nil, nil)}
	w := &partitionWorker{workerDeps: deps, log: zap.NewNop(), table: table.New(h.names, 0)}
	j := &job{w: w, key: "acme/p1", msg: kafka.Message{Topic: "profile-unified", Partition: 1, Offset: 3, Key: []byte("acme/p1"), Value: []byte{0}}}
	st := w.safely(j, schemas.StageEnrich, func() step { panic("boom") })
	if st.outcome != outDead || st.reason != ReasonPanic || len(st.out) != 1 || st.state != nil {
		t.Fatalf("step after a panic: %+v", st)
	}
	d, err := h.codec.DecodeDead(context.Background(), st.out[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if d.Stage != schemas.StageEnrich || d.Reason != ReasonPanic || d.TenantID != "acme" {
		t.Fatalf("dead letter: %+v", d)
	}
}
