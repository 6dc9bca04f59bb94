package queuepg

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuetest"
)

// BenchmarkEnqueueTxConcurrent measures the user's write path with a job
// in it: 16 goroutines each run b.N/16 business transactions (an INSERT
// into a table of their own and EnqueueTx, committed with
// synchronous_commit on, as production runs), and it reports commits/s.
// A NOTIFY inside the transaction makes PostgreSQL serialise the commits
// (one global lock from pre-commit to the end of commit).
func BenchmarkEnqueueTxConcurrent(b *testing.B) {
	f := testinfra.Postgres(b)
	ctx := context.Background()
	be := newBackend(b, f.Primary, Options{})
	if _, err := f.Primary.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_orders (id bigserial PRIMARY KEY, note text)`); err != nil {
		b.Fatal(err)
	}
	const writers = 16
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.ResetTimer()
	start := time.Now()
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				err := pgx.BeginFunc(ctx, f.Primary, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
						return err
					}
					if _, err := tx.Exec(ctx, `INSERT INTO bench_orders (note) VALUES ('x')`); err != nil {
						return err
					}
					_, err := be.EnqueueTx(ctx, tx, "bench", "ship", map[string]int{"n": 1}, queue.EnqueueOptions{})
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "commits/s")
}

// BenchmarkCounts1M measures Counts on a queue of one million rows, as a
// long-running system has them: 990,000 done, 5,000 pending, 3,000
// scheduled, 2,000 dead (one INSERT ... SELECT generate_series, then
// VACUUM ANALYZE as autovacuum would). Building the table takes seconds,
// so it is a benchmark, out of the default go test run.
func BenchmarkCounts1M(b *testing.B) {
	f := testinfra.Postgres(b)
	ctx := context.Background()
	be := newBackend(b, f.Primary, Options{Prefix: "counts1m"})
	if _, err := f.Primary.Exec(ctx, `TRUNCATE counts1m_jobs`); err != nil {
		b.Fatal(err)
	}
	_, err := f.Primary.Exec(ctx, `INSERT INTO counts1m_jobs (queue, id, kind, payload, priority, state, max_attempts, run_at, enqueued_at, finished_at)
SELECT 'big', 'j' || i, 'k', '{}'::bytea, 0,
  CASE WHEN i <= 990000 THEN 'done' WHEN i <= 995000 THEN 'pending' WHEN i <= 998000 THEN 'scheduled' ELSE 'dead' END, 10,
  CASE WHEN i > 995000 AND i <= 998000 THEN now() + interval '1 hour' ELSE now() - interval '1 minute' END, now() - interval '1 hour',
  CASE WHEN i <= 990000 OR i > 998000 THEN now() - interval '30 minutes' END
FROM generate_series(1, 1000000) AS i`)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Primary.Exec(ctx, `VACUUM ANALYZE counts1m_jobs`); err != nil {
		b.Fatal(err)
	}
	// The done counter (when this version has one) is seeded from the
	// rows by Migrate, as on an upgrade.
	if _, err := f.Primary.Exec(ctx, `DROP TABLE IF EXISTS counts1m_counts`); err != nil {
		b.Fatal(err)
	}
	if err := be.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	c, err := be.Counts(ctx, "big")
	if err != nil || c.Done != 990000 || c.Pending != 5000 || c.Scheduled != 3000 || c.Dead != 2000 {
		b.Fatalf("counts %+v %v", c, err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := be.Counts(ctx, "big"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProgress is one progress write of a leased job per op: one
// fenced UPDATE of one row.
func BenchmarkProgress(b *testing.B) {
	f := testinfra.Postgres(b)
	queuetest.BenchProgress(b, newBackend(b, f.Primary, Options{}))
}

// BenchmarkPublish is one event per op to 3 subscriber queues: one
// INSERT ... SELECT from the subscriptions.
func BenchmarkPublish(b *testing.B) {
	f := testinfra.Postgres(b)
	queuetest.BenchPublish(b, newBackend(b, f.Primary, Options{}), 3)
}
