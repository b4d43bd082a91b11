package processor

import (
	"math"
	"testing"
)

// The rate follows the backlog: a member assigned twice the lag of another
// gets more of the rate, each keeps a floor, and the working members'
// shares sum to one. Without a backlog it is split evenly.
func TestTheRateIsSplitByBacklog(t *testing.T) {
	members := []groupPeer{{id: "a"}, {id: "b"}, {id: "idle"}}
	plan := map[string][]int{"a": {0, 1}, "b": {2, 3}}
	shares := rateShares(members, plan, map[int]int64{0: 20000, 1: 20000, 2: 10000, 3: 10000})
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	// a: 0.25/2 + 0.75 × 40/60 = 0.625; b: 0.125 + 0.75 × 20/60 = 0.375
	if !near(shares["a"], 0.625) || !near(shares["b"], 0.375) || !near(shares["a"]+shares["b"], 1) {
		t.Fatalf("by backlog: %v", shares)
	}
	if !near(shares["idle"], 0.125) {
		t.Fatalf("a member with no partition gets the floor (and makes no call): %v", shares)
	}
	drained := rateShares(members, plan, map[int]int64{0: 20000, 1: 20000})
	if !near(drained["b"], 0.125) || !near(drained["a"], 0.875) {
		t.Fatalf("b drained its partitions: %v", drained)
	}
	even := rateShares(members, plan, map[int]int64{0: 100, 2: 900})
	if !near(even["a"], 0.5) || !near(even["b"], 0.5) {
		t.Fatalf("no backlog to speak of: %v", even)
	}
	if !drifted(shares, drained) || drifted(shares, shares) || drifted(even, rateShares(members, plan, nil)) {
		t.Fatal("drift is a share moving by 0.1 or more")
	}
	// A member still finishing partitions that move works too.
	handover := rateShares([]groupPeer{{id: "old", owned: []int{0, 1}}, {id: "new"}}, map[string][]int{"old": {0}}, nil)
	if !near(handover["old"], 1) {
		t.Fatalf("the member that works gets all of the rate: %v", handover)
	}
}
