package queueredis

import (
	"context"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuetest"
)

// BenchmarkEnqueue is one job per op: one EVALSHA.
func BenchmarkEnqueue(b *testing.B) {
	r := testinfra.Redis(b)
	c, _ := queue.NewClient(queue.ClientOptions{Backend: newBackend(b, Options{Client: r.Client})})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Enqueue(ctx, "bench", "k", map[string]int{"n": 1}, queue.EnqueueOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFetchComplete is one job per op, leased in batches of 10 and
// completed one by one: 1.1 EVALSHA per job.
func BenchmarkFetchComplete(b *testing.B) {
	r := testinfra.Redis(b)
	be := newBackend(b, Options{Client: r.Client})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: be})
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, err := c.Enqueue(ctx, "bench", "k", nil, queue.EnqueueOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		ls, err := be.Fetch(ctx, queue.FetchRequest{Queue: "bench", Max: 10, Lease: time.Minute, Order: highFirst})
		if err != nil || len(ls) == 0 {
			b.Fatal(ls, err)
		}
		for _, l := range ls {
			if err := be.Complete(ctx, l, nil); err != nil {
				b.Fatal(err)
			}
		}
		done += len(ls)
	}
}

// BenchmarkProgress is one progress write of a leased job per op: one
// EVALSHA.
func BenchmarkProgress(b *testing.B) {
	r := testinfra.Redis(b)
	queuetest.BenchProgress(b, newBackend(b, Options{Client: r.Client}))
}

// BenchmarkPublish is one event per op to 3 subscriber queues: one
// EVALSHA on one Redis; on a Cluster an SMEMBERS and one EVALSHA per
// queue.
func BenchmarkPublish(b *testing.B) {
	b.Run("standalone", func(b *testing.B) {
		r := testinfra.Redis(b)
		queuetest.BenchPublish(b, newBackend(b, Options{Client: r.Client}), 3)
	})
	b.Run("cluster", func(b *testing.B) {
		c := testinfra.RedisCluster(b)
		queuetest.BenchPublish(b, newBackend(b, Options{Client: c.Client, Prefix: c.Prefix + "queue"}), 3)
	})
}
