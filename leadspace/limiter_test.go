package leadspace

import (
	"testing"
	"time"
)

func TestLimiterAIMD(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	l := newLimiter(30, 1, 1, clock)

	l.throttled(0)
	if got := l.tps(); got != 15 {
		t.Fatalf("after one 429: %.1f TPS, want 15", got)
	}
	l.throttled(0) // same second: one decrease per crowded second
	if got := l.tps(); got != 15 {
		t.Fatalf("second 429 in the same second: %.1f TPS, want 15", got)
	}
	for range 6 {
		now = now.Add(time.Second)
		l.throttled(0)
	}
	if got := l.tps(); got != 1 {
		t.Fatalf("after a storm: %.2f TPS, want the floor 1", got)
	}
	now = now.Add(10 * time.Second)
	l.recover()
	if got := l.tps(); got != 11 {
		t.Fatalf("10 s without 429: %.1f TPS, want 11 (+1/s)", got)
	}
	now = now.Add(time.Minute)
	l.recover()
	if got := l.tps(); got != 30 {
		t.Fatalf("recovery must stop at the configured 30, got %.1f", got)
	}
	l.throttled(3 * time.Second)
	if pause := l.recover(); pause != 3*time.Second {
		t.Fatalf("Retry-After pause = %s", pause)
	}
}

func TestBackoffIsBoundedFullJitter(t *testing.T) {
	for attempt := 1; attempt < 70; attempt++ {
		d := (&Config{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second}).retries().Delay(attempt)
		if d < 0 || d > time.Second || (attempt == 1 && d > 100*time.Millisecond) {
			t.Fatalf("attempt %d: %s", attempt, d)
		}
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	var c Config
	c.setDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.BaseURL != DefaultBaseURL || c.TPS != 30 || c.MaxAttempts != 0 || c.GiveUpAfter != 15*time.Minute || c.BulkThreshold != 20 ||
		c.BulkMaxRecords != 500 || c.RequestTimeout != 30*time.Second || c.Breaker.ConsecutiveFailures != 5 {
		t.Fatalf("defaults: %+v", c)
	}
	for _, bad := range []Config{{BulkMaxRecords: 501}, {BaseURL: "ftp://x"}, {TPS: -1}, {BackoffBase: time.Second, BackoffMax: time.Millisecond}, {MaxAttempts: -1}, {GiveUpAfter: -time.Second}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}
