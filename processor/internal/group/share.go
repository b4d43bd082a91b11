package group

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
)

// A Leadspace program's rate is one budget for every instance that shares
// its token. Split evenly, an instance that has drained its partitions
// leaves its part unused while another still works through a backlog: two
// instances drained a backlog more slowly than one. So the group's leader
// splits it by the work each member has left, which every member reports
// when it joins (read from its fetch positions, not from committed
// offsets, which lag by all that is in flight): proportionally, so that
// all finish together, with a floor for members with little to do.
//
// A split is only as good as the reports it was made from. A member whose
// unread work runs out while it holds more than the floor (its part of the
// rate would stand idle), or whose unread work grows far past what the
// split counted (a burst on partitions that had drained), rejoins; the
// cooperative rebalance that follows, in which nothing stops, carries a
// new split.
const (
	// shareFloor is the part of an even split every working member keeps
	// at least, so that live events on a drained partition are never
	// starved.
	shareFloor = 0.25
	// shareEvenBelow: with less work than this in all (records), the rate
	// is split evenly; there is no backlog to follow.
	shareEvenBelow = 2000
	// ShareCheck is how often a member compares its work with the split;
	// shareSettle is how old a split must be before the member asks for a
	// new one, so that splits never follow each other closely.
	ShareCheck  = 250 * time.Millisecond
	ShareSettle = time.Second
	// splitWatch is how often members heartbeat while the rate is split
	// by backlog: a member that asks for a new split, or hands partitions
	// over, rejoins, and the rest of the group learns of it only at its
	// next heartbeat. At the default 1 s, each new split left up to a
	// second of the rate idle (measured with a second instance joining
	// a backlog).
	splitWatch = 250 * time.Millisecond
)

// WorkLeft is what remains to do on a partition, or for a member.
type WorkLeft struct {
	// Unread counts records past the fetch position and deferred ones:
	// each still needs a call.
	Unread int64
	// InFlight counts records admitted and not finished: they still need
	// the rate (a submit, or the polls of their bulk), and the member
	// finishes them even when their partition moves away.
	InFlight int64
}

// PartitionWork is what a member reports, when it joins, of a partition it
// runs.
type PartitionWork struct {
	Partition int
	WorkLeft
}

// workVersion starts a member's work report in its join metadata.
const workVersion = 1

// encodeWork is the join metadata's user data: the version, then each
// partition's number, unread and in-flight records.
func encodeWork(work []PartitionWork) []byte {
	out := appendUvarints([]byte{workVersion}, uint64(len(work)))
	for _, w := range work {
		out = appendUvarints(out, uint64(w.Partition), uint64(max(w.Unread, 0)), uint64(max(w.InFlight, 0)))
	}
	return out
}

// decodeWork reads a member's report; a member of an older version, or a
// report it cannot read, reports nothing (the leader then reads the
// committed lag of its partitions).
func decodeWork(b []byte) []PartitionWork {
	if len(b) == 0 || b[0] != workVersion {
		return nil
	}
	vs := uvarints(b[1:], len(b)) // every varint takes a byte at least
	if len(vs) == 0 || uint64(len(vs)-1) != 3*vs[0] {
		return nil
	}
	out := make([]PartitionWork, 0, vs[0])
	for v := vs[1:]; len(v) > 0; v = v[3:] {
		if v[0] > 1<<31 || v[1] > 1<<62 || v[2] > 1<<62 {
			return nil
		}
		out = append(out, PartitionWork{int(v[0]), WorkLeft{int64(v[1]), int64(v[2])}})
	}
	return out
}

// reportedUnread is the unread work of each partition some member
// reported on.
func reportedUnread(members []groupPeer) map[int]int64 {
	out := map[int]int64{}
	for _, mem := range members {
		for _, w := range mem.work {
			out[w.Partition] = w.Unread
		}
	}
	return out
}

// unreported lists the partitions of a plan that no member reported on.
func unreported(members []groupPeer, plan map[string][]int) []int {
	reported := reportedUnread(members)
	var out []int
	for _, ps := range plan {
		for _, p := range ps {
			if _, ok := reported[p]; !ok {
				out = append(out, p)
			}
		}
	}
	return out
}

