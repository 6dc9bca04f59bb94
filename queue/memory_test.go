package queue_test

import (
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuetest"
)

func TestMemoryBackendConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, now func() time.Time) queue.Backend {
		return queue.NewMemoryBackend(queue.MemoryBackendOptions{Now: now})
	})
}

func TestMemoryBackendWorker(t *testing.T) {
	queuetest.RunWorker(t, func(t *testing.T) queue.Backend {
		return queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	})
}
