package queuepg

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// tracedPool is a pool on f's primary whose statements rt counts.
func tracedPool(t *testing.T, f *testinfra.PostgresFixture, rt *testinfra.RoundTrips) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(f.PrimaryURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = rt
	cfg.MaxConns = 1 // one connection: its statement cache is warm after the first batch
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func jobBatch(q string, n int, o queue.EnqueueOptions) []queue.EnqueueRequest {
	out := make([]queue.EnqueueRequest, n)
	for i := range out {
		out[i] = queue.EnqueueRequest{Queue: q, Kind: "k", Args: i, Options: o}
	}
	return out
}

// EnqueueMany of 1,000 jobs, with unique keys and a duplicate, is one
// round trip, on the pool and inside the caller's transaction.
func TestEnqueueManyOneRoundTrip(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	rt := &testinfra.RoundTrips{}
	b := newBackend(t, tracedPool(t, f, rt), Options{PollOnly: true}) // PollOnly: no NOTIFY on the pool
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	if _, err := c.EnqueueMany(ctx, jobBatch("warm", 2, queue.EnqueueOptions{})...); err != nil { // prepares the statement
		t.Fatal(err)
	}
	jobs := jobBatch("q", 1000, queue.EnqueueOptions{})
	for i := range jobs {
		jobs[i].Options.UniqueKey = fmt.Sprint("u", i%999) // the last one is a duplicate of the first
	}
	rt.Reset()
	res, err := c.EnqueueMany(ctx, jobs...)
	if err != nil || !errors.Is(res[999].Err, queue.ErrDuplicate) || res[999].ID != res[0].ID || res[998].Err != nil {
		t.Fatalf("EnqueueMany: %v, last results %+v", err, res[998:])
	}
	if n := rt.Load(); n != 1 {
		t.Fatalf("EnqueueMany of 1,000 jobs took %d round trips, want 1", n)
	}
	for _, commit := range []bool{false, true} {
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rt.Reset()
		res, err := b.EnqueueManyTx(ctx, tx, jobBatch("tx", 500, queue.EnqueueOptions{})...)
		if n := rt.Load(); err != nil || n != 1 || len(res) != 500 {
			t.Fatalf("EnqueueManyTx: %d results, %v, %d round trips, want 500, 1", len(res), err, n)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Job(ctx, "tx", res[0].ID)
		if commit != (err == nil) {
			t.Fatalf("commit %v: the batch's job: %v", commit, err)
		}
	}
	if cnt, _ := c.Counts(ctx, "tx"); cnt.Pending != 500 {
		t.Fatalf("counts %+v, want the committed batch only", cnt)
	}
	if _, err := b.EnqueueManyTx(ctx, nil, queue.EnqueueRequest{Queue: "tx", Kind: "bad kind"}); !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("a bad job: %v, want ErrInvalid before anything is sent", err)
	}
}

// Workers waiting on a queue are woken after an EnqueueMany, and after
// an EnqueueManyTx commits, by the NOTIFY (they poll only every 30s).
func TestEnqueueManyNotifies(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{PollInterval: 30 * time.Second})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	for _, inTx := range []bool{false, true} {
		q := fmt.Sprint("woken-", inTx)
		idle := b.idle.Load()
		got := make(chan int, 1)
		go func() {
			ls, _ := b.Fetch(ctx, queue.FetchRequest{Queue: q, Max: 10, Lease: time.Minute, Wait: time.Minute, Order: highFirst})
			got <- len(ls)
		}()
		poll.Until(t, 20*time.Second, "the fetch waiting and the listener listening", func() bool {
			return b.idle.Load() > idle && b.listening.Load()
		})
		var err error
		if inTx {
			err = pgx.BeginFunc(ctx, f.Primary, func(tx pgx.Tx) error {
				_, err := b.EnqueueManyTx(ctx, tx, jobBatch(q, 3, queue.EnqueueOptions{})...)
				return err
			})
		} else {
			_, err = c.EnqueueMany(ctx, jobBatch(q, 3, queue.EnqueueOptions{})...)
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-got:
			if n != 3 {
				t.Fatalf("in a transaction %v: the waiting fetch got %d jobs, want the 3 of the batch", inTx, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("in a transaction %v: the waiting fetch was not woken by the batch", inTx)
		}
	}
}

// A batch that meets a transaction committing the same job id, or the
// same unique key, while its statement runs (it waits for that
// transaction's row, which its snapshot does not show) settles those jobs
// with a look after the statement: the same job is found, the key's
// holder named.
func TestEnqueueManyRacesACommit(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	for _, sameKey := range []bool{false, true} {
		q := fmt.Sprint("race-", sameKey)
		o := queue.EnqueueOptions{ID: "x"}
		if sameKey {
			o = queue.EnqueueOptions{UniqueKey: "k"}
		}
		tx, err := f.Primary.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first, err := b.EnqueueManyTx(ctx, tx, queue.EnqueueRequest{Queue: q, Kind: "k", Args: 1, Options: o})
		if err != nil || first[0].Err != nil {
			t.Fatalf("EnqueueManyTx: %v %+v", err, first)
		}
		done := make(chan []queue.EnqueueResult, 1)
		go func() {
			res, err := c.EnqueueMany(ctx, queue.EnqueueRequest{Queue: q, Kind: "k", Args: 1, Options: o},
				queue.EnqueueRequest{Queue: q, Kind: "other", Args: 2})
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		poll.Until(t, 10*time.Second, "the batch waiting for the transaction's row", func() bool {
			var n int
			_ = f.Primary.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
			return n > 0
		})
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		res := <-done
		if len(res) != 2 || res[1].Err != nil {
			t.Fatalf("same key %v: %+v", sameKey, res)
		}
		if sameKey {
			var d *queue.DuplicateError
			if !errors.As(res[0].Err, &d) || d.ID != first[0].ID || res[0].ID != first[0].ID {
				t.Fatalf("the same key: %+v, want a duplicate of %s", res[0], first[0].ID)
			}
		} else if res[0].Err != nil || res[0].ID != "x" {
			t.Fatalf("the same job: %+v, want x and no error", res[0])
		}
		if cnt, _ := c.Counts(ctx, q); cnt.Pending != 2 {
			t.Fatalf("same key %v: counts %+v, want the transaction's job and the batch's other", sameKey, cnt)
		}
	}
}
