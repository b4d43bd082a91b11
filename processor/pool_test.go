package processor

import (
	"slices"
	"sync"
	"testing"
)

// runInOrder queues stages on a one-worker pool while it is held busy,
// then lets it run them and returns the order they ran in.
func runInOrder(t *testing.T, queue func(p *pool, ran func(name string) func())) []string {
	t.Helper()
	p := newPool(1)
	defer p.close()
	hold, held := make(chan struct{}), make(chan struct{})
	p.submit(func() { close(held); <-hold }, false, "holder")
	<-held
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	ran := func(name string) func() {
		wg.Add(1)
		return func() {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			wg.Done()
		}
	}
	queue(p, ran)
	close(hold)
	wg.Wait()
	return order
}

// Lanes (Leadspace programs) take turns one stage each: a big program's
// backlog does not hold up a small one's records.
func TestPoolLanesTakeTurns(t *testing.T) {
	got := runInOrder(t, func(p *pool, ran func(string) func()) {
		for i := range 3 {
			p.submit(ran("big-"+string(rune('1'+i))), false, "big")
		}
		p.submit(ran("small-1"), false, "small")
	})
	if want := []string{"big-1", "small-1", "big-2", "big-3"}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
}

// Within a lane, answered records finish before new records start: an
// answered record holds its answer until it is published.
func TestPoolFinishesAnsweredRecordsFirst(t *testing.T) {
	got := runInOrder(t, func(p *pool, ran func(string) func()) {
		p.submit(ran("start-1"), false, "a")
		p.submit(ran("start-2"), false, "a")
		p.finish(ran("finish-1"), false, "a")
		p.finish(ran("finish-2"), false, "a")
	})
	if want := []string{"finish-1", "finish-2", "start-1", "start-2"}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
}

// A Run's records only use what live traffic leaves, and finish first
// among themselves too.
func TestPoolRunsWaitForLiveWork(t *testing.T) {
	got := runInOrder(t, func(p *pool, ran func(string) func()) {
		p.submit(ran("run-start"), true, "a")
		p.finish(ran("run-finish"), true, "a")
		p.submit(ran("live-start"), false, "a")
	})
	if want := []string{"live-start", "run-finish", "run-start"}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
}

// Runs take turns by program too: a big tenant's Run does not hold up a
// small tenant's Run.
func TestPoolRunLanesTakeTurns(t *testing.T) {
	got := runInOrder(t, func(p *pool, ran func(string) func()) {
		for i := range 3 {
			p.submit(ran("big-run-"+string(rune('1'+i))), true, "big")
		}
		p.submit(ran("small-run-1"), true, "small")
	})
	if want := []string{"big-run-1", "small-run-1", "big-run-2", "big-run-3"}; !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
}
