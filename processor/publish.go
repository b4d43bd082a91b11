package processor

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// publisher writes outputs and returns only once the broker acknowledged them
// on all in-sync replicas. kafka-go's writer has no idempotent producer, so a
// retried write can duplicate: outputs are at-least-once, and consumers drop
// duplicates by event id.
type publisher struct {
	w       *kafka.Writer
	log     *zap.Logger
	backoff time.Duration
}

func newPublisher(conn connection, batchTimeout, backoff time.Duration, log *zap.Logger) *publisher {
	return &publisher{
		w: &kafka.Writer{
			Addr: kafka.TCP(conn.brokers...),
			// Murmur2 is the Java client's partitioner: our outputs land on the
			// same partition as a Java producer would put the same key.
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: batchTimeout,
			BatchSize:    500,
			BatchBytes:   8 << 20,
			MaxAttempts:  3,
			Transport:    conn.transport,
		},
		log:     log,
		backoff: backoff,
	}
}

// publish writes msgs until acknowledged or ctx ends. A failure never moves
// the commit point: the input stays unfinished and is retried here, or
// redelivered after a restart.
func (p *publisher) publish(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	wait := p.backoff
	for {
		err := p.w.WriteMessages(ctx, msgs...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Warn("produce failed, retrying", zap.String("topic", msgs[0].Topic), zap.Error(err), zap.Duration("in", wait))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

func (p *publisher) close() error { return p.w.Close() }
