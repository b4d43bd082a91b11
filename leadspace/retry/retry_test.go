package retry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStepDoublesFromFirstUpToMax(t *testing.T) {
	s := Schedule{First: 100 * time.Millisecond, Max: time.Second}
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {4, 800 * time.Millisecond}, {5, time.Second},
		{40, time.Second}, {1 << 20, time.Second}} {
		if got := s.Step(c.n); got != c.want {
			t.Errorf("Step(%d) = %s, want %s", c.n, got, c.want)
		}
	}
	// A First so large that doubling it overflows stays at Max.
	if got := (Schedule{First: time.Hour, Max: 2 * time.Hour}).Step(30); got != 2*time.Hour {
		t.Errorf("overflowing step = %s", got)
	}
}

func TestDelayStaysInItsJitterBand(t *testing.T) {
	for _, c := range []struct {
		jitter   Jitter
		low, max time.Duration
	}{{Full, 0, 400 * time.Millisecond}, {Equal, 200 * time.Millisecond, 400 * time.Millisecond}} {
		s := Schedule{First: 100 * time.Millisecond, Max: time.Second, Jitter: c.jitter}
		spread := map[time.Duration]bool{}
		for range 200 {
			d := s.Delay(3)
			if d < c.low || d > c.max {
				t.Fatalf("jitter %d: delay %s outside [%s, %s]", c.jitter, d, c.low, c.max)
			}
			spread[d] = true
		}
		if len(spread) < 10 {
			t.Errorf("jitter %d: only %d distinct delays in 200", c.jitter, len(spread))
		}
	}
	if d := (Schedule{}).Delay(1); d != 0 {
		t.Errorf("a zero schedule waits %s", d)
	}
}

func TestDoSaysWhyItGaveUp(t *testing.T) {
	fast := Schedule{First: time.Microsecond, Max: time.Microsecond}
	boom := errors.New("boom")
	fatal := errors.New("fatal")

	calls := 0
	err := Schedule{First: time.Microsecond, Max: time.Microsecond, Attempts: 3}.Do(context.Background(), "read", func() error {
		calls++
		return boom
	}, nil, nil)
	if calls != 3 || !errors.Is(err, boom) || !strings.Contains(err.Error(), "read: gave up after 3 attempts") {
		t.Errorf("out of attempts: %d calls, %v", calls, err)
	}

	calls = 0
	err = fast.Do(context.Background(), "write", func() error {
		calls++
		return fatal
	}, func(err error) bool { return !errors.Is(err, fatal) }, nil)
	if calls != 1 || !errors.Is(err, fatal) || !strings.HasPrefix(err.Error(), "write: ") {
		t.Errorf("not retryable: %d calls, %v", calls, err)
	}

	calls = 0
	retried := 0
	err = fast.Do(context.Background(), "join", func() error {
		if calls++; calls < 4 {
			return boom
		}
		return nil
	}, nil, func(err error, n int) { retried = n })
	if err != nil || calls != 4 || retried != 3 {
		t.Errorf("success on the 4th attempt: %v, %d calls, last retry %d", err, calls, retried)
	}
}

func TestDoStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Schedule{First: time.Hour, Max: time.Hour}.Do(ctx, "follow", func() error {
		calls++
		cancel()
		return errors.New("broker down")
	}, nil, nil)
	if calls != 1 || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "broker down") {
		t.Errorf("%d calls, %v; want one call and an error naming the cancel and the last failure", calls, err)
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on an ended context: %v", err)
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Errorf("Sleep(0): %v", err)
	}
}
