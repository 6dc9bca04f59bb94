package queue_test

import (
	"testing"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuetest"
)

func TestMemoryBackendConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, clk clock.Clock) queue.Backend {
		return queue.NewMemoryBackend(queue.MemoryBackendOptions{Clock: clk})
	})
}

func TestMemoryBackendWorker(t *testing.T) {
	queuetest.RunWorker(t, func(t *testing.T) queue.Backend {
		return queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	})
}
