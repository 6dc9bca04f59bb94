package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// Ceiling sizes: the batch a fetch takes and the pipeline depth; the
// goroutines that drive the server.
const (
	ceilingBatch      = 32
	ceilingPipeline   = 16
	ceilingGoroutines = 32
	ceilingEnqueuers  = 16
	ceilingFetchers   = 4
)

// BenchmarkCeiling is this machine's ceiling for the server work behind
// the Redis and PostgreSQL rows of the table (bench/table): the minimal
// commands or statements an operation needs, with no library around them,
// batched and pipelined as a library could at best, on the same kind of
// throwaway server. A row's share of the ceiling is its throughput over
// the matching throughput here (dec/s: operations per second, or jobs/s).
// Each reports its round trips and the server's CPU per op or job, as the
// other benchmarks do.
//
//   - redis-get: GETs of a 128-byte value, 32 goroutines, 16 per pipeline
//     (the cache's L2 hit).
//   - redis-limit: one exact decision per key (a minimal GCRA script:
//     read the key's time, admit, write it back with an expiry), 32
//     goroutines, 16 scripts per pipeline (the Redis limiter).
//   - redis-enqueue: one job per round trip (a script storing the payload
//     and adding the id to the pending set), 16 goroutines (enqueue one by
//     one).
//   - redis-queue: the jobs are stored before the timer; 4 goroutines
//     each run one script per batch of 32 that completes the previous
//     batch (removes it from the leased set, deletes its payloads) and
//     leases the next (pops the pending set, adds the leased set, reads
//     the payloads): one round trip per 32 jobs.
//   - pg-enqueue: one INSERT per job, its own transaction, 16 goroutines.
//   - pg-queue: the rows are inserted before the timer; 4 goroutines each
//     send one pgx batch per 32 jobs: the UPDATE completing the previous
//     batch by primary key and the UPDATE ... FOR UPDATE SKIP LOCKED
//     leasing the next (one round trip per 32 jobs).
func BenchmarkCeiling(b *testing.B) {
	ctx := context.Background()
	b.Run("redis-get", func(b *testing.B) {
		r, rt, cpu := measuredRedis(b)
		val := bytes.Repeat([]byte("x"), 128)
		for i := range 1000 {
			if err := r.Client.Set(ctx, "c:"+strconv.Itoa(i), val, 0).Err(); err != nil {
				b.Fatal(err)
			}
		}
		measureParallel(b, ceilingGoroutines, ceilingPipeline, rt.Load, cpu, func(i int) error {
			p := r.Client.Pipeline()
			for j := range ceilingPipeline {
				p.Get(ctx, "c:"+strconv.Itoa((i*ceilingPipeline+j)%1000))
			}
			_, err := p.Exec(ctx)
			return err
		})
	})
	b.Run("redis-limit", func(b *testing.B) {
		r, rt, cpu := measuredRedis(b)
		gcra := redis.NewScript(`
local now = redis.call('TIME')
local t = now[1] * 1000000 + now[2]
local tat = tonumber(redis.call('GET', KEYS[1]) or t)
if tat < t then tat = t end
local emission = tonumber(ARGV[1])
if tat - t > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], tat + emission, 'PX', 60000)
return 1`)
		if err := gcra.Load(ctx, r.Client).Err(); err != nil {
			b.Fatal(err)
		}
		measureParallel(b, ceilingGoroutines, ceilingPipeline, rt.Load, cpu, func(i int) error {
			p := r.Client.Pipeline()
			cmds := make([]*redis.Cmd, ceilingPipeline)
			for j := range cmds {
				// 1M/s, burst 1M: every decision admits, as in BenchmarkRedisAllow.
				cmds[j] = gcra.EvalSha(ctx, p, []string{"l:" + strconv.Itoa((i*ceilingPipeline+j)%1000)}, 1, 1_000_000)
			}
			if _, err := p.Exec(ctx); err != nil {
				return err
			}
			for _, c := range cmds {
				if v, err := c.Int(); err != nil || v != 1 {
					return fmt.Errorf("decision = %d, %v", v, err)
				}
			}
			return nil
		})
	})
	enqueue := redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1`)
	b.Run("redis-enqueue", func(b *testing.B) {
		r, rt, cpu := measuredRedis(b)
		if err := enqueue.Load(ctx, r.Client).Err(); err != nil {
			b.Fatal(err)
		}
		payload := bytes.Repeat([]byte("p"), 64)
		measureParallel(b, ceilingEnqueuers, 1, rt.Load, cpu, func(i int) error {
			id := strconv.Itoa(i)
			return enqueue.EvalSha(ctx, r.Client, []string{"job:" + id, "pending"}, payload, i, id).Err()
		})
	})
	b.Run("redis-queue", func(b *testing.B) {
		r, rt, cpu := measuredRedis(b)
		payload := bytes.Repeat([]byte("p"), 64)
		for at := 0; at < b.N; at += 1000 {
			p := r.Client.Pipeline()
			for i := at; i < min(at+1000, b.N); i++ {
				id := strconv.Itoa(i)
				enqueue.Eval(ctx, p, []string{"job:" + id, "pending"}, payload, i, id)
			}
			if _, err := p.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		// KEYS: pending, leased; ARGV: the batch size, the lease's
		// deadline, then the ids of the previous batch to complete.
		cycle := redis.NewScript(`
for i = 3, #ARGV do
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('DEL', 'job:' .. ARGV[i])
end
local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
local out = {}
for i = 1, #popped, 2 do
  local id = popped[i]
  redis.call('ZADD', KEYS[2], ARGV[2], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('GET', 'job:' .. id)
end
return out`)
		if err := cycle.Load(ctx, r.Client).Err(); err != nil {
			b.Fatal(err)
		}
		ceilingQueue(b, rt.Load, cpu, func(done []string) ([]string, error) {
			args := append([]any{ceilingBatch, time.Now().Add(time.Minute).UnixMilli()}, anys(done)...)
			out, err := cycle.EvalSha(ctx, r.Client, []string{"pending", "leased"}, args...).StringSlice()
			ids := make([]string, 0, len(out)/2)
			for i := 0; i+1 < len(out); i += 2 {
				ids = append(ids, out[i])
			}
			return ids, err
		})
	})
	b.Run("pg-enqueue", func(b *testing.B) {
		pool, rt, cpu := ceilingPG(b)
		payload := bytes.Repeat([]byte("p"), 64)
		measureParallel(b, ceilingEnqueuers, 1, rt.Load, cpu, func(i int) error {
			_, err := pool.Exec(ctx, `INSERT INTO ceiling_jobs (state, payload) VALUES (0, $1)`, payload)
			return err
		})
	})
	b.Run("pg-queue", func(b *testing.B) {
		pool, rt, cpu := ceilingPG(b)
		if _, err := pool.Exec(ctx, `INSERT INTO ceiling_jobs (state, payload)
			SELECT 0, '\x70707070707070707070707070707070' FROM generate_series(1, $1::int)`, b.N); err != nil {
			b.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE ceiling_jobs`); err != nil {
			b.Fatal(err)
		}
		ceilingQueue(b, rt.Load, cpu, func(done []string) ([]string, error) {
			batch := &pgx.Batch{}
			if len(done) > 0 {
				ids := make([]int64, len(done))
				for i, id := range done {
					ids[i], _ = strconv.ParseInt(id, 10, 64)
				}
				batch.Queue(`UPDATE ceiling_jobs SET state = 2, lease_until = NULL WHERE id = ANY($1)`, ids)
			}
			var ids []string
			batch.Queue(`UPDATE ceiling_jobs SET state = 1, lease_until = now() + interval '1 minute'
				WHERE id IN (SELECT id FROM ceiling_jobs WHERE state = 0 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
				RETURNING id::text, payload`, ceilingBatch).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var id string
					var p []byte
					if err := rows.Scan(&id, &p); err != nil {
						return err
					}
					ids = append(ids, id)
				}
				return rows.Err()
			})
			err := pool.SendBatch(ctx, batch).Close()
			return ids, err
		})
	})
}

