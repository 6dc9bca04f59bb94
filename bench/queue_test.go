package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/queue/queueredis"
)

const queueWorkers = 8

// BenchmarkQueueThroughput: b.N no-op jobs are enqueued before the timer
// (river with InsertMany, the others one enqueue each); the timer measures
// processing them all with 8 workers, and reports jobs/s, the server's CPU
// per job (srv-µs/job: the PostgreSQL or Redis processes, from /proc) and
// the client's round trips per job: scalekit-pg and river on one real
// PostgreSQL (a database each), scalekit-redis and asynq on one real
// redis-server (flushed between them), each with 8 and with 32 workers
// (scalekit-redis/w8, asynq/w32, ...); scalekit-pg and river run 8
// workers, scalekit-pg/w32 and river/w32 32. scalekit-pg-history-1k and -100k
// first run that many jobs through the table (enqueued, leased, done, as
// a worker leaves them) and VACUUM it, as autovacuum does on queuepg's
// settings: the cost per job should not grow with the jobs kept.
// scalekit-pg-unvacuumed-100k skips the VACUUM: its fetches walk 100k
// dead index entries (the cost between two autovacuum runs).
func BenchmarkQueueThroughput(b *testing.B) {
	ctx := context.Background()
	pg := func(history int, vacuum bool, workers int) func(b *testing.B) {
		return func(b *testing.B) {
			f := testinfra.Postgres(b)
			rt := &testinfra.RoundTrips{}
			pool := tracedPool(b, f.PrimaryURL, rt)
			be, err := queuepg.New(queuepg.Options{Pool: pool})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			if err := be.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			if history > 0 {
				fillHistory(b, pool, history)
			}
			if vacuum {
				vacuumHistory(b, pool)
			}
			pid := postmasterPID(b, pool)
			scalekitThroughputN(b, be, workers, rt.Load, func() uint64 { return procTreeCPU(pid) })
		}
	}
	b.Run("scalekit-pg", pg(0, false, queueWorkers))
	b.Run("scalekit-pg/w32", pg(0, false, 32))
	b.Run("scalekit-pg-history-1k", pg(1_000, true, queueWorkers))
	b.Run("scalekit-pg-history-100k", pg(100_000, true, queueWorkers))
	b.Run("scalekit-pg-unvacuumed-100k", pg(100_000, false, queueWorkers))
	for _, workers := range []int{queueWorkers, 32} {
		w := fmt.Sprintf("w%d", workers)
		b.Run("scalekit-redis/"+w, func(b *testing.B) {
			r, rt, cpu, _ := redisInserter(b)
			be, err := queueredis.New(queueredis.Options{Client: r.Client})
			if err != nil {
				b.Fatal(err)
			}
			scalekitThroughputN(b, be, workers, rt.Load, cpu)
		})
		b.Run("asynq/"+w, func(b *testing.B) {
			r, rt, cpu, _ := redisInserter(b)
			client := asynq.NewClientFromRedisClient(r.Client)
			for i := 0; i < b.N; i++ {
				if _, err := client.Enqueue(asynq.NewTask("noop", nil)); err != nil {
					b.Fatal(err)
				}
			}
			var done atomic.Int64
			all := make(chan struct{})
			mux := asynq.NewServeMux()
			mux.HandleFunc("noop", func(ctx context.Context, t *asynq.Task) error {
				if done.Add(1) == int64(b.N) {
					close(all)
				}
				return nil
			})
			srv := asynq.NewServerFromRedisClient(r.Client, asynq.Config{Concurrency: workers, LogLevel: asynq.FatalLevel,
				TaskCheckInterval: 100 * time.Millisecond})
			m := startProcessing(b, rt.Load, cpu)
			if err := srv.Start(mux); err != nil {
				b.Fatal(err)
			}
			<-all
			m.stop()
			srv.Shutdown()
		})
	}
	riverRun := func(n int) func(b *testing.B) {
		return func(b *testing.B) {
			f := testinfra.Postgres(b)
			rt := &testinfra.RoundTrips{}
			pool := tracedPool(b, f.PrimaryURL, rt)
			driver := riverpgxv5.New(pool)
			m, err := rivermigrate.New(driver, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
				b.Fatal(err)
			}
			var done atomic.Int64
			all := make(chan struct{})
			workers := river.NewWorkers()
			river.AddWorker(workers, &noopRiver{done: &done, all: all, n: int64(b.N)})
			client, err := river.NewClient(driver, &river.Config{
				Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: n}},
				Workers:           workers,
				FetchCooldown:     time.Millisecond, // the default (100ms) caps river at MaxWorkers jobs per 100ms
				FetchPollInterval: 100 * time.Millisecond,
				Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				b.Fatal(err)
			}
			params := make([]river.InsertManyParams, b.N)
			for i := range params {
				params[i] = river.InsertManyParams{Args: noopArgs{}}
			}
			for len(params) > 0 {
				n := min(len(params), 10_000)
				if _, err := client.InsertMany(ctx, params[:n]); err != nil {
					b.Fatal(err)
				}
				params = params[n:]
			}
			pid := postmasterPID(b, pool)
			pm := startProcessing(b, rt.Load, func() uint64 { return procTreeCPU(pid) })
			if err := client.Start(ctx); err != nil {
				b.Fatal(err)
			}
			<-all
			pm.stop()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			client.Stop(sctx)
		}
	}
	b.Run("river", riverRun(queueWorkers))
	b.Run("river/w32", riverRun(32))
}

