package idempotency_test

import (
	"testing"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/idempotency/idempotencytest"
)

func TestMemoryStoreConformance(t *testing.T) {
	idempotencytest.Run(t, func(t *testing.T, clk clock.Clock) idempotency.Store {
		return idempotency.NewMemoryStore(idempotency.MemoryStoreOptions{Clock: clk})
	})
}

func TestConcurrentDuplicates(t *testing.T) {
	idempotencytest.ConcurrentDuplicates(t, idempotency.NewMemoryStore(idempotency.MemoryStoreOptions{}))
}
