package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/queue/queueredis"
)

// enqueueJobs is how many jobs one op of BenchmarkEnqueueMany enqueues.
const enqueueJobs = 10_000

// BenchmarkEnqueueMany: one op enqueues 10,000 no-op jobs, in batches of
// 100 or 1,000 where the library has a batch call: scalekit-pg
// (Client.EnqueueMany) and river (InsertMany) on one real PostgreSQL
// (a database each), scalekit-redis (Client.EnqueueMany) and asynq
// (Enqueue one by one, and from 16 goroutines: asynq has no batch call)
// on one real redis-server. It reports jobs/s, round trips per job
// (statements and prepares counted by a pgx tracer; commands and
// pipelines by a go-redis hook) and the server's CPU per job (utime +
// stime of the server's processes in /proc: the postmaster and its
// children, or redis-server).
func BenchmarkEnqueueMany(b *testing.B) {
	ctx := context.Background()
	b.Run("pg", func(b *testing.B) {
		rt := &testinfra.RoundTrips{}
		pid, c, rc := pgInserters(b, "", rt)
		seq := 0 // the unique keys: fresh across runs, so every job is stored
		for _, size := range []int{100, 1000} {
			b.Run(fmt.Sprintf("scalekit-pg/batch%d", size), func(b *testing.B) {
				reqs := make([]queue.EnqueueRequest, size)
				for i := range reqs {
					reqs[i] = queue.EnqueueRequest{Queue: "bench", Kind: "noop"}
				}
				measureEnqueue(b, rt.Load, func() uint64 { return procTreeCPU(pid) }, func() error {
					for n := 0; n < enqueueJobs; n += size {
						if err := enqueueAll(ctx, c, reqs); err != nil {
							return err
						}
					}
					return nil
				})
			})
			b.Run(fmt.Sprintf("scalekit-pg-unique/batch%d", size), func(b *testing.B) {
				reqs := make([]queue.EnqueueRequest, size)
				measureEnqueue(b, rt.Load, func() uint64 { return procTreeCPU(pid) }, func() error {
					for n := 0; n < enqueueJobs; n += size {
						for i := range reqs {
							seq++
							reqs[i] = queue.EnqueueRequest{Queue: "bench", Kind: "noop",
								Options: queue.EnqueueOptions{UniqueKey: strconv.Itoa(seq)}}
						}
						if err := enqueueAll(ctx, c, reqs); err != nil {
							return err
						}
					}
					return nil
				})
			})
			b.Run(fmt.Sprintf("river/batch%d", size), func(b *testing.B) {
				params := make([]river.InsertManyParams, size)
				for i := range params {
					params[i] = river.InsertManyParams{Args: noopArgs{}}
				}
				measureEnqueue(b, rt.Load, func() uint64 { return procTreeCPU(pid) }, func() error {
					for n := 0; n < enqueueJobs; n += size {
						if _, err := rc.InsertMany(ctx, params); err != nil {
							return err
						}
					}
					return nil
				})
			})
		}
	})
	b.Run("redis", func(b *testing.B) {
		r, rt, cpu, c := redisInserter(b)
		for _, size := range []int{100, 1000} {
			b.Run(fmt.Sprintf("scalekit-redis/batch%d", size), func(b *testing.B) {
				reqs := make([]queue.EnqueueRequest, size)
				for i := range reqs {
					reqs[i] = queue.EnqueueRequest{Queue: "bench", Kind: "noop"}
				}
				measureEnqueue(b, rt.Load, cpu, func() error {
					for n := 0; n < enqueueJobs; n += size {
						if err := enqueueAll(ctx, c, reqs); err != nil {
							return err
						}
					}
					return nil
				})
				r.Client.FlushDB(ctx)
			})
		}
		ac := asynq.NewClientFromRedisClient(r.Client)
		for _, g := range []int{1, 16} {
			// asynq has no batch call: one by one, and from 16
			// goroutines (its fastest here).
			name := map[int]string{1: "asynq/one-by-one", 16: "asynq/16-goroutines"}[g]
			b.Run(name, func(b *testing.B) {
				measureEnqueue(b, rt.Load, cpu, oneByOne(g, func() error {
					_, err := ac.EnqueueContext(ctx, asynq.NewTask("noop", nil))
					return err
				}))
				r.Client.FlushDB(ctx)
			})
		}
	})
}

