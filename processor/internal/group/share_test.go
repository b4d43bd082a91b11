package group

import (
	"math"
	"slices"
	"testing"
	"time"
)

func near(got, want float64) bool { return math.Abs(got-want) < 1e-9 }

// The rate follows the work left, so that members finish together: a
// member with twice the work of another gets twice its part (a record in
// flight counts half: it may only wait for its results). One with
// little work keeps a floor (a quarter of an even split), and the working
// members' shares sum to one. Without a backlog it is split evenly.
func TestTheRateIsSplitByTheWorkLeft(t *testing.T) {
	members := []groupPeer{{id: "a"}, {id: "b"}, {id: "idle"}}
	plan := map[string][]int{"a": {0, 1}, "b": {2, 3}}
	shares, backlog := rateShares(members, plan, map[string]WorkLeft{"a": {Unread: 30000, InFlight: 20000}, "b": {Unread: 20000}})
	if !near(shares["a"], 2.0/3) || !near(shares["b"], 1.0/3) || backlog != 60000 {
		t.Fatalf("by the work left: %v (backlog %d)", shares, backlog)
	}
	if !near(shares["idle"], 0.125) {
		t.Fatalf("a member with no partition gets the floor (and makes no call): %v", shares)
	}
	drained, _ := rateShares(members, plan, map[string]WorkLeft{"a": {Unread: 40000}})
	if !near(drained["b"], 0.125) || !near(drained["a"], 0.875) {
		t.Fatalf("b has drained its partitions: %v", drained)
	}
	little, _ := rateShares(members, plan, map[string]WorkLeft{"a": {Unread: 40000}, "b": {InFlight: 1000}})
	if !near(little["b"], 0.125) || !near(little["a"], 0.875) {
		t.Fatalf("b's part by its work would be under the floor: %v", little)
	}
	three := []groupPeer{{id: "a"}, {id: "b"}, {id: "c"}}
	plan3 := map[string][]int{"a": {0}, "b": {1}, "c": {2}}
	filled, _ := rateShares(three, plan3, map[string]WorkLeft{"a": {Unread: 60000}, "b": {Unread: 30000}, "c": {Unread: 500}})
	if !near(filled["c"], 0.25/3) || !near(filled["a"], 2*filled["b"]) || !near(filled["a"]+filled["b"]+filled["c"], 1) {
		t.Fatalf("the floor comes out of what the others share by their work: %v", filled)
	}
	even, backlog := rateShares(members, plan, map[string]WorkLeft{"a": {Unread: 100}, "b": {InFlight: 900}})
	if !near(even["a"], 0.5) || !near(even["b"], 0.5) || backlog != 0 {
		t.Fatalf("no backlog to speak of: %v (backlog %d)", even, backlog)
	}
	// A member still finishing partitions that move works too.
	handover, _ := rateShares([]groupPeer{{id: "old", owned: []int{0, 1}}, {id: "new"}}, map[string][]int{"old": {0}}, nil)
	if !near(handover["old"], 1) {
		t.Fatalf("the member that works gets all of the rate: %v", handover)
	}
}

// A member's work is the unread records of the partitions it is assigned,
// as their last owner reported them, or their committed lag when nobody
// did, and what it has in flight, also on a partition it gives up.
func TestAMembersWorkIsWhatItReadsAndWhatItFinishes(t *testing.T) {
	members := []groupPeer{
		{id: "old", owned: []int{0, 1}, work: []PartitionWork{{0, WorkLeft{5000, 3000}}, {1, WorkLeft{7000, 2000}}}},
		{id: "new"},
	}
	// Cooperative: partition 1 moves, so this generation assigns it to
	// nobody while old finishes what it has in flight; 2 was nobody's.
	plan := map[string][]int{"old": {0}, "new": {2}}
	work := memberWork(members, plan, map[int]int64{2: 9000})
	if work["old"] != (WorkLeft{Unread: 5000, InFlight: 3000 + 2000}) || work["new"] != (WorkLeft{Unread: 9000}) {
		t.Fatalf("work: %+v", work)
	}
	if got := unreported(members, plan); !slices.Equal(got, []int{2}) {
		t.Fatalf("only partition 2 needs its committed lag read: %v", got)
	}
}

// What a member reports survives the join metadata; a report from another
// version, or a damaged one, counts as none (the leader reads committed
// lags instead).
func TestAWorkReportTravelsInTheJoinMetadata(t *testing.T) {
	work := []PartitionWork{{3, WorkLeft{Unread: 120000, InFlight: 4500}}, {Partition: 11}}
	if got := decodeWork(encodeWork(work)); !slices.Equal(got, work) {
		t.Fatalf("round trip: %v", got)
	}
	if got := decodeWork(encodeWork(nil)); len(got) != 0 {
		t.Fatalf("no partitions: %v", got)
	}
	full := encodeWork(work)
	for _, bad := range [][]byte{nil, {}, {9, 1, 0, 0, 0}, full[:len(full)-1], {workVersion, 200}} {
		if got := decodeWork(bad); got != nil {
			t.Fatalf("%v decoded as %v", bad, got)
		}
	}
}

// A member asks for a new split when its unread work ran out while the
// split gave it more than the floor (its part would stand idle), or when
// its unread work grew far past what the split counted; not otherwise, and never
// alone or after an even split in which it simply keeps up.
func TestAMemberAsksForANewSplitWhenItsWorkMoved(t *testing.T) {
	split := Assignment{Fleet: 2, Share: 0.6, Backlog: 50000}
	cases := []struct {
		name            string
		a               Assignment
		counted, unread int64
		want            bool
	}{
		{"read to the end with more than the floor", split, 30000, 0, true},
		{"still reading", split, 30000, 12000, false},
		{"read to the end with the floor", Assignment{Fleet: 2, Share: 0.125, Backlog: 50000}, 400, 0, false},
		{"had nothing unread when the rate was split", split, 0, 0, false},
		{"keeps up after an even split", Assignment{Fleet: 2, Share: 0.5}, 300, 0, false},
		{"alone", Assignment{Fleet: 1, Share: 1, Backlog: 50000}, 30000, 0, false},
		{"a burst on drained partitions", Assignment{Fleet: 2, Share: 0.5}, 100, 5000, true},
		{"more than reported, but not far past", split, 30000, 33000, false},
	}
	for _, c := range cases {
		if got := SplitOutdated(c.a, c.counted, c.unread); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// While the rate is split by backlog among several members, a member
// heartbeats often enough to hear quickly that another asked for a new
// split; otherwise at the configured interval.
func TestMembersListenForNewSplitsWhileTheRateFollowsABacklog(t *testing.T) {
	byBacklog := Assignment{Cooperative: true, Members: 2, Backlog: 50000}
	if got := HeartbeatEvery(time.Second, byBacklog); got != splitWatch {
		t.Fatalf("split by backlog: %s", got)
	}
	if got := HeartbeatEvery(100*time.Millisecond, byBacklog); got != 100*time.Millisecond {
		t.Fatalf("a shorter configured interval stays: %s", got)
	}
	for _, a := range []Assignment{{Cooperative: true, Members: 2}, {Cooperative: true, Members: 1, Backlog: 50000}, {Members: 2, Backlog: 50000}} {
		if got := HeartbeatEvery(time.Second, a); got != time.Second {
			t.Fatalf("%+v: %s", a, got)
		}
	}
}
