package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// BenchmarkEnqueue: one op enqueues 10,000 no-op jobs one by one, from 1
// and from 16 goroutines: scalekit-pg (Client.Enqueue) and river
// (Client.Insert) on one real PostgreSQL (a pool of 20 connections),
// scalekit-redis (Client.Enqueue) and asynq (Client.Enqueue) on one real
// redis-server; scalekit-pg-unique gives each job a unique key;
// script-floor is one trivial script call per job, the floor of an
// enqueue that is one script round trip. It reports jobs/s, round trips per job and the server's
// CPU per job, as BenchmarkEnqueueMany does; scalekit-pg's round trips
// include its notifier's coalesced NOTIFYs, sent on the same pool.
func BenchmarkEnqueue(b *testing.B) {
	ctx := context.Background()
	b.Run("pg", func(b *testing.B) {
		rt := &testinfra.RoundTrips{}
		pid, c, rc := pgInserters(b, "&pool_max_conns=20", rt)
		cpu := func() uint64 { return procTreeCPU(pid) }
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
		r, rt, cpu, c := redisInserter(b)
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
			// script-floor: one EVALSHA of a script that only returns, per
			// "job": the floor of an enqueue that is one script round trip,
			// as scalekit's lone Enqueue and asynq's are.
			b.Run(fmt.Sprintf("script-floor/%d", g), func(b *testing.B) {
				measureEnqueue(b, rt.Load, cpu, oneByOne(g, func() error {
					return floorScript.Run(ctx, r.Client, nil).Err()
				}))
			})
		}
	})
}

// floorScript does nothing: BenchmarkEnqueue's script-floor.
var floorScript = redis.NewScript("return 1")

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
