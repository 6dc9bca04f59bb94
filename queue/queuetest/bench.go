package queuetest

import (
	"context"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/queue"
)

// BenchProgress measures be's Backend.Progress: one write of a leased
// job's progress per op (a Worker sends at most 4 per second per job).
func BenchProgress(b *testing.B, be queue.Backend) {
	c, _ := queue.NewClient(queue.ClientOptions{Backend: be})
	ctx := context.Background()
	q := Name(b)
	if _, err := c.Enqueue(ctx, q, "k", nil, queue.EnqueueOptions{}); err != nil {
		b.Fatal(err)
	}
	ls, err := be.Fetch(ctx, queue.FetchRequest{Queue: q, Max: 1, Lease: time.Hour, Order: order})
	if err != nil || len(ls) != 1 {
		b.Fatal(ls, err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := be.Progress(ctx, ls[0], i%100, "rendering"); err != nil {
			b.Fatal(err)
		}
	}
}
