package processor

import (
	"context"
	"sync"
)

// window runs jobs with a bounded number in flight across all partitions,
// in order per key and in parallel across keys. When it is full, submit
// blocks, which stops the fetch loops: backpressure instead of unbounded
// memory. Concurrency is therefore bounded by the window, not by the number
// of partitions.
type window struct {
	slots chan struct{}

	mu     sync.Mutex
	queues map[string][]func() // key -> jobs waiting behind the running one
}

func newWindow(size int) *window {
	return &window{slots: make(chan struct{}, size), queues: map[string][]func(){}}
}

// submit queues job behind earlier jobs of the same key. It blocks while the
// window is full and returns ctx's error if ctx ends first (the job is then
// not queued).
func (w *window) submit(ctx context.Context, key string, job func()) error {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.mu.Lock()
	q, running := w.queues[key]
	w.queues[key] = append(q, job)
	w.mu.Unlock()
	if !running {
		go w.drain(key)
	}
	return nil
}

// drain runs a key's jobs one after another until its queue is empty.
func (w *window) drain(key string) {
	for {
		w.mu.Lock()
		q := w.queues[key]
		if len(q) == 0 {
			delete(w.queues, key)
			w.mu.Unlock()
			return
		}
		job := q[0]
		w.mu.Unlock()

		job()
		<-w.slots

		w.mu.Lock()
		w.queues[key] = w.queues[key][1:]
		w.mu.Unlock()
	}
}

// inFlight is the number of jobs queued or running.
func (w *window) inFlight() int { return len(w.slots) }
