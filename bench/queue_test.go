package bench

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
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
// processing them all with 8 workers, and reports jobs/s: scalekit-pg and
// river on one real PostgreSQL (a database each), scalekit-redis and asynq
// on one real redis-server (flushed between them).
func BenchmarkQueueThroughput(b *testing.B) {
	ctx := context.Background()
	b.Run("scalekit-pg", func(b *testing.B) {
		f := testinfra.Postgres(b)
		be, err := queuepg.New(queuepg.Options{Pool: f.Primary})
		if err != nil {
			b.Fatal(err)
		}
		defer be.Close()
		if err := be.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		scalekitThroughput(b, be)
	})
	b.Run("scalekit-redis", func(b *testing.B) {
		r := testinfra.Redis(b)
		be, err := queueredis.New(queueredis.Options{Client: r.Client})
		if err != nil {
			b.Fatal(err)
		}
		scalekitThroughput(b, be)
	})
	b.Run("asynq", func(b *testing.B) {
		r := testinfra.Redis(b)
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
		srv := asynq.NewServerFromRedisClient(r.Client, asynq.Config{Concurrency: queueWorkers, LogLevel: asynq.FatalLevel,
			TaskCheckInterval: 100 * time.Millisecond})
		b.ResetTimer()
		start := time.Now()
		if err := srv.Start(mux); err != nil {
			b.Fatal(err)
		}
		<-all
		elapsed := time.Since(start)
		b.StopTimer()
		srv.Shutdown()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
	})
	b.Run("river", func(b *testing.B) {
		f := testinfra.Postgres(b)
		driver := riverpgxv5.New(f.Primary)
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
			Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: queueWorkers}},
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
		b.ResetTimer()
		start := time.Now()
		if err := client.Start(ctx); err != nil {
			b.Fatal(err)
		}
		<-all
		elapsed := time.Since(start)
		b.StopTimer()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		client.Stop(sctx)
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
	})
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
func scalekitThroughput(b *testing.B, be queue.Backend) {
	ctx := context.Background()
	c, _ := queue.NewClient(queue.ClientOptions{Backend: be})
	for i := 0; i < b.N; i++ {
		if _, err := c.Enqueue(ctx, "bench", "noop", nil, queue.EnqueueOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: be, FetchWait: 100 * time.Millisecond,
		Queues: map[string]queue.Options{"bench": {Concurrency: queueWorkers}}})
	var done atomic.Int64
	all := make(chan struct{})
	queue.Handle(w, "noop", func(ctx context.Context, j *queue.Job[any]) error {
		if done.Add(1) == int64(b.N) {
			close(all)
		}
		return nil
	})
	b.ResetTimer()
	start := time.Now()
	w.Start(ctx)
	<-all
	elapsed := time.Since(start)
	b.StopTimer()
	w.Shutdown(ctx)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
}