// processing measures a run of b.N jobs: from startProcessing, which
// starts the timer, to stop, which reports jobs/s, the server's CPU per
// job, round trips per job and this process's CPU per job (cli-µs/job).
type processing struct {
	b     *testing.B
	trips func() int64
	cpu   func() uint64
	t0    int64
	c0    uint64
	u0    int64
	start time.Time
}

func startProcessing(b *testing.B, trips func() int64, cpu func() uint64) *processing {
	p := &processing{b: b, trips: trips, cpu: cpu, t0: trips(), c0: cpu(), u0: selfCPU()}
	b.ResetTimer()
	p.start = time.Now()
	return p
}

func (p *processing) stop() {
	elapsed := time.Since(p.start)
	p.b.StopTimer()
	jobs := float64(p.b.N)
	p.b.ReportMetric(jobs/elapsed.Seconds(), "jobs/s")
	p.b.ReportMetric(float64(p.trips()-p.t0)/jobs, "trips/job")
	p.b.ReportMetric(float64(p.cpu()-p.c0)*1e6/clockTicks/jobs, "srv-µs/job")
	p.b.ReportMetric(float64(selfCPU()-p.u0)/1e3/jobs, "cli-µs/job")
}

// vacuumHistory vacuums queuepg's table until no dead row version is
// left, as autovacuum would in time: a VACUUM right after fillHistory
// often removes none, because the replica's hot_standby_feedback (sent
// every second) still holds back the horizon of the rows just updated,
// and the fetches would then walk the history's dead index entries (the
// unvacuumed case, measured on its own). It fails after 30s.
func vacuumHistory(b *testing.B, pool *pgxpool.Pool) {
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := pool.Exec(ctx, "VACUUM ANALYZE queue_jobs"); err != nil {
			b.Fatal(err)
		}
		var dead int64
		if err := pool.QueryRow(ctx, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'queue_jobs'").Scan(&dead); err != nil {
			b.Fatal(err)
		}
		if dead == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("queue_jobs still has %d dead row versions after 30s of VACUUM", dead)
		}
		time.Sleep(100 * time.Millisecond) // the next hot_standby_feedback
	}
}

// fillHistory runs n jobs through queuepg's table in queue "history" as a
// worker leaves them: enqueued, then leased (active), then done, in three
// statements, so the table and its indexes hold the dead versions a busy
// queue's history leaves until vacuum.
func fillHistory(b *testing.B, pool *pgxpool.Pool, n int) {
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO queue_jobs (queue, id, kind, payload, priority, state, max_attempts, run_at, enqueued_at)
		 SELECT 'bench', 'h' || i, 'noop', '\x', 1, 'pending', 25, now(), now() FROM generate_series(1, $1::int) i`,
		`UPDATE queue_jobs SET state = 'active', attempt = 1, token = id, lease_until = now() + interval '1 hour', started_at = now()
		 WHERE queue = 'bench' AND id LIKE 'h%'`,
		`UPDATE queue_jobs SET state = 'done', token = NULL, lease_until = NULL, finished_at = now()
		 WHERE queue = 'bench' AND id LIKE 'h%'`,
	} {
		args := []any{}
		if strings.Contains(q, "$1") {
			args = append(args, n)
		}
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			b.Fatal(err)
		}
	}
}

type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

type noopRiver struct {
	river.WorkerDefaults[noopArgs]
	done *atomic.Int64
	all  chan struct{}
	n    int64
}

func (w *noopRiver) Work(ctx context.Context, j *river.Job[noopArgs]) error {
	if w.done.Add(1) == w.n {
		close(w.all)
	}
	return nil
}

// scalekitThroughput enqueues b.N no-op jobs on be, then times 8 workers
// processing them.
func scalekitThroughput(b *testing.B, be queue.Backend, trips func() int64, cpu func() uint64) {
	scalekitThroughputN(b, be, queueWorkers, trips, cpu)
}

// scalekitThroughputN is scalekitThroughput with that many workers (the
// queue's Concurrency).
func scalekitThroughputN(b *testing.B, be queue.Backend, workers int, trips func() int64, cpu func() uint64) {
	ctx := context.Background()
	c, _ := queue.NewClient(queue.ClientOptions{Backend: be})
	for i := 0; i < b.N; i++ {
		if _, err := c.Enqueue(ctx, "bench", "noop", nil, queue.EnqueueOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: be, FetchWait: 100 * time.Millisecond,
		Queues: map[string]queue.Options{"bench": {Concurrency: workers}}})
	var done atomic.Int64
	all := make(chan struct{})
	queue.Handle(w, "noop", func(ctx context.Context, j *queue.Job[any]) error {
		if done.Add(1) == int64(b.N) {
			close(all)
		}
		return nil
	})
	p := startProcessing(b, trips, cpu)
	w.Start(ctx)
	<-all
	p.stop()
	w.Shutdown(ctx)
}
