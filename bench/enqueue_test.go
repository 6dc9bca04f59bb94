package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/queue/queueredis"
)

// BenchmarkEnqueue: one op enqueues 10,000 no-op jobs one by one, from 1
// and from 16 goroutines: scalekit-pg (Client.Enqueue) and river
// (Client.Insert) on one real PostgreSQL (a pool of 20 connections),
// scalekit-redis (Client.Enqueue) and asynq (Client.Enqueue) on one real
// redis-server; scalekit-pg-unique gives each job a unique key. It reports jobs/s, round trips per job and the server's
// CPU per job, as BenchmarkEnqueueMany does; scalekit-pg's round trips
// include its notifier's coalesced NOTIFYs, sent on the same pool.
func BenchmarkEnqueue(b *testing.B) {
	ctx := context.Background()
	b.Run("pg", func(b *testing.B) {
		f := testinfra.Postgres(b)
		rt := &testinfra.RoundTrips{}
		pool := tracedPool(b, f.PrimaryURL+"&pool_max_conns=20", rt)
		pid := postmasterPID(b, pool)
		cpu := func() uint64 { return procTreeCPU(pid) }
		be, err := queuepg.New(queuepg.Options{Pool: pool})
		if err != nil {
			b.Fatal(err)
		}
		defer be.Close()
		if err := be.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		c, _ := queue.NewClient(queue.ClientOptions{Backend: be})
		driver := riverpgxv5.New(pool)
		m, err := rivermigrate.New(driver, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			b.Fatal(err)
		}
		rc, err := river.NewClient(driver, &river.Config{})
		if err != nil {
			b.Fatal(err)
		}
		var seq atomic.Int64 // the unique keys: fresh across runs, so every job is stored
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("scalekit-pg/%d", g), func(b *testing.B) {
				measureEnqueue(b, rt.Load, cpu, oneByOne(g, func() error {
					_, err := c.Enqueue(ctx, "bench", "noop", nil, queue.EnqueueOptions{})
					return err
				}))
			})
			b.Run(fmt.Sprintf("scalekit-pg-unique/%d", g), func(b *testing.B) {
				measureEnqueue(b, rt.Load, cpu, oneByOne(g, func() error {
					o := queue.EnqueueOptions{UniqueKey: strconv.FormatInt(seq.Add(1), 10)}
					_, err := c.Enqueue(ctx, "bench", "noop", nil, o)
					return err
				}))
			})
			b.Run(fmt.Sprintf("river/%d", g), func(b *testing.B) {
				measureEnqueue(b, rt.Load, cpu, oneByOne(g, func() error {
					_, err := rc.Insert(ctx, noopArgs{}, nil)
					return err
				}))
			})
		}
	})
	b.Run("redis", func(b *testing.B) {
		r := testinfra.Redis(b)
		rt := &testinfra.RoundTrips{}
		r.Client.AddHook(rt)
		pid := redisPID(b, r.Client)
		cpu := func() uint64 { return procTreeCPU(pid) }
		be, err := queueredis.New(queueredis.Options{Client: r.Client})
		if err != nil {
			b.Fatal(err)
		}
		c, _ := queue.NewClient(queue.ClientOptions{Backend: be})
		ac := asynq.NewClientFromRedisClient(r.Client)
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("scalekit-redis/%d", g), func(b *testing.B) {
				measureEnqueue(b, rt.Load, cpu, oneByOne(g, func() error {
					_, err := c.Enqueue(ctx, "bench", "noop", nil, queue.EnqueueOptions{})
					return err
				}))
				r.Client.FlushDB(ctx)
			})
			b.Run(fmt.Sprintf("asynq/%d", g), func(b *testing.B) {
				measureEnqueue(b, rt.Load, cpu, oneByOne(g, func() error {
					_, err := ac.EnqueueContext(ctx, asynq.NewTask("noop", nil))
					return err
				}))
				r.Client.FlushDB(ctx)
			})
		}
	})
}

// oneByOne is an op of measureEnqueue: enqueueJobs calls of enqueue, from
// goroutines goroutines; the first error stops it.
func oneByOne(goroutines int, enqueue func() error) func() error {
	return func() error {
		var next atomic.Int64
		var failed atomic.Pointer[error]
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for next.Add(1) <= enqueueJobs && failed.Load() == nil {
					if err := enqueue(); err != nil {
						failed.Store(&err)
					}
				}
			})
		}
		wg.Wait()
		if err := failed.Load(); err != nil {
			return *err
		}
		return nil
	}
}
