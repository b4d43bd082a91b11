// Package embedded starts everything the enricher talks to, in this process
// and on loopback: a Kafka-protocol broker (franz-go's kfake) unless a real
// one is given, an in-memory Confluent-compatible schema registry (srfake),
// and the Leadspace simulator. `enricher dev` and the integration tests run
// on it; with a real broker's address the same tests run against Apache Kafka.
package embedded

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Options of a Stack. Zero values take the defaults in brackets.
type Options struct {
	// Brokers of a running Kafka cluster; empty starts kfake.
	Brokers []string
	// Security of the connection (TLS, SASL); Brokers inside it is ignored.
	Security processor.Kafka
	// BrokerOpts configure the kfake broker (e.g. TLS, SASL users).
	BrokerOpts []kfake.Opt
	// Topics to create (the processor's defaults).
	Topics processor.Topics
	// Partitions of the data topics (3).
	Partitions int
	// Programs the simulator knows; each has its own tokens, rate and credits.
	Programs []simulator.ProgramConfig
	// LeadspaceLatency and LeadspaceJitter shape simulated answers (120ms, 80ms).
	LeadspaceLatency, LeadspaceJitter time.Duration
	// BulkReadyAfterPolls is how many polls a bulk job needs; 0 makes bulks
	// ready by time (BulkReadyAfter, the simulator's default of 1s).
	BulkReadyAfterPolls int
	BulkReadyAfter      time.Duration
	// FreePolls makes polls free of the program's rate (see simulator.Config).
	FreePolls bool
}

// Stack is a running set of dependencies.
type Stack struct {
	Kafka        processor.Kafka
	Topics       processor.Topics
	RegistryURL  string
	Registry     *sr.Client
	Codec        *schemas.Codec
	Simulator    *simulator.Simulator
	LeadspaceURL string
	// External is true when Kafka is a real cluster, not kfake.
	External bool

	cluster *kfake.Cluster // nil on a real cluster

	closers []func()
}

// Start brings the stack up and creates the topics.
func Start(ctx context.Context, o Options) (*Stack, error) {
	s := &Stack{Topics: o.Topics.WithDefaults(), External: len(o.Brokers) > 0}
	if err := s.start(ctx, o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Stack) start(ctx context.Context, o Options) (err error) {
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	brokers := o.Brokers
	if len(brokers) == 0 {
		cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, o.BrokerOpts...)...)
		if err != nil {
			return fmt.Errorf("start in-process Kafka: %w", err)
		}
		s.closers = append(s.closers, cluster.Close)
		s.cluster = cluster
		brokers = cluster.ListenAddrs()
	}
	s.Kafka = o.Security
	s.Kafka.Brokers = brokers
	// A broker that is busy or just started may refuse for a moment.
	pace := retry.Schedule{First: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: retry.Equal}
	if err := pace.Do(ctx, "create topics", func() error {
		return processor.CreateTopics(ctx, s.Kafka, s.Topics, processor.TopicLayout{Partitions: o.Partitions})
	}, nil, nil); err != nil {
		return err
	}

	reg := srfake.New()
	s.closers = append(s.closers, reg.Close)
	s.RegistryURL = reg.URL()
	if s.Registry, err = sr.NewClient(sr.URLs(s.RegistryURL)); err != nil {
		return err
	}
	if s.Codec, err = schemas.NewCodec(ctx, s.Registry, processor.Subjects(s.Topics)); err != nil {
		return err
	}

	sim, err := simulator.New(simulator.Config{Programs: o.Programs, Latency: o.LeadspaceLatency, Jitter: o.LeadspaceJitter,
		BulkReadyAfterPolls: o.BulkReadyAfterPolls, BulkReadyAfter: o.BulkReadyAfter, FreePolls: o.FreePolls})
	if err != nil {
		return fmt.Errorf("leadspace simulator: %w", err)
	}
	s.Simulator = sim
	s.closers = append(s.closers, func() { _ = sim.Close() })
	if s.LeadspaceURL, err = sim.Start("127.0.0.1:0"); err != nil {
		return fmt.Errorf("leadspace simulator: %w", err)
	}
	return nil
}

// Compact runs log compaction now on the in-process broker's compacted
// topics, as a real broker's cleaner would (every batch but the last).
// On a real cluster it does nothing and returns false: the broker compacts
// on its own schedule (small segment.ms and min.cleanable.dirty.ratio make
// it quick).
func (s *Stack) Compact() bool {
	if s.cluster == nil {
		return false
	}
	s.cluster.Compact()
	return true
}

// Close stops everything in reverse order.
func (s *Stack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}
