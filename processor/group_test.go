package processor

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
)

// testKafka is the real broker of KAFKA_BOOTSTRAP, or an in-process one.
func testKafka(t *testing.T) Kafka {
	t.Helper()
	if b := os.Getenv("KAFKA_BOOTSTRAP"); b != "" {
		return Kafka{Brokers: strings.Split(b, ",")}
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return Kafka{Brokers: cluster.ListenAddrs()}
}

// A member learns of a rebalance from its heartbeats, rejoins, and the
// partitions are shared. (kafka-go's Heartbeat answer hides the error code,
// so this is what makes rebalances happen at all.)
func TestAMemberSeesARebalanceAndRejoins(t *testing.T) {
	k := testKafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "group-test-" + time.Now().Format("150405.000000")
	if err := CreateTopics(ctx, k, Topics{Profiles: topic, Control: topic + "-c", Enriched: topic + "-e", DeadLetters: topic + "-d",
		Status: topic + "-s", Journal: topic + "-j"}, TopicLayout{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	cfg := GroupConfig{ID: topic}
	cfg.setDefaults()
	member := func() *groupMember {
		conn, err := k.connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.close)
		return newGroupMember(conn, cfg, topic, zap.NewNop())
	}
	a := member()
	first, err := a.join(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.partitions) != 4 || first.members != 1 {
		t.Fatalf("alone, the member got %+v", first)
	}
	b := member()
	joined := make(chan assignment, 1)
	go func() {
		as, err := b.join(ctx, nil)
		if err != nil {
			t.Error(err)
		}
		joined <- as
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := a.heartbeat(ctx, first)
		if errors.Is(err, kafka.RebalanceInProgress) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first member never heard of the rebalance a second member started; last heartbeat: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	second, err := a.join(ctx, first.partitions)
	if err != nil {
		t.Fatal(err)
	}
	other := <-joined
	if second.generation != other.generation || len(second.partitions)+len(other.partitions) != 4 || len(second.partitions) != 2 ||
		second.members != 2 {
		t.Fatalf("after the rebalance: %+v and %+v", second, other)
	}
	// The first member keeps two of the partitions it had (sticky).
	for _, p := range second.partitions {
		if p < 0 || p > 3 {
			t.Fatalf("partition %d", p)
		}
	}
	if err := a.heartbeat(ctx, second); err != nil {
		t.Fatalf("a heartbeat in the new generation: %v", err)
	}
	if err := a.heartbeat(ctx, first); !errors.Is(err, kafka.RebalanceInProgress) && !errors.Is(err, kafka.UnknownMemberId) && err == nil {
		t.Logf("a heartbeat of the old generation: %v", err)
	}
}
