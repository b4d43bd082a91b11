package processor

import (
	"context"
	"math"
	"time"

	"github.com/segmentio/kafka-go"
)

// A Leadspace program's rate is one budget for every instance that shares
// its token. Split evenly, an instance that has drained its partitions
// leaves its part unused while another still works through a backlog: two
// instances drained a backlog more slowly than one. So the group's leader
// splits it by backlog: every working member keeps a floor (a quarter of
// an even split) and gets the rest in proportion to the lag of the
// partitions it is assigned. When the lags drift away from the split, the
// leader rejoins, and the cooperative rebalance that follows (in which
// nothing stops) carries the new split.
const (
	// shareFloor is the part of an even split every working member keeps,
	// so that live events on a drained partition are never starved.
	shareFloor = 0.25
	// shareEvenBelow: with less lag than this in all (records), the rate
	// is split evenly; there is no backlog to follow.
	shareEvenBelow = 2000
	// shareDrift: a member whose share is off by this much asks for a new
	// split. shareCheck is how often the leader looks, once a split is
	// shareSettle old: a member that drained its backlog should not leave
	// its part idle for long, nor should splits follow each other closely.
	shareDrift  = 0.1
	shareCheck  = time.Second
	shareSettle = 3 * time.Second
)

// rateShares splits the rate among the members working on partitions
// (assigned some, or still finishing some that move), by the lag of what
// each is assigned. Members not working get the floor, unused while they
// have nothing to call Leadspace for. Shares of the working members sum to
// one.
func rateShares(members []groupPeer, plan map[string][]int, lag map[int]int64) map[string]float64 {
	var working []string
	for _, mem := range members {
		if works(mem, plan) {
			working = append(working, mem.id)
		}
	}
	out := make(map[string]float64, len(members))
	n := float64(max(len(working), 1))
	for _, mem := range members {
		out[mem.id] = shareFloor / n
	}
	var total int64
	own := make(map[string]int64, len(working))
	for _, id := range working {
		for _, p := range plan[id] {
			own[id] += lag[p]
			total += lag[p]
		}
	}
	for _, id := range working {
		if total < shareEvenBelow {
			out[id] = 1 / n
			continue
		}
		out[id] = shareFloor/n + (1-shareFloor)*float64(own[id])/float64(total)
	}
	return out
}

// drifted says whether some member's share is off by shareDrift or more.
func drifted(now, want map[string]float64) bool {
	for id, s := range want {
		if math.Abs(now[id]-s) >= shareDrift {
			return true
		}
	}
	return false
}

// lags reads how far the group's commits are behind the ends of the
// partitions, in one attempt: a leader that cannot read them splits
// evenly rather than wait.
func (m *groupMember) lags(ctx context.Context, partitions []int) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reqs := make([]kafka.OffsetRequest, len(partitions))
	for i, p := range partitions {
		reqs[i] = kafka.LastOffsetOf(p)
	}
	ends, err := m.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{m.topic: reqs}})
	if err != nil {
		return nil, err
	}
	res, err := m.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: m.cfg.ID, Topics: map[string][]int{m.topic: partitions}})
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, res.Error
	}
	committed := map[int]int64{}
	for _, p := range res.Topics[m.topic] {
		committed[p.Partition] = max(p.CommittedOffset, 0)
	}
	out := make(map[int]int64, len(partitions))
	for _, po := range ends.Topics[m.topic] {
		if po.Error != nil {
			return nil, po.Error
		}
		out[po.Partition] = max(po.LastOffset-committed[po.Partition], 0)
	}
	return out, nil
}
