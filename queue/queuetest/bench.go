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

// BenchPublish measures Client.Publish on be to a topic with subscribers
// subscriber queues, from parallel goroutines: one event per op (a job
// stored in every subscriber queue).
func BenchPublish(b *testing.B, be queue.Backend, subscribers int) {
	c, _ := queue.NewClient(queue.ClientOptions{Backend: be})
	ctx := context.Background()
	topic := Name(b)
	for range subscribers {
		if err := c.Subscribe(ctx, topic, Name(b)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if p, err := c.Publish(ctx, topic, map[string]int{"n": 1}, queue.PublishOptions{}); err != nil || len(p.Queues) != subscribers {
				b.Error(p, err)
				return
			}
		}
	})
}