// ceilingQueue times b.N jobs, already enqueued, through cycle: each of 4
// goroutines calls it with the ids it leased last (to complete) and gets
// the next ids leased, until no job is left; it reports as processing
// does (jobs/s, round trips and server CPU per job).
func ceilingQueue(b *testing.B, trips func() int64, cpu func() uint64, cycle func(done []string) ([]string, error)) {
	var processed atomic.Int64
	p := startProcessing(b, trips, cpu)
	var wg sync.WaitGroup
	for range ceilingFetchers {
		wg.Go(func() {
			var done []string
			for {
				ids, err := cycle(done)
				if err != nil {
					b.Error(err)
					return
				}
				if len(ids) == 0 && len(done) == 0 {
					return
				}
				processed.Add(int64(len(done)))
				done = ids
			}
		})
	}
	wg.Wait()
	if got := processed.Load(); got != int64(b.N) {
		b.Fatalf("processed %d jobs, want %d", got, b.N)
	}
	p.stop()
}

// measuredRedis is a fresh redis-server, the round trips of its client and
// the server's CPU (clock ticks), for every benchmark that reports them.
func measuredRedis(b *testing.B) (*testinfra.RedisFixture, *testinfra.RoundTrips, func() uint64) {
	r := testinfra.Redis(b)
	rt := &testinfra.RoundTrips{}
	r.Client.AddHook(rt)
	pid := redisPID(b, r.Client)
	return r, rt, func() uint64 { return procTreeCPU(pid) }
}

// ceilingPG is a pool (20 connections) on a fresh database holding the
// ceiling_jobs table, the round trips of the pool and the server's CPU.
func ceilingPG(b *testing.B) (*pgxpool.Pool, *testinfra.RoundTrips, func() uint64) {
	f := testinfra.Postgres(b)
	rt := &testinfra.RoundTrips{}
	pool := tracedPool(b, f.PrimaryURL+"&pool_max_conns=20", rt)
	if _, err := pool.Exec(context.Background(), `
		CREATE TABLE ceiling_jobs (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			state smallint NOT NULL,
			lease_until timestamptz,
			payload bytea
		);
		CREATE INDEX ceiling_jobs_pending ON ceiling_jobs (id) WHERE state = 0`); err != nil {
		b.Fatal(err)
	}
	pid := postmasterPID(b, pool)
	return pool, rt, func() uint64 { return procTreeCPU(pid) }
}

// anys is ids as arguments.
func anys(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}
