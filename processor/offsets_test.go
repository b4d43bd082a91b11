package processor

import (
	"testing"

	"github.com/enrichment/leadspace-enricher/schemas"
)

func ok(tenant string) finished { return finished{tenant: tenant, outcome: outEnriched, records: 1} }

func TestCommitPointAdvancesOnlyOverContiguousDoneOffsets(t *testing.T) {
	tr := newOffsetTracker(0, 10, nil)
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
		tr.done(s.done, ok("t"))
		if got, _ := tr.commitPoint(); got != s.want {
			t.Fatalf("after done(%d): commit point %d, want %d", s.done, got, s.want)
		}
	}
	if tr.inFlight() != 0 {
		t.Fatalf("in flight = %d, want 0", tr.inFlight())
	}
}

func TestCommitPointSkipsGapsBeforeFirstFetch(t *testing.T) {
	tr := newOffsetTracker(0, 0, nil)
	tr.fetched(7) // offsets 0..6 were compacted away
	tr.fetched(9)
	if got, _ := tr.commitPoint(); got != 7 {
		t.Fatalf("commit point %d, want 7", got)
	}
	tr.done(9, ok("t"))
	if got, _ := tr.commitPoint(); got != 7 {
		t.Fatalf("commit point %d, want 7 while 7 is open", got)
	}
	tr.done(7, ok("t"))
	if got, moved := tr.commitPoint(); got != 10 || !moved {
		t.Fatalf("commit point %d moved=%v, want 10 true", got, moved)
	}
	tr.committedTo(10)
	if _, moved := tr.commitPoint(); moved {
		t.Fatal("commit point should not move again after being committed")
	}
}

func TestDoneOfUnknownOffsetIsIgnored(t *testing.T) {
	tr := newOffsetTracker(0, 5, nil)
	tr.fetched(5)
	tr.done(99, ok("t"))
	if got, _ := tr.commitPoint(); got != 5 {
		t.Fatalf("commit point %d, want 5", got)
	}
}

func TestCountsFollowTheCommitPointNotCompletions(t *testing.T) {
	tr := newOffsetTracker(3, 0, nil)
	for o := int64(0); o < 3; o++ {
		tr.fetched(o)
	}
	tr.done(1, ok("acme"))
	tr.done(2, finished{tenant: "acme", outcome: outSkipped})
	if got := tr.statusAt(0); len(got) != 0 {
		t.Fatalf("counts moved while offset 0 is open: %+v", got)
	}
	tr.done(0, finished{tenant: "acme", outcome: outDead})
	got := tr.statusAt(3)
	if len(got) != 1 {
		t.Fatalf("status records = %+v, want one for acme", got)
	}
	s := got[0]
	if s.Partition != 3 || s.Profiles != 3 || s.Enriched != 1 || s.Skipped != 1 || s.Failed != 1 || s.CreditsSpent != 1 || s.CommittedOffset != 3 {
		t.Fatalf("status %+v", s)
	}
	if again := tr.statusAt(3); len(again) != 0 {
		t.Fatalf("unchanged counts written twice: %+v", again)
	}
}

func TestRedeliveryAfterACrashIsNotCountedTwice(t *testing.T) {
	// The status record said: counts cover offsets below 5. The group commit
	// is behind (2): offsets 2..4 come again and must not be counted again.
	prior := map[string]schemas.Status{"acme": {TenantID: "acme", Partition: 0, Profiles: 5, Enriched: 5, CommittedOffset: 5}}
	tr := newOffsetTracker(0, 2, prior)
	for o := int64(2); o < 8; o++ {
		tr.fetched(o)
		tr.done(o, ok("acme"))
	}
	got := tr.statusAt(8)
	if len(got) != 1 || got[0].Profiles != 8 || got[0].Enriched != 8 {
		t.Fatalf("status %+v, want 8 profiles (5 before + offsets 5..7)", got)
	}
}
