package queuetest_test

import (
	"testing"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuetest"
)

// A backend proves itself with one call per suite from its own tests. In
// your backend's _test.go:
//
//	func TestConformance(t *testing.T) { queuetest.Run(t, newBackend) }
//	func TestWorker(t *testing.T)      { queuetest.RunWorker(t, newRealTimeBackend) }
//
// Run drives the backend on a simulated clock (clk), so the factory must
// make the backend read time from it.
func Example() {
	var t *testing.T // the *testing.T of your TestXxx function
	queuetest.Run(t, func(t *testing.T, clk clock.Clock) queue.Backend {
		return queue.NewMemoryBackend(queue.MemoryBackendOptions{Clock: clk})
	})
	queuetest.RunWorker(t, func(t *testing.T) queue.Backend {
		return queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	})
}
