package processor

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
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
}

// Config of a Processor. Zero values take the documented defaults.
type Config struct {
	Kafka  Kafka
	Topics Topics
	// GroupID is the consumer group of profile-unified. Default: leadspace-enricher.
	GroupID string
	// Window bounds inputs in flight (queued or running) across all
	// partitions; a full window stops fetching. Bulk calls need a backlog, so
	// keep it well above Leadspace's bulk size. Default: 2000.
	Window int
	// CommitInterval is how often finished offsets are committed. Default: 1s.
	CommitInterval time.Duration
	// ShutdownTimeout bounds how long in-flight work may finish after a stop
	// signal before it is abandoned (and redelivered later). Default: 30s.
	ShutdownTimeout time.Duration
	// RetryBackoff is the first wait after a failed produce, an unreachable
	// registry or an open breaker; it doubles up to 32x. Default: 500ms.
	RetryBackoff time.Duration
	// ProduceBatchTimeout is how long the producer waits to fill a batch.
	// kafka-go's own default (1s) would add a second to every output. Default: 5ms.
	ProduceBatchTimeout time.Duration
	// Auth verifies control events. Default: none (events are not
	// authenticated, and the processor says so at start).
	Auth ControlAuth
	// StatusInterval is how often tenant state changes are published to the
	// status topic. Default: 1s.
	StatusInterval time.Duration
	// Logger receives structured logs. Default: a no-op logger.
	Logger *zap.Logger
	// Registerer receives the processor's metrics. Default: none.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	c.Topics.setDefaults()
	if c.GroupID == "" {
		c.GroupID = "leadspace-enricher"
	}
	if c.Window == 0 {
		c.Window = 2000
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
	if c.ProduceBatchTimeout == 0 {
		c.ProduceBatchTimeout = 5 * time.Millisecond
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Validate reports the first invalid setting by name.
func (c *Config) Validate() error {
	if err := c.Kafka.Validate(); err != nil {
		return err
	}
	switch {
	case c.Window < 1 || c.Window > 1_000_000:
		return fmt.Errorf("window: %d is outside 1..1000000", c.Window)
	case c.CommitInterval < 10*time.Millisecond:
		return fmt.Errorf("commit-interval: %s is below 10ms", c.CommitInterval)
	case c.ShutdownTimeout < 0:
		return errors.New("shutdown-timeout: must not be negative")
	case c.RetryBackoff <= 0:
		return errors.New("retry-backoff: must be positive")
	}
	seen := map[string]string{}
	for name, topic := range map[string]string{"profiles-topic": c.Topics.Profiles, "control-topic": c.Topics.Control,
		"enriched-topic": c.Topics.Enriched, "dlq-topic": c.Topics.DeadLetters, "status-topic": c.Topics.Status} {
		if other, dup := seen[topic]; dup {
			return fmt.Errorf("%s: %q is also %s; every topic must differ", name, topic, other)
		}
		seen[topic] = name
	}
	return nil
}
