package idempotencytest_test

import (
	"testing"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/idempotency/idempotencytest"
)

// A Store proves itself with one call from its own tests; Run drives it on
// a simulated clock (clk), so the factory must make the Store read time
// from it. In your Store's _test.go:
//
//	func TestConformance(t *testing.T) { idempotencytest.Run(t, newStore) }
func Example() {
	var t *testing.T // the *testing.T of your TestXxx function
	idempotencytest.Run(t, func(t *testing.T, clk clock.Clock) idempotency.Store {
		return idempotency.NewMemoryStore(idempotency.MemoryStoreOptions{Clock: clk})
	})
}
