// Package retrytest is the one way the module's tests wait: for a fact, not
// for time. Wait polls a condition, quickly at first and then every
// 100ms, until it holds or the time is up, and then fails the test with
// what it waited for and what it last saw. It lives beside retry so that
// every package's tests (leadspace's too) can import it.
package retrytest

import (
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
)

// poll is how often a condition is checked: from 1ms, doubling to 100ms,
// so a fact that is already true or soon true costs no fixed delay.
var poll = retry.Schedule{First: time.Millisecond, Max: 100 * time.Millisecond}

// Wait waits until cond holds, for at most within; then it fails the test
// naming what.
func Wait(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	Until(t, within, func() (bool, string) { return cond(), what })
}

// Until waits until check reports done, for at most within; then it fails
// the test with check's last report (what it saw).
func Until(t testing.TB, within time.Duration, check func() (done bool, report string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for n := 1; ; n++ {
		done, report := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, report)
		}
		time.Sleep(poll.Step(n)) // the poll interval of a condition wait
	}
}
