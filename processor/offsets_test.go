package processor

import "testing"

func TestCommitPointAdvancesOnlyOverContiguousDoneOffsets(t *testing.T) {
	tr := newOffsetTracker(10)
	for o := int64(10); o < 15; o++ {
		tr.fetched(o)
	}
	steps := []struct {
		done int64
		want int64
	}{
		{12, 10}, // 10 and 11 still open: nothing may be committed
		{14, 10},
		{10, 11}, // 10 done: commit up to 11 (the next to consume)
		{11, 13}, // 11 done closes the gap to 12
		{13, 15}, // everything done
	}
	for _, s := range steps {
		tr.done(s.done)
		if got, _ := tr.commitPoint(); got != s.want {
			t.Fatalf("after done(%d): commit point %d, want %d", s.done, got, s.want)
		}
	}
	if tr.inFlight() != 0 {
		t.Fatalf("in flight = %d, want 0", tr.inFlight())
	}
}

func TestCommitPointSkipsGapsBeforeFirstFetch(t *testing.T) {
	tr := newOffsetTracker(0)
	tr.fetched(7) // offsets 0..6 were compacted away
	tr.fetched(9)
	if got, _ := tr.commitPoint(); got != 7 {
		t.Fatalf("commit point %d, want 7", got)
	}
	tr.done(9)
	if got, _ := tr.commitPoint(); got != 7 {
		t.Fatalf("commit point %d, want 7 while 7 is open", got)
	}
	tr.done(7)
	if got, moved := tr.commitPoint(); got != 10 || !moved {
		t.Fatalf("commit point %d moved=%v, want 10 true", got, moved)
	}
	tr.committedTo(10)
	if _, moved := tr.commitPoint(); moved {
		t.Fatal("commit point should not move again after being committed")
	}
}

func TestDoneOfUnknownOffsetIsIgnored(t *testing.T) {
	tr := newOffsetTracker(5)
	tr.fetched(5)
	tr.done(99)
	if got, _ := tr.commitPoint(); got != 5 {
		t.Fatalf("commit point %d, want 5", got)
	}
}
