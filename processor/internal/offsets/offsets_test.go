package offsets

import (
	"math/rand/v2"
	"testing"
)

func TestCommitPointStopsAtTheFirstUnfinishedOffset(t *testing.T) {
	tr := NewTracker(10)
	for o := int64(10); o < 20; o++ {
		tr.Admitted(o)
	}
	tr.Done(12)
	tr.Done(11)
	if next, moved := tr.CommitPoint(); next != 10 || moved {
		t.Fatalf("commit point %d (moved %v), want 10: offset 10 is not done", next, moved)
	}
	tr.Done(10)
	if next, moved := tr.CommitPoint(); next != 13 || !moved {
		t.Fatalf("commit point %d, want 13", next)
	}
}

func TestGapsBetweenFetchedOffsetsCountAsDone(t *testing.T) {
	tr := NewTracker(0)
	tr.Admitted(5) // 0..4 were compacted away
	tr.Admitted(9)
	tr.Done(5)
	if next, _ := tr.CommitPoint(); next != 9 {
		t.Fatalf("commit point %d, want 9 (6..8 are gaps)", next)
	}
}

func TestDeferredAndAbandonedOffsetsHoldTheCommitPoint(t *testing.T) {
	tr := NewTracker(0)
	tr.Admitted(0)
	tr.DeferOffset(1)
	tr.Admitted(2)
	tr.Admitted(3)
	tr.Done(0)
	tr.Done(2)
	if next, _ := tr.CommitPoint(); next != 1 {
		t.Fatalf("commit point %d, want 1 (deferred)", next)
	}
	if low, ok := tr.LowestDeferred(); !ok || low != 1 || !tr.IsDeferred(1) || tr.IsDeferred(2) {
		t.Fatalf("lowest deferred %d %v", low, ok)
	}
	tr.Abandon(3)
	tr.Admitted(1)
	tr.Done(1)
	if next, _ := tr.CommitPoint(); next != 3 {
		t.Fatalf("commit point %d, want 3 (abandoned)", next)
	}
	if in, deferred := tr.Pending(); in != 0 || deferred != 1 {
		t.Fatalf("pending %d in flight, %d deferred", in, deferred)
	}
}

func TestCommitPointUnderRandomCompletionOrder(t *testing.T) {
	const n = 10000
	tr := NewTracker(0)
	for o := range int64(n) {
		tr.Admitted(o)
	}
	order := rand.Perm(n)
	highest := int64(-1)
	done := make([]bool, n)
	for _, o := range order {
		tr.Done(int64(o))
		done[o] = true
		for highest+1 < n && done[highest+1] {
			highest++
		}
		if next, _ := tr.CommitPoint(); next != highest+1 {
			t.Fatalf("commit point %d, want %d", next, highest+1)
		}
	}
}
