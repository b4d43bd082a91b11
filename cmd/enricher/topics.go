package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
	"github.com/enrichment/leadspace-enricher/processor"
)

// topicsFlags are the settings of `enricher topics create`.
type topicsFlags struct {
	kafkaFlags
	partitions, replicationFactor int
	timeout                       time.Duration
}

func (f *topicsFlags) bind(s *settings) {
	f.kafkaFlags.bind(s)
	s.IntVar(&f.partitions, "partitions", 6, "partitions of the profiles, enriched, dead letter and status topics (control always has 1)")
	s.IntVar(&f.replicationFactor, "replication-factor", 1, "replicas of every topic (use 3 in production)")
	s.DurationVar(&f.timeout, "timeout", time.Minute, "give up when the brokers do not answer within this time")
}

// cmdTopics creates the service's topics with the cleanup policy the design
// gives each (compacted tables, a deleting DLQ); existing topics are left
// untouched, so it is safe to run on every deployment.
func cmdTopics(args []string) error {
	if len(args) == 0 || args[0] != "create" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(os.Stderr, "Usage: enricher topics create [flags]; 'enricher topics create -h' lists the flags")
			return nil
		}
		return errors.New("usage: enricher topics create [flags]")
	}
	s := newSettings("topics create")
	var f topicsFlags
	f.bind(s)
	if err := s.parse(args[1:]); err != nil {
		return err
	}
	switch {
	case f.partitions < 1:
		return fmt.Errorf("partitions: %d is below 1", f.partitions)
	case f.replicationFactor < 1:
		return fmt.Errorf("replication-factor: %d is below 1", f.replicationFactor)
	}
	if err := positive("timeout", f.timeout); err != nil {
		return err
	}
	k := f.kafka()
	if err := k.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	t := f.topics.WithDefaults()
	layout := processor.TopicLayout{Partitions: f.partitions, ReplicationFactor: f.replicationFactor}
	// Brokers that are still starting (a fresh compose stack) refuse or drop
	// connections for a while: retry until the timeout.
	pace := retry.Schedule{First: 500 * time.Millisecond, Max: 5 * time.Second, Jitter: retry.Equal}
	for attempt := 1; ; attempt++ {
		err := processor.CreateTopics(ctx, k, t, layout)
		if err == nil {
			break
		}
		wait := pace.Delay(attempt)
		fmt.Fprintf(os.Stderr, "enricher topics create: %v (retrying in %s)\n", err, wait.Round(time.Millisecond))
		if retry.Sleep(ctx, wait) != nil {
			return fmt.Errorf("brokers %v: %w (gave up after %s)", []string(f.brokers), err, f.timeout)
		}
	}
	fmt.Printf("topics ready: %s, %s (1 partition), %s, %s, %s (%d partitions, replication factor %d)\n",
		t.Profiles, t.Control, t.Enriched, t.DeadLetters, t.Status, f.partitions, f.replicationFactor)
	return nil
}