// memberWork sums the work a plan leaves each member: the unread records
// of the partitions it is assigned (as reported by whoever ran them, or
// the committed lag when nobody did), and the records it has in flight,
// which it finishes whether it keeps their partition or not.
func memberWork(members []groupPeer, plan map[string][]int, lag map[int]int64) map[string]WorkLeft {
	unread := reportedUnread(members)
	out := make(map[string]WorkLeft, len(members))
	for _, mem := range members {
		var sum WorkLeft
		for _, p := range plan[mem.id] {
			if u, ok := unread[p]; ok {
				sum.Unread += u
			} else {
				sum.Unread += lag[p]
			}
		}
		for _, w := range mem.work {
			sum.InFlight += w.InFlight
		}
		out[mem.id] = sum
	}
	return out
}

// inFlightWeight: a record in flight counts as 1/inFlightWeight of an
// unread one. An unread record still costs its part of a submit and of a
// poll; one in flight may be in a bulk already submitted, which only
// waits for its polls. Counting it whole gave a member that had read its
// partitions to the end more of the rate than it could use.
const inFlightWeight = 2

// rateShares splits the rate among the members working on partitions
// (assigned some, or still finishing some that move) in proportion to the
// work each has left, so that all would finish together; a member whose
// part would fall below the floor gets the floor, and the rest is split
// among the others the same way. Members not working get the floor,
// unused while they have nothing to call Leadspace for. Shares of the
// working members sum to one. backlog is the work it split by, 0 when
// there was too little to follow and it split evenly.
func rateShares(members []groupPeer, plan map[string][]int, work map[string]WorkLeft) (shares map[string]float64, backlog int64) {
	var working []string
	var total int64
	need := make(map[string]int64, len(work))
	for _, mem := range members {
		if works(mem, plan) {
			working = append(working, mem.id)
			need[mem.id] = work[mem.id].Unread + work[mem.id].InFlight/inFlightWeight
			total += need[mem.id]
		}
	}
	n := float64(max(len(working), 1))
	floor := shareFloor / n
	out := make(map[string]float64, len(members))
	for _, mem := range members {
		out[mem.id] = floor
	}
	if total < shareEvenBelow {
		for _, id := range working {
			out[id] = 1 / n
		}
		return out, 0
	}
	// Water-filling: those under the floor take it, out of what the rest
	// share by need, until nobody is under it.
	left, pool := 1.0, working
	for {
		var sum int64
		for _, id := range pool {
			sum += need[id]
		}
		var above []string
		for _, id := range pool {
			out[id] = floor
			if s := left * float64(need[id]) / float64(max(sum, 1)); s > floor {
				out[id] = s
				above = append(above, id)
			}
		}
		if len(above) == len(pool) {
			return out, total
		}
		left -= floor * float64(len(pool)-len(above))
		pool = above
	}
}

// SplitOutdated says whether a member should ask for a new split of the
// rate, with unread records left where the split counted counted: its
// unread work ran out while a split by backlog gave it more than the
// floor, or its unread work grew far past what was counted.
func SplitOutdated(a Assignment, counted, unread int64) bool {
	if a.Fleet < 2 {
		return false
	}
	ranOut := a.Backlog >= shareEvenBelow && counted > 0 && unread == 0 && a.Share > 1.5*shareFloor/float64(a.Fleet)
	grew := unread >= counted+shareEvenBelow && unread >= 2*counted
	return ranOut || grew
}

// HeartbeatEvery is the heartbeat interval of a generation: faster while
// the rate is split by backlog among several members (splitWatch).
func HeartbeatEvery(configured time.Duration, a Assignment) time.Duration {
	if a.Cooperative && a.Members > 1 && a.Backlog > 0 {
		return min(configured, splitWatch)
	}
	return configured
}

// lags reads how far the group's commits are behind the ends of the
// partitions, in one attempt: a leader that cannot read them splits by
// what the members reported rather than wait.
func (m *Member) lags(ctx context.Context, partitions []int) (map[int]int64, error) {
	if len(partitions) == 0 {
		return nil, nil
	}
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
