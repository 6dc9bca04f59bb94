package idempotencytest_test

import (
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/idempotency/idempotencytest"
)

// A Store proves itself with one call from its own tests; Run drives it on
// a simulated clock (now), so the factory must make the Store read time
// from it. In your Store's _test.go:
//
//	func TestConformance(t *testing.T) { idempotencytest.Run(t, newStore) }
func Example() {
	var t *testing.T // the *testing.T of your TestXxx function
	idempotencytest.Run(t, func(t *testing.T, now func() time.Time) idempotency.Store {
		return idempotency.NewMemoryStore(idempotency.MemoryStoreOptions{Now: now})
	})
}