// pgInserters starts PostgreSQL and returns its postmaster's pid, a
// scalekit-pg Client and a River client (migrated, insert-only) on one
// pool whose statements rt counts; query is added to the pool's URL.
func pgInserters(b *testing.B, query string, rt *testinfra.RoundTrips) (int, *queue.Client, *river.Client[pgx.Tx]) {
	ctx := context.Background()
	f := testinfra.Postgres(b)
	pool := tracedPool(b, f.PrimaryURL+query, rt)
	be, err := queuepg.New(queuepg.Options{Pool: pool})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
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
	return postmasterPID(b, pool), c, rc
}

// redisInserter starts redis-server and returns it, a counter of the
// round trips of its client, the server's CPU time (clock ticks) and a
// scalekit-redis Client.
func redisInserter(b *testing.B) (*testinfra.RedisFixture, *testinfra.RoundTrips, func() uint64, *queue.Client) {
	r, rt, cpu := measuredRedis(b)
	be, err := queueredis.New(queueredis.Options{Client: r.Client})
	if err != nil {
		b.Fatal(err)
	}
	c, _ := queue.NewClient(queue.ClientOptions{Backend: be})
	return r, rt, cpu, c
}

// enqueueAll is c.EnqueueMany(reqs), every job stored.
func enqueueAll(ctx context.Context, c *queue.Client, reqs []queue.EnqueueRequest) error {
	res, err := c.EnqueueMany(ctx, reqs...)
	for _, r := range res {
		if err == nil {
			err = r.Err
		}
	}
	return err
}

// measureEnqueue runs op (10,000 enqueues) b.N times and reports jobs/s,
// round trips per job (from trips, a running count) and the server's CPU
// per job in µs (from cpu, in clock ticks), and this process's CPU per job.
func measureEnqueue(b *testing.B, trips func() int64, cpu func() uint64, op func() error) {
	b.ReportAllocs()
	t0, c0, u0 := trips(), cpu(), selfCPU()
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	elapsed := time.Since(start)
	jobs := float64(b.N * enqueueJobs)
	b.ReportMetric(jobs/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(trips()-t0)/jobs, "trips/job")
	b.ReportMetric(float64(cpu()-c0)*1e6/clockTicks/jobs, "srv-µs/job")
	b.ReportMetric(float64(selfCPU()-u0)/1e3/jobs, "cli-µs/job")
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
const clockTicks = 100

// procTreeCPU is the CPU time (utime + stime, in clock ticks) of pid and
// of its children.
func procTreeCPU(pid int) uint64 {
	total := uint64(0)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the command name (in parentheses, which may
		// hold spaces): state ppid ... utime (14th field) stime (15th).
		s := string(raw)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		if p != pid && ppid != pid {
			continue
		}
		ut, _ := strconv.ParseUint(fields[11], 10, 64)
		st, _ := strconv.ParseUint(fields[12], 10, 64)
		total += ut + st
	}
	return total
}

// postmasterPID is the pid of the PostgreSQL server pool talks to: the
// parent of its backend process.
func postmasterPID(b *testing.B, pool *pgxpool.Pool) int {
	var backend int
	if err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", backend))
	if err != nil {
		b.Skipf("cannot read the server's /proc entry: %v", err)
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// redisPID is redis-server's pid (INFO server).
func redisPID(b *testing.B, c *redis.Client) int {
	info, err := c.Info(context.Background(), "server").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	b.Fatal("no process_id in INFO server")
	return 0
}

// tracedPool is a pool on url whose statements rt counts.
func tracedPool(b *testing.B, url string, rt *testinfra.RoundTrips) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.ConnConfig.Tracer = rt
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}
