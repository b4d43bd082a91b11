package window

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// The stall clock runs in a synctest bubble: its waits cost no wall time
// and the test cannot be late on a loaded machine.
func TestWindowHoldsAProgramToItsShareAndDefersItOnceStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := New(1000, 1<<30, 200*time.Millisecond, func(string) int { return 2 })
		ctx := context.Background()
		for range 2 {
			if v, err := w.Admit(ctx, "slow", 10); err != nil || v != Admitted {
				t.Fatalf("admit: %v %v", v, err)
			}
		}
		// At its share and still young: the fetcher waits (backpressure)...
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		if _, err := w.Admit(short, "slow", 10); err == nil {
			t.Fatal("a program over its share was admitted")
		}
		cancel()
		// ...while other programs and records without a program go on.
		if v, err := w.Admit(ctx, "fast", 10); err != nil || v != Admitted {
			t.Fatalf("another program: %v %v", v, err)
		}
		if v, err := w.Admit(ctx, "", 10); err != nil || v != Admitted {
			t.Fatalf("no program: %v %v", v, err)
		}
		// Nothing finished for stallAfter: stalled, its next record is deferred.
		time.Sleep(250 * time.Millisecond) // the bubble's clock: no wall time passes
		if v, err := w.Admit(ctx, "slow", 10); err != nil || v != Defer {
			t.Fatalf("stalled program: %v %v, want deferred", v, err)
		}
		if w.HasRoom("slow") {
			t.Fatal("a stalled program has room")
		}
		// One finishes: no longer stalled, and it waits for room again.
		w.Release("slow", 10)
		if w.stalled("slow") {
			t.Fatal("still stalled after a record finished")
		}
		if v, err := w.Admit(ctx, "slow", 10); err != nil || v != Admitted {
			t.Fatalf("after progress: %v %v", v, err)
		}
	})
}

func TestWindowBoundsMemory(t *testing.T) {
	w := New(1000, 100, time.Second, func(string) int { return 1000 })
	ctx := context.Background()
	if v, err := w.Admit(ctx, "", 60); err != nil || v != Admitted {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := w.Admit(short, "", 60); err == nil {
		t.Fatal("admitted past the memory bound")
	}
	done := make(chan error, 1)
	go func() { _, err := w.Admit(ctx, "", 60); done <- err }()
	w.Release("", 60)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a release did not wake the waiting fetcher")
	}
	// A single record bigger than the bound still gets in when the window
	// is empty: nothing could ever make room for it otherwise.
	w2 := New(1000, 100, time.Second, func(string) int { return 10 })
	if v, err := w2.Admit(ctx, "", 500); err != nil || v != Admitted {
		t.Fatal("an oversized record must not block an empty window")
	}
}
