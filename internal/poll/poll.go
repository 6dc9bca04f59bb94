// Package poll waits in tests for a condition that other goroutines or
// processes make true (a message delivered, a job done, a replica back).
package poll

import (
	"testing"
	"time"
)

// Until calls cond every 10ms until it holds, and fails the test naming
// what it waited for if timeout passes first. It returns how long it
// waited.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}
