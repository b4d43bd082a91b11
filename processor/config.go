package processor

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/internal/group"
)

// Config of a Processor. Zero values take the documented defaults.
type Config struct {
	Kafka  Kafka
	Topics Topics
	// Group is the consumer group membership: id, static instance id and
	// the timeouts (see GroupConfig for their defaults and relations).
	Group GroupConfig
	// Window is an upper bound on inputs in flight across all partitions.
	// What is in flight is sized per Leadspace program by Little's law (each
	// program's Capacity) and bounded by MaxInFlightBytes; this only caps
	// it. Default: 50000.
	Window int
	// MaxInFlightBytes bounds the memory of the inputs in flight (their
	// bytes plus ~1 KiB each); a full window stops fetching. Default: 64 MiB.
	MaxInFlightBytes int64
	// StallAfter is how long a Leadspace program with work in flight may
	// finish nothing before it counts as stalled: its further inputs are
	// then deferred (re-read later) so other programs' tenants keep their
	// throughput. Default: 5s.
	StallAfter time.Duration
	// CommitInterval is how often finished offsets are committed. Default: 1s.
	CommitInterval time.Duration
	// DrainTimeout bounds how long in-flight work may finish when the
	// instance stops or a rebalance revokes its partitions; what is left is
	// redelivered. Heartbeats go on meanwhile; it must stay below the
	// group's rebalance timeout, or the group would drop this member
	// mid-drain. Default: 20s.
	DrainTimeout time.Duration
	// RetryBackoff is the first wait while the schema registry is
	// unreachable; it doubles up to 30s. Default: 500ms.
	RetryBackoff time.Duration
	// Auth verifies control events. Default: none (events are not
	// authenticated, and the processor says so at start).
	Auth controlplane.Auth
	// StatusInterval is how often tenant state changes are published to the
	// status topic. Default: 1s.
	StatusInterval time.Duration
	// Logger receives structured logs. Default: a no-op logger.
	Logger *zap.Logger
	// Registerer receives the processor's metrics. Default: none.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	c.Topics = c.Topics.WithDefaults()
	c.Group = c.Group.WithDefaults()
	if c.Window == 0 {
		c.Window = 50000
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = 64 << 20
	}
	if c.StallAfter == 0 {
		c.StallAfter = 5 * time.Second
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 20 * time.Second
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 500 * time.Millisecond
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
	if err := c.Group.Validate(); err != nil {
		return err
	}
	switch {
	case c.Window < 1 || c.Window > 1_000_000:
		return fmt.Errorf("window: %d is outside 1..1000000", c.Window)
	case c.MaxInFlightBytes < 1<<20:
		return fmt.Errorf("max-in-flight-bytes: %d is below 1 MiB", c.MaxInFlightBytes)
	case c.StallAfter < 100*time.Millisecond:
		return fmt.Errorf("stall-after: %s is below 100ms", c.StallAfter)
	case c.CommitInterval < 10*time.Millisecond:
		return fmt.Errorf("commit-interval: %s is below 10ms", c.CommitInterval)
	case c.DrainTimeout <= 0:
		return errors.New("shutdown-timeout: must be positive")
	case c.DrainTimeout >= c.Group.RebalanceTimeout:
		return fmt.Errorf("shutdown-timeout: %s must be below rebalance-timeout (%s): the group waits that long for a member to finish and rejoin",
			c.DrainTimeout, c.Group.RebalanceTimeout)
	case c.RetryBackoff <= 0:
		return errors.New("retry-backoff: must be positive")
	}
	seen := map[string]string{}
	for name, topic := range map[string]string{"profiles-topic": c.Topics.Profiles, "control-topic": c.Topics.Control,
		"enriched-topic": c.Topics.Enriched, "dlq-topic": c.Topics.DeadLetters, "status-topic": c.Topics.Status,
		"journal-topic": c.Topics.Journal} {
		if other, dup := seen[topic]; dup {
			return fmt.Errorf("%s: %q is also %s; every topic must differ", name, topic, other)
		}
		seen[topic] = name
	}
	return nil
}

// Check validates c with its defaults filled in, as New will: commands call
// it to refuse bad settings before connecting anywhere.
func (c Config) Check() error {
	c.setDefaults()
	return c.Validate()
}

// GroupConfig is the consumer group membership: id, static instance id and
// the timeouts, with their defaults and relations.
type GroupConfig = group.Config
