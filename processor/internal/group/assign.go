package group

import (
	"cmp"
	"slices"
)

// groupPeer is one member as the leader sees it when it assigns.
type groupPeer struct {
	id       string
	instance string          // static instance id, "" for dynamic members
	owned    []int           // partitions it held in the previous generation
	work     []PartitionWork // what it reported of them when it joined (share.go)
}

// order sorts members by instance id, then member id: a static member that
// restarts keeps its place in the order.
func (g groupPeer) order() string {
	if g.instance != "" {
		return "0" + g.instance
	}
	return "1" + g.id
}

// assignSticky balances partitions over members (each gets ⌊n/m⌋ or ⌈n/m⌉)
// while moving as few as possible: every member first keeps what it owned,
// up to its quota, and only the rest is dealt out. A moved partition costs
// a table restore and the in-flight work of a revoke, so stickiness is
// worth more here than a pretty layout.
func assignSticky(members []groupPeer, partitions []int) map[string][]int {
	out := make(map[string][]int, len(members))
	if len(members) == 0 {
		return out
	}
	sorted := slices.Clone(members)
	// Members holding more go first, so they keep the extra partition when
	// the count does not divide evenly.
	slices.SortFunc(sorted, func(a, b groupPeer) int {
		if c := cmp.Compare(len(b.owned), len(a.owned)); c != 0 {
			return c
		}
		return cmp.Compare(a.order(), b.order())
	})
	valid := make(map[int]bool, len(partitions))
	for _, p := range partitions {
		valid[p] = true
	}
	n, m := len(partitions), len(sorted)
	floor, extra := n/m, n%m
	quota := func() int {
		if extra > 0 {
			return floor + 1
		}
		return floor
	}
	taken := map[int]bool{}
	for _, mem := range sorted {
		q := quota()
		for _, p := range mem.owned {
			if len(out[mem.id]) < q && valid[p] && !taken[p] {
				taken[p] = true
				out[mem.id] = append(out[mem.id], p)
			}
		}
		if len(out[mem.id]) > floor {
			extra--
		}
	}
	var free []int
	for _, p := range partitions {
		if !taken[p] {
			free = append(free, p)
		}
	}
	slices.Sort(free)
	for _, mem := range sorted {
		for len(free) > 0 && len(out[mem.id]) < floor {
			out[mem.id], free = append(out[mem.id], free[0]), free[1:]
		}
	}
	for _, mem := range sorted {
		if len(free) == 0 || extra == 0 {
			break
		}
		if len(out[mem.id]) == floor {
			out[mem.id], free = append(out[mem.id], free[0]), free[1:]
			extra--
		}
	}
	for id := range out {
		slices.Sort(out[id])
	}
	return out
}

// withholdOwned makes a sticky plan safe for members that keep working
// through a rebalance: a partition planned for one member while another
// still owns it goes to nobody in this generation. Its owner sees it
// missing from its assignment, finishes and commits its work on it, and
// rejoins; the next generation then gives it to its planned member. So
// two members never work on one partition, and only moving partitions
// pause.
func withholdOwned(members []groupPeer, plan map[string][]int) map[string][]int {
	owner := map[int]string{}
	for _, mem := range members {
		for _, p := range mem.owned {
			owner[p] = mem.id
		}
	}
	out := make(map[string][]int, len(plan))
	for id, ps := range plan {
		out[id] = []int{}
		for _, p := range ps {
			if o, ok := owner[p]; !ok || o == id {
				out[id] = append(out[id], p)
			}
		}
	}
	return out
}

// fleetOf counts the members that work on partitions in a plan: those
// assigned some, and those still finishing partitions that move. They
// share each Leadspace program's rate.
func fleetOf(members []groupPeer, plan map[string][]int) int {
	n := 0
	for _, mem := range members {
		if works(mem, plan) {
			n++
		}
	}
	return max(n, 1)
}

// works says whether a member works on partitions under a plan: it is
// assigned some, or still finishes some that move.
func works(mem groupPeer, plan map[string][]int) bool {
	return len(plan[mem.id]) > 0 || len(mem.owned) > 0
}

// assignRange is kafka-go's "range" assignment (contiguous ranges by member
// order), for groups where an older enricher still runs.
func assignRange(members []groupPeer, partitions []int) map[string][]int {
	out := make(map[string][]int, len(members))
	if len(members) == 0 {
		return out
	}
	sorted := slices.Clone(members)
	slices.SortFunc(sorted, func(a, b groupPeer) int { return cmp.Compare(a.id, b.id) })
	ps := slices.Clone(partitions)
	slices.Sort(ps)
	n, m := len(ps), len(sorted)
	start := 0
	for i, mem := range sorted {
		size := n / m
		if i < n%m {
			size++
		}
		out[mem.id] = ps[start : start+size]
		start += size
	}
	return out
}
