package processor

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWindowKeepsOrderPerKeyAndRunsKeysInParallel(t *testing.T) {
	w := newWindow(64)
	var mu sync.Mutex
	seen := map[string][]int{}
	var running, maxRunning atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		key := []string{"a", "b", "c", "d"}[i%4]
		i := i
		wg.Add(1)
		if err := w.submit(context.Background(), key, func() {
			defer wg.Done()
			n := running.Add(1)
			for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
			}
			time.Sleep(time.Millisecond)
			mu.Lock()
			seen[key] = append(seen[key], i)
			mu.Unlock()
			running.Add(-1)
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for key, order := range seen {
		for j := 1; j < len(order); j++ {
			if order[j] < order[j-1] {
				t.Fatalf("key %s ran out of order: %v", key, order)
			}
		}
	}
	if maxRunning.Load() < 2 {
		t.Fatalf("at most %d jobs ran at once; different keys should run in parallel", maxRunning.Load())
	}
	if maxRunning.Load() > 4 {
		t.Fatalf("%d jobs ran at once with only 4 keys; one key ran twice at a time", maxRunning.Load())
	}
}

func TestFullWindowBlocksSubmitUntilASlotFrees(t *testing.T) {
	w := newWindow(2)
	release := make(chan struct{})
	for _, k := range []string{"a", "b"} {
		if err := w.submit(context.Background(), k, func() { <-release }); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.submit(ctx, "c", func() {}); err == nil {
		t.Fatal("submit to a full window returned before a slot freed")
	}
	close(release)
	if err := w.submit(context.Background(), "c", func() {}); err != nil {
		t.Fatal(err)
	}
}
