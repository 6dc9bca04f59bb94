package queue_test

import (
	"context"
	"strings"
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

// stuckBackend's List never moves past its first next id.
type stuckBackend struct{ *queue.MemoryBackend }

func (stuckBackend) List(_ context.Context, q queue.ListQuery) ([]*queue.Message, string, error) {
	return nil, "a", nil
}

// A backend whose List does not move on fails Client.List instead of
// looping forever.
func TestListBackendThatDoesNotMoveOn(t *testing.T) {
	c, _ := queue.NewClient(queue.ClientOptions{Backend: stuckBackend{queue.NewMemoryBackend(queue.MemoryBackendOptions{})}})
	_, err := c.List(context.Background(), queue.ListRequest{Queue: "q", Kind: "k"})
	if err == nil || !strings.Contains(err.Error(), `did not move past job "a"`) {
		t.Fatalf("List = %v, want an error", err)
	}
}
