package processor

import (
	"context"
	"testing"
	"time"
)

func TestWindowHoldsAProgramToItsShareAndDefersItOnceStalled(t *testing.T) {
	w := newWindow(1000, 1<<30, 200*time.Millisecond, func(string) int { return 2 })
	ctx := context.Background()
	for range 2 {
		if v, err := w.admit(ctx, "slow", 10); err != nil || v != admitted {
			t.Fatalf("admit: %v %v", v, err)
		}
	}
	// At its share and still young: the fetcher waits (backpressure)...
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := w.admit(short, "slow", 10); err == nil {
		t.Fatal("a program over its share was admitted")
	}
	cancel()
	// ...while other programs and records without a program go on.
	if v, err := w.admit(ctx, "fast", 10); err != nil || v != admitted {
		t.Fatalf("another program: %v %v", v, err)
	}
	if v, err := w.admit(ctx, "", 10); err != nil || v != admitted {
		t.Fatalf("no program: %v %v", v, err)
	}
	// Nothing finished for stallAfter: stalled, its next record is deferred.
	time.Sleep(250 * time.Millisecond)
	if v, err := w.admit(ctx, "slow", 10); err != nil || v != deferIt {
		t.Fatalf("stalled program: %v %v, want deferred", v, err)
	}
	if w.hasRoom("slow") {
		t.Fatal("a stalled program has room")
	}
	// One finishes: no longer stalled, and it waits for room again.
	w.release("slow", 10)
	if w.stalled("slow") {
		t.Fatal("still stalled after a record finished")
	}
	if v, err := w.admit(ctx, "slow", 10); err != nil || v != admitted {
		t.Fatalf("after progress: %v %v", v, err)
	}
}

func TestWindowBoundsMemory(t *testing.T) {
	w := newWindow(1000, 100, time.Second, func(string) int { return 1000 })
	ctx := context.Background()
	if v, err := w.admit(ctx, "", 60); err != nil || v != admitted {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := w.admit(short, "", 60); err == nil {
		t.Fatal("admitted past the memory bound")
	}
	done := make(chan error, 1)
	go func() { _, err := w.admit(ctx, "", 60); done <- err }()
	w.release("", 60)
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
	w2 := newWindow(1000, 100, time.Second, func(string) int { return 10 })
	if v, err := w2.admit(ctx, "", 500); err != nil || v != admitted {
		t.Fatal("an oversized record must not block an empty window")
	}
}
