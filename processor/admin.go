package processor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Subjects maps each record type to its registry subject under Confluent's
// TopicNameStrategy (<topic>-value), so other Confluent tools find them.
func Subjects(t Topics) map[schemas.Type]string { return t.Subjects() }

// Producer writes framed records to any topic with acks from all in-sync
// replicas; the admin commands, replay and dev seeding use it.
type Producer struct {
	codec *schemas.Codec
	conn  kafkaio.Conn
	w     *kafka.Writer
}

// NewProducer connects a producer.
func NewProducer(k Kafka, codec *schemas.Codec) (*Producer, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	conn, err := k.Connect()
	if err != nil {
		return nil, err
	}
	w := conn.KeyedWriter()
	w.BatchSize = 1000
	return &Producer{codec: codec, conn: conn, w: w}, nil
}

// Write sends raw messages (each with its Topic set).
func (p *Producer) Write(ctx context.Context, msgs ...kafka.Message) error {
	return p.w.WriteMessages(ctx, msgs...)
}

// PublishControl encodes and writes a control event under its tenant/kind key,
// filling in the event id, the issue time and (for an unsigned event) the
// sequence when they are unset. A signed event must be complete: the
// signature covers them.
func (p *Producer) PublishControl(ctx context.Context, topic string, ev schemas.Control) (schemas.Control, error) {
	if ev.Signature == "" {
		if ev.EventID == "" {
			ev.EventID = randomID()
		}
		if ev.IssuedAt.IsZero() {
			ev.IssuedAt = time.Now().UTC().Truncate(time.Millisecond)
		}
		if ev.Sequence == 0 {
			ev.Sequence = controlplane.NextSequence(0)
		}
	}
	native, err := ev.Native()
	if err != nil {
		return ev, err
	}
	value, err := p.codec.Encode(schemas.ControlEvent, native)
	if err != nil {
		return ev, err
	}
	if err := p.w.WriteMessages(ctx, kafka.Message{Topic: topic, Key: []byte(ev.Key()), Value: value}); err != nil {
		return ev, fmt.Errorf("publish %s event for tenant %s: %w", ev.Kind(), ev.TenantID, err)
	}
	return ev, nil
}

// Close flushes and closes the producer.
func (p *Producer) Close() error {
	err := p.w.Close()
	p.conn.Close()
	return err
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
