package group

import (
	"fmt"
	"slices"
	"testing"
)

func peers(owned ...[]int) []groupPeer {
	out := make([]groupPeer, len(owned))
	for i, o := range owned {
		out[i] = groupPeer{id: fmt.Sprintf("m%d", i), owned: o}
	}
	return out
}

func checkBalanced(t *testing.T, plan map[string][]int, members, partitions int) {
	t.Helper()
	seen := map[int]bool{}
	for id, ps := range plan {
		if n := len(ps); n < partitions/members || n > (partitions+members-1)/members {
			t.Fatalf("%s has %d partitions: %v", id, n, plan)
		}
		for _, p := range ps {
			if seen[p] {
				t.Fatalf("partition %d assigned twice: %v", p, plan)
			}
			seen[p] = true
		}
	}
	if len(seen) != partitions {
		t.Fatalf("%d of %d partitions assigned: %v", len(seen), partitions, plan)
	}
}

func TestStickyAssignmentKeepsPartitionsWhereTheyAre(t *testing.T) {
	all := []int{0, 1, 2, 3, 4, 5}
	// One member had everything; a second joins: it takes half, the first
	// keeps the other half of what it had.
	plan := assignSticky(peers(all, nil), all)
	checkBalanced(t, plan, 2, 6)
	if len(plan["m0"]) != 3 {
		t.Fatalf("the old member lost more than it had to: %v", plan)
	}
	// A third joins: the first two keep what they had, up to their quota.
	plan3 := assignSticky(peers(plan["m0"], plan["m1"], nil), all)
	checkBalanced(t, plan3, 3, 6)
	for _, m := range []string{"m0", "m1"} {
		for _, p := range plan3[m] {
			if !slices.Contains(plan[m], p) {
				t.Fatalf("%s got %d, which it did not own, instead of keeping its own: %v -> %v", m, p, plan, plan3)
			}
		}
	}
	// Back to one: it gets everything.
	checkBalanced(t, assignSticky(peers(plan3["m1"]), all), 1, 6)
	// More members than partitions: every partition once, at most one each.
	checkBalanced(t, assignSticky(peers(nil, nil, nil, nil, nil, nil, nil, nil), all), 8, 6)
	// Stale claims (a partition that no longer exists, or claimed twice) are ignored.
	checkBalanced(t, assignSticky(peers([]int{0, 1, 9}, []int{0, 1}), []int{0, 1, 2}), 2, 3)
}

func TestStaticMembersKeepTheirOrder(t *testing.T) {
	a := groupPeer{id: "zzz", instance: "enricher-0"}
	b := groupPeer{id: "aaa", instance: "enricher-1"}
	plan := assignSticky([]groupPeer{b, a}, []int{0, 1, 2, 3})
	if !slices.Equal(plan["zzz"], []int{0, 1}) || !slices.Equal(plan["aaa"], []int{2, 3}) {
		t.Fatalf("static members are ordered by instance id, not member id: %v", plan)
	}
}

func TestRangeAssignmentMatchesKafkaGo(t *testing.T) {
	plan := assignRange(peers(nil, nil, nil), []int{0, 1, 2, 3, 4, 5, 6})
	want := map[string][]int{"m0": {0, 1, 2}, "m1": {3, 4}, "m2": {5, 6}}
	for id, ps := range want {
		if !slices.Equal(plan[id], ps) {
			t.Fatalf("range: %v, want %v", plan, want)
		}
	}
}

// A partition planned for one member while another still works on it goes
// to nobody until its owner let it go; members that work share the rate.
func TestAPartitionStillOwnedElsewhereWaitsForItsOwner(t *testing.T) {
	members := []groupPeer{{id: "old", owned: []int{0, 1, 2, 3}}, {id: "new"}}
	plan := assignSticky(members, []int{0, 1, 2, 3})
	if len(plan["old"]) != 2 || len(plan["new"]) != 2 {
		t.Fatalf("sticky plan %v", plan)
	}
	held := withholdOwned(members, plan)
	if !slices.Equal(held["old"], plan["old"]) || len(held["new"]) != 0 {
		t.Fatalf("withheld plan %v from %v", held, plan)
	}
	if n := fleetOf(members, held); n != 1 {
		t.Fatalf("fleet %d while only the old member works", n)
	}
	// The old member finished the two it gave up and rejoins with the rest.
	members[0].owned = held["old"]
	plan = withholdOwned(members, assignSticky(members, []int{0, 1, 2, 3}))
	if !slices.Equal(plan["old"], held["old"]) || len(plan["new"]) != 2 || fleetOf(members, plan) != 2 {
		t.Fatalf("after the handover %v", plan)
	}
}
