package queuepg

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	b := newBackend(t, tracedPool(t, f, rt), Options{PollOnly: true, ReplanInterval: -1}) // PollOnly: no NOTIFY on the pool; the statements keep their text
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

// Enqueue is one statement on the pool, and EnqueueTx one statement in
// the caller's transaction (no BEGIN/COMMIT of its own, no SELECT now()),
// with or without a unique key or an id, a duplicate included; the notifier's
// NOTIFYs are not counted (PollOnly turns them off).
func TestEnqueueOneRoundTrip(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	rt := &testinfra.RoundTrips{}
	b := newBackend(t, tracedPool(t, f, rt), Options{PollOnly: true})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	enqueueTx := func(q string, o queue.EnqueueOptions) (string, error) {
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		rt.Reset()
		id, err := b.EnqueueTx(ctx, tx, q, "k", 1, o)
		if n := rt.Load(); n != 1 {
			t.Fatalf("EnqueueTx %+v took %d round trips inside the transaction, want 1", o, n)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return id, err
	}
	enqueue := func(q string, o queue.EnqueueOptions) (string, error) {
		rt.Reset()
		id, err := c.Enqueue(ctx, q, "k", 1, o)
		if n := rt.Load(); n != 1 {
			t.Fatalf("Enqueue %+v took %d round trips, want 1", o, n)
		}
		return id, err
	}
	again := func(q string, o queue.EnqueueOptions) (string, error) {
		rt.Reset()
		id, err := c.Enqueue(ctx, q, "k", 1, o)
		if n := rt.Load(); n > 3 { // the insert, then the lookup of the id's job (prepared once)
			t.Fatalf("Enqueue of the same job again took %d round trips, want at most 3", n)
		}
		return id, err
	}
	for name, enq := range map[string]func(string, queue.EnqueueOptions) (string, error){"Enqueue": enqueue, "EnqueueTx": enqueueTx} {
		// Warm: the statements (with and without a key) are prepared on
		// the pool's one connection.
		for _, o := range []queue.EnqueueOptions{{}, {UniqueKey: "warm"}} {
			if _, err := c.Enqueue(ctx, "warm", "k", 1, o); err != nil && !errors.Is(err, queue.ErrDuplicate) {
				t.Fatal(err)
			}
		}
		if _, err := enq("q-"+name, queue.EnqueueOptions{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		first, err := enq("q-"+name, queue.EnqueueOptions{UniqueKey: "u"})
		if err != nil {
			t.Fatalf("%s with a key: %v", name, err)
		}
		id, err := enq("q-"+name, queue.EnqueueOptions{UniqueKey: "u"})
		var d *queue.DuplicateError
		if !errors.As(err, &d) || d.ID != first || id != first {
			t.Fatalf("%s of a held key: %q %v, want a duplicate of %s", name, id, err, first)
		}
		if id, err := enq("q-"+name, queue.EnqueueOptions{ID: "x"}); err != nil || id != "x" {
			t.Fatalf("%s with an id: %q %v", name, id, err)
		}
		// The same job again (a retried enqueue that landed) is rare: its
		// conflict costs a lookup after the insert.
		if id, err := again("q-"+name, queue.EnqueueOptions{ID: "x"}); err != nil || id != "x" {
			t.Fatalf("%s of the same job again: %q %v, want x and no error", name, id, err)
		}
	}
}

// EnqueueTx counts the job's times from the transaction's now(): its
// start, not the local clock.
func TestEnqueueTxTimesFromTheTransaction(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{})
	tx, err := f.Primary.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var start time.Time
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&start); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the local clock moves on; the transaction's does not
	id, err := b.EnqueueTx(ctx, tx, "times", "k", nil, queue.EnqueueOptions{Delay: time.Minute, UniqueKey: "u", UniqueFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	at, err := b.EnqueueTx(ctx, tx, "times", "k", nil, queue.EnqueueOptions{RunAt: start.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := b.Job(ctx, "times", id)
	if err != nil {
		t.Fatal(err)
	}
	if !m.EnqueuedAt.Equal(start) || !m.RunAt.Equal(start.Add(time.Minute)) || !m.UniqueUntil.Equal(start.Add(time.Hour)) || m.State != queue.Scheduled {
		t.Fatalf("enqueued %v, run at %v, unique until %v, %s; want the transaction's start %v, +1m, +1h, scheduled",
			m.EnqueuedAt, m.RunAt, m.UniqueUntil, m.State, start)
	}
	if m, err := b.Job(ctx, "times", at); err != nil || !m.RunAt.Equal(start.Add(time.Hour)) {
		t.Fatalf("an explicit RunAt: %+v %v, want it kept", m, err)
	}
}

// Many goroutines enqueue jobs over a few unique keys, with Enqueue and
// EnqueueTx, some with explicit ids enqueued twice: each key has one
// holder, every duplicate names it, every same-id retry finds its job.
func TestEnqueueUniqueHammer(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	const goroutines, each, keys = 16, 30, 5
	var mu sync.Mutex
	holders := map[string]map[string]bool{} // key -> the ids that stored it or were named
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprint("k", (g+i)%keys)
				o := queue.EnqueueOptions{UniqueKey: key, UniqueWhileActive: i%2 == 0}
				if i%3 == 0 {
					o = queue.EnqueueOptions{ID: fmt.Sprintf("g%d-%d", g/2, i)} // two goroutines share each id
				}
				var id string
				var err error
				if g%2 == 0 {
					id, err = c.Enqueue(ctx, "hammer-u", "k", i, o)
				} else {
					err = pgx.BeginFunc(ctx, f.Primary, func(tx pgx.Tx) error {
						var err error
						id, err = b.EnqueueTx(ctx, tx, "hammer-u", "k", i, o)
						if errors.Is(err, queue.ErrDuplicate) {
							return nil // commit; keep the duplicate below
						}
						return err
					})
					if err == nil && o.UniqueKey != "" {
						m, _ := b.Job(ctx, "hammer-u", id)
						if m == nil {
							err = fmt.Errorf("EnqueueTx returned %s, which does not exist", id)
						}
					}
				}
				if err != nil && !errors.Is(err, queue.ErrDuplicate) {
					t.Errorf("goroutine %d, job %d (%+v): %v", g, i, o, err)
					return
				}
				if o.ID != "" && id != o.ID {
					t.Errorf("the same job %s again: got id %q", o.ID, id)
				}
				if o.UniqueKey != "" {
					mu.Lock()
					if holders[key] == nil {
						holders[key] = map[string]bool{}
					}
					holders[key][id] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	rows, err := f.Primary.Query(ctx, `SELECT unique_key, count(*) FROM queue_jobs WHERE queue = 'hammer-u' AND unique_key IS NOT NULL GROUP BY unique_key`)
	if err != nil {
		t.Fatal(err)
	}
	perKey, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		Key string
		N   int
	}])
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range perKey {
		if k.N != 1 || len(holders[k.Key]) != 1 {
			t.Fatalf("key %s: %d jobs stored, ids returned %v; want one holder named by every enqueue", k.Key, k.N, holders[k.Key])
		}
	}
	if len(perKey) != keys {
		t.Fatalf("%d keys stored, want %d", len(perKey), keys)
	}
	if n, _ := c.Counts(ctx, "hammer-u"); n.Pending != keys+goroutines/2*(each/3) {
		t.Fatalf("counts %+v, want %d pending: a job per key and per explicit id", n, keys+goroutines/2*(each/3))
	}
}

// An Enqueue that waits on a while-active hold a transaction is taking
// finds, once that transaction commits, the hold held: a duplicate naming
// the holder, not a second job under the key. The waiting statement's
// snapshot predates the commit, so it cannot see the holder's job; the
// hold was taken over when its job was not seen, and two jobs held the key
// (TestEnqueueUniqueHammer found it in CI).
func TestEnqueueUniqueWaitsForHolderCommit(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{Prefix: "uwait"})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	for _, many := range []bool{false, true} {
		key := fmt.Sprint("k-", many)
		o := queue.EnqueueOptions{UniqueKey: key, UniqueWhileActive: true}
		tx, err := f.Primary.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		holder, err := b.EnqueueTx(ctx, tx, "uw", "k", 1, o)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		var got string
		go func() {
			if many {
				res, err := c.EnqueueMany(ctx, queue.EnqueueRequest{Queue: "uw", Kind: "k", Args: 2, Options: o})
				if err == nil {
					got, err = res[0].ID, res[0].Err
				}
				done <- err
				return
			}
			var err error
			got, err = c.Enqueue(ctx, "uw", "k", 2, o)
			done <- err
		}()
		// The second enqueue waits on the hold's row lock.
		poll.Until(t, 10*time.Second, "the second enqueue waiting on the hold", func() bool {
			var n int
			_ = f.Primary.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%uwait_unique%'`).Scan(&n)
			return n > 0
		})
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		err = <-done
		var dup *queue.DuplicateError
		if !errors.As(err, &dup) || got != holder {
			t.Fatalf("many=%v: the enqueue that waited got id %q, %v; want a duplicate naming %s", many, got, err, holder)
		}
		var n int
		if err := f.Primary.QueryRow(ctx, `SELECT count(*) FROM uwait_jobs WHERE unique_key = $1`, key).Scan(&n); err != nil || n != 1 {
			t.Fatalf("many=%v: %d jobs hold %s (%v), want 1", many, n, key, err)
		}
	}
}
