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
