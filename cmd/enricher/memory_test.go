package main

import "testing"

func TestTheMemoryLimitFollowsALiveHeapThatOutgrowsIt(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int64
	}{
		{0, 224 * mib},
		{171 * mib, 224 * mib},   // 1,000,000 profiles: under the limit
		{179 * mib, 224 * mib},   // 1.25 x live = 223.75 MiB
		{180 * mib, 240 * mib},   // 225 MiB, rounded up to 16 MiB steps
		{1000 * mib, 1264 * mib}, // 1250 MiB -> 1264
	} {
		if got := limitFor(224*mib, c.live); got != c.want {
			t.Errorf("live %d MiB: limit %d MiB, want %d MiB", c.live/mib, got/mib, c.want/mib)
		}
	}
}
