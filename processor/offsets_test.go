package processor

import (
	"math/rand/v2"
	"testing"
)

func TestCommitPointStopsAtTheFirstUnfinishedOffset(t *testing.T) {
	tr := newOffsetTracker(10)
	for o := int64(10); o < 20; o++ {
		tr.admitted(o)
	}
	tr.done(12)
	tr.done(11)
	if next, moved := tr.commitPoint(); next != 10 || moved {
		t.Fatalf("commit point %d (moved %v), want 10: offset 10 is not done", next, moved)
	}
	tr.done(10)
	if next, moved := tr.commitPoint(); next != 13 || !moved {
		t.Fatalf("commit point %d, want 13", next)
	}
}

func TestGapsBetweenFetchedOffsetsCountAsDone(t *testing.T) {
	tr := newOffsetTracker(0)
	tr.admitted(5) // 0..4 were compacted away
	tr.admitted(9)
	tr.done(5)
	if next, _ := tr.commitPoint(); next != 9 {
		t.Fatalf("commit point %d, want 9 (6..8 are gaps)", next)
	}
}

func TestDeferredAndAbandonedOffsetsHoldTheCommitPoint(t *testing.T) {
	tr := newOffsetTracker(0)
	tr.admitted(0)
	tr.deferOffset(1)
	tr.admitted(2)
	tr.admitted(3)
	tr.done(0)
	tr.done(2)
	if next, _ := tr.commitPoint(); next != 1 {
		t.Fatalf("commit point %d, want 1 (deferred)", next)
	}
	if low, ok := tr.lowestDeferred(); !ok || low != 1 || !tr.isDeferred(1) || tr.isDeferred(2) {
		t.Fatalf("lowest deferred %d %v", low, ok)
	}
	tr.abandon(3)
	tr.admitted(1)
	tr.done(1)
	if next, _ := tr.commitPoint(); next != 3 {
		t.Fatalf("commit point %d, want 3 (abandoned)", next)
	}
	if in, deferred := tr.pending(); in != 0 || deferred != 1 {
		t.Fatalf("pending %d in flight, %d deferred", in, deferred)
	}
}

func TestCommitPointUnderRandomCompletionOrder(t *testing.T) {
	const n = 10000
	tr := newOffsetTracker(0)
	for o := range int64(n) {
		tr.admitted(o)
	}
	order := rand.Perm(n)
	highest := int64(-1)
	done := make([]bool, n)
	for _, o := range order {
		tr.done(int64(o))
		done[o] = true
		for highest+1 < n && done[highest+1] {
			highest++
		}
		if next, _ := tr.commitPoint(); next != highest+1 {
			t.Fatalf("commit point %d, want %d", next, highest+1)
		}
	}
}
