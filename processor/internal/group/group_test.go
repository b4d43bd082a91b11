package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/processor/internal/testkit"
)

func testKafka(t *testing.T) kafkaio.Config { return kafkaio.Config{Brokers: testkit.Brokers(t)} }

// A member learns of a rebalance from its heartbeats, rejoins, and the
// partitions are shared, cooperatively: those that move pause only while
// their owner finishes them. (kafka-go's Heartbeat answer hides the error
// code, so heartbeats are what makes rebalances happen at all.)
func TestAMemberSeesARebalanceAndRejoins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	member := groupOnANewTopic(t, ctx, "group-test-", 4)
	a := member()
	first, err := a.Join(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Partitions) != 4 || first.Members != 1 {
		t.Fatalf("alone, the member got %+v", first)
	}
	b := member()
	joined := joinInBackground(t, ctx, b, nil)
	hearsOfARebalance(t, ctx, a, first, "the first member, of the second one joining")
	// Cooperative: the first member keeps two of its partitions and gives
	// up two, which go to nobody while it still works on them.
	second, err := a.Join(ctx, first.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	other := <-joined
	if second.Generation != other.Generation || !second.Cooperative || len(second.Partitions) != 2 || len(other.Partitions) != 0 ||
		second.Members != 2 || second.Fleet != 1 || other.Fleet != 1 {
		t.Fatalf("after the rebalance: %+v and %+v", second, other)
	}
	// Once it has finished them, it rejoins with the two it kept; the
	// other member hears of that rebalance and gets the two given up.
	rejoined := joinInBackground(t, ctx, a, second.Partitions)
	hearsOfARebalance(t, ctx, b, other, "the second member, of the first one rejoining")
	fourth, err := b.Join(ctx, other.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	third := <-rejoined
	if !slices.Equal(third.Partitions, second.Partitions) || len(fourth.Partitions) != 2 || third.Fleet != 2 ||
		slices.ContainsFunc(fourth.Partitions, func(p int) bool { return slices.Contains(third.Partitions, p) }) {
		t.Fatalf("after the member gave its partitions up: %+v and %+v", third, fourth)
	}
	second = third
	if err := a.Heartbeat(ctx, second); err != nil {
		t.Fatalf("a heartbeat in the new generation: %v", err)
	}
	if err := a.Heartbeat(ctx, first); !errors.Is(err, kafka.RebalanceInProgress) && !errors.Is(err, kafka.UnknownMemberId) && err == nil {
		t.Logf("a heartbeat of the old generation: %v", err)
	}
}

// groupOnANewTopic creates a profiles topic of its own (and the others)
// and returns a way to make members of a group named after it.
func groupOnANewTopic(t *testing.T, ctx context.Context, prefix string, partitions int) func() *Member {
	k := testKafka(t)
	topic := prefix + time.Now().Format("150405.000000")
	if err := kafkaio.CreateTopics(ctx, k, kafkaio.Topics{Profiles: topic, Control: topic + "-c", Enriched: topic + "-e", DeadLetters: topic + "-d",
		Status: topic + "-s", Journal: topic + "-j"}, kafkaio.TopicLayout{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: topic}
	cfg.setDefaults()
	return func() *Member {
		conn, err := k.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Close)
		return NewMember(conn, cfg, topic, zap.NewNop())
	}
}

// joinInBackground joins (a join waits for the whole group) and hands the
// assignment over when it comes.
func joinInBackground(t *testing.T, ctx context.Context, m *Member, owned []int) <-chan Assignment {
	ch := make(chan Assignment, 1)
	go func() {
		as, err := m.Join(ctx, owned)
		if err != nil {
			t.Error(err)
		}
		ch <- as
	}()
	return ch
}

// hearsOfARebalance heartbeats until the member learns that the group
// rebalances, for at most 20 s.
func hearsOfARebalance(t *testing.T, ctx context.Context, m *Member, a Assignment, who string) {
	t.Helper()
	retrytest.Until(t, 20*time.Second, func() (bool, string) {
		err := m.Heartbeat(ctx, a)
		return errors.Is(err, kafka.RebalanceInProgress), fmt.Sprintf("%s never heard of the rebalance; last heartbeat: %v", who, err)
	})
}

// A member whose JoinGroup answered alone, but whose SyncGroup comes after
// another member joined, is refused (the group rebalances again). kafka-go
// hides that refusal behind an assignment it cannot decode; the member
// must still see a rebalance and join again at once, not back off as if
// the coordinator were down: a second instance starting beside the first
// cost 0.3 s of the backlog benchmark that way.
func TestASyncRefusedForANewRebalanceJoinsAgainAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	member := groupOnANewTopic(t, ctx, "group-sync-", 2)
	a, b := member(), member()
	var res *kafka.JoinGroupResponse
	var first Assignment
	for { // the first JoinGroup may ask for a member id, or find no coordinator yet
		var err error
		if res, first, err = a.joinRequest(ctx, nil); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
	}
	joined := joinInBackground(t, ctx, b, nil)
	waitForGroupState(t, ctx, a, "PreparingRebalance")
	_, err := a.sync(ctx, res, first)
	if !errors.Is(err, kafka.RebalanceInProgress) {
		t.Fatalf("the sync of a generation that is rebalancing again: %v", err)
	}
	again, err := a.Join(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := <-joined
	if again.Generation != other.Generation || again.Generation <= first.Generation || len(again.Partitions)+len(other.Partitions) != 2 {
		t.Fatalf("after joining again: %+v and %+v", again, other)
	}
}

// waitForGroupState asks the coordinator until the group is in state, for
// at most 20 s.
func waitForGroupState(t *testing.T, ctx context.Context, m *Member, state string) {
	t.Helper()
	retrytest.Until(t, 20*time.Second, func() (bool, string) {
		res, err := m.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{m.cfg.ID}})
		ok := err == nil && len(res.Groups) == 1 && res.Groups[0].GroupState == state
		return ok, fmt.Sprintf("the group never reached state %s (last: %+v, %v)", state, res, err)
	})
}
