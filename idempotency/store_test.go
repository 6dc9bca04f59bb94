package idempotency_test

import (
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/idempotency/idempotencytest"
)

func TestMemoryStoreConformance(t *testing.T) {
	idempotencytest.Run(t, func(t *testing.T, now func() time.Time) idempotency.Store {
		return idempotency.NewMemoryStore(idempotency.MemoryStoreOptions{Now: now})
	})
}

func TestConcurrentDuplicates(t *testing.T) {
	idempotencytest.ConcurrentDuplicates(t, idempotency.NewMemoryStore(idempotency.MemoryStoreOptions{}))
}
