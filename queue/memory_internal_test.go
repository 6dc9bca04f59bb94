package queue

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

// Unique holds that no longer hold (expired, or of a finished job) are
// dropped: the map does not grow with every key ever used.
func TestMemoryBackendDropsDeadUniqueHolds(t *testing.T) {
	clk := testclock.New()
	b := NewMemoryBackend(MemoryBackendOptions{Clock: clk})
	c, _ := NewClient(ClientOptions{Backend: b, Clock: clk})
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		if _, err := c.Enqueue(ctx, "q", "k", nil, EnqueueOptions{UniqueKey: "old" + strconv.Itoa(i), UniqueFor: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Hour)
	for i := 0; i < 1100; i++ {
		if _, err := c.Enqueue(ctx, "q", "k", nil, EnqueueOptions{UniqueKey: "new" + strconv.Itoa(i), UniqueFor: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	b.mu.Lock()
	n := len(b.unique)
	b.mu.Unlock()
	if n > 1100 {
		t.Fatalf("%d unique holds kept, want at most the 1100 that still hold", n)
	}
	// A while-active hold goes when its job finishes.
	id, err := c.Enqueue(ctx, "w", "k", nil, EnqueueOptions{UniqueKey: "a", UniqueWhileActive: true})
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := b.Fetch(ctx, FetchRequest{Queue: "w", Max: 1, Lease: time.Minute, Order: fetchOrder(0)})
	if len(ls) != 1 || ls[0].Msg.ID != id {
		t.Fatalf("fetch %v", ls)
	}
	if err := b.Complete(ctx, ls[0], nil); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	_, held := b.unique["w\x00a"]
	b.mu.Unlock()
	if held {
		t.Fatal("the while-active hold outlived its completed job")
	}
}
