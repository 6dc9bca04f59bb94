package queuepg

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// tracedBackend is a Backend on fixture f's database whose pool counts
// its round trips in rt.
func tracedBackend(t *testing.T, f *testinfra.PostgresFixture, rt *testinfra.RoundTrips) *Backend {
	t.Helper()
	cfg := f.Primary.Config().Copy()
	cfg.ConnConfig.Tracer = rt
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return newBackend(t, pool, Options{ReplanInterval: -1}) // the statements keep their text: counted round trips
}

// enqueueN enqueues n jobs in queue q.
func enqueueN(t *testing.T, b *Backend, q string, n int) {
	t.Helper()
	for i := range n {
		m, err := queue.NewMessage(time.Now(), q, "k", nil, queue.EnqueueOptions{ID: fmt.Sprintf("j%04d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// Completions and fetches of many goroutines share round trips: 16
// goroutines fetch and complete 600 jobs, each job is handed out and
// completed exactly once (the done counter equals the jobs), a second
// Complete of a lease is refused, and the rounds are fewer than the
// calls.
func TestLaneHammer(t *testing.T) {
	f := testinfra.Postgres(t)
	rt := &testinfra.RoundTrips{}
	b := tracedBackend(t, f, rt)
	ctx := context.Background()
	const jobs, goroutines = 600, 16
	q := "lane-hammer"
	enqueueN(t, b, q, jobs)
	before := rt.Load()
	var seen sync.Map
	var calls, handled atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			for handled.Load() < jobs {
				calls.Add(1)
				ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: q, Max: 4, Lease: time.Minute, Order: highFirst})
				if err != nil {
					errs <- err
					return
				}
				if len(ls) == 0 {
					continue // the others hold the rest
				}
				var cw sync.WaitGroup
				for _, l := range ls {
					if _, dup := seen.LoadOrStore(l.Msg.ID, true); dup {
						errs <- fmt.Errorf("job %s leased twice", l.Msg.ID)
						return
					}
					calls.Add(1)
					cw.Go(func() {
						if err := b.Complete(ctx, l, []byte(`"ok"`)); err != nil {
							errs <- fmt.Errorf("Complete %s: %w", l.Msg.ID, err)
						}
						handled.Add(1)
						if err := b.Complete(ctx, l, nil); !errors.Is(err, queue.ErrLeaseLost) {
							errs <- fmt.Errorf("second Complete of %s = %v, want ErrLeaseLost", l.Msg.ID, err)
						}
					})
				}
				cw.Wait()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c, err := b.Counts(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if c.Done != jobs || c.Pending != 0 || c.Active != 0 {
		t.Fatalf("counts %+v, want %d done and nothing else", c, jobs)
	}
	m, err := b.Job(ctx, q, "j0007")
	if err != nil || string(m.Output) != `"ok"` {
		t.Fatalf("job output %q, %v; want \"ok\"", m.Output, err)
	}
	trips := rt.Load() - before
	t.Logf("%d calls (fetches, completions and second completions not counted) in %d round trips", calls.Load(), trips)
	if trips >= calls.Load()+jobs {
		t.Fatalf("%d round trips for %d calls: nothing shared a round trip", trips, calls.Load()+jobs)
	}
}

// A busy queue's completions ride on the fetches: a worker of 8 handler
// slots processes 400 no-op jobs in well under one round trip per job.
func TestLaneWorkerRoundTrips(t *testing.T) {
	f := testinfra.Postgres(t)
	rt := &testinfra.RoundTrips{}
	b := tracedBackend(t, f, rt)
	ctx := context.Background()
	const jobs = 400
	q := "lane-worker"
	enqueueN(t, b, q, jobs)
	before := rt.Load()
	w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, FetchWait: 100 * time.Millisecond,
		Queues: map[string]queue.Options{q: {Concurrency: 8}}})
	if err != nil {
		t.Fatal(err)
	}
	var done atomic.Int64
	queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[any]) error { done.Add(1); return nil })
	w.Start(ctx)
	poll.Until(t, 30*time.Second, "every job handled", func() bool { return done.Load() == jobs })
	poll.Until(t, 30*time.Second, "every job done", func() bool {
		c, err := b.Counts(ctx, q)
		return err == nil && c.Done == jobs
	})
	trips := rt.Load() - before
	w.Shutdown(ctx)
	t.Logf("%d jobs in %d round trips (%.2f a job)", jobs, trips, float64(trips)/jobs)
	// Before lanes: a fetch per free slot batch plus a completion batch
	// per millisecond, about 0.4 a job at 8 workers.
	if trips > jobs/3 {
		t.Fatalf("%d round trips for %d jobs, want at most %d", trips, jobs, jobs/3)
	}
}

// With PostgreSQL paused, then stopped, while completions and fetches
// wait in a lane: every caller gets an answer within its timeout (an
// error), and once the database is back nothing is lost (every job ends
// done, the leases of the failed completions expiring and the jobs
// leased again) and nothing is completed twice (the done counter equals
// the jobs; the old leases' completions are refused).
func TestLaneDatabaseDown(t *testing.T) {
	for _, how := range []string{"paused", "stopped"} {
		t.Run(how, func(t *testing.T) {
			f := testinfra.PostgresExclusive(t)
			b := newBackend(t, f.Primary, Options{PollInterval: 50 * time.Millisecond})
			ctx := context.Background()
			const jobs = 20
			q := "lane-down"
			enqueueN(t, b, q, jobs)
			ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: q, Max: 10, Lease: 3 * time.Second, Order: highFirst})
			if err != nil || len(ls) != 10 {
				t.Fatalf("Fetch = %d leases, %v; want 10", len(ls), err)
			}
			switch how {
			case "paused":
				err = f.Cluster.Primary.Pause()
			default:
				err = f.Cluster.Primary.Stop(testinfra.StopFast)
			}
			if err != nil {
				t.Fatal(err)
			}
			const timeout = time.Second
			var wg sync.WaitGroup
			late := make(chan string, jobs+4)
			call := func(name string, do func(ctx context.Context) error) {
				wg.Go(func() {
					cctx, cancel := context.WithTimeout(ctx, timeout)
					defer cancel()
					start := time.Now()
					err := do(cctx)
					if took := time.Since(start); took > timeout+500*time.Millisecond {
						late <- fmt.Sprintf("%s answered after %v", name, took)
					}
					if err == nil {
						late <- name + " succeeded with the database " + how
					}
				})
			}
			for _, l := range ls {
				call("Complete "+l.Msg.ID, func(ctx context.Context) error { return b.Complete(ctx, l, nil) })
			}
			for range 4 {
				call("Fetch", func(ctx context.Context) error {
					_, err := b.Fetch(ctx, queue.FetchRequest{Queue: q, Max: 5, Lease: 3 * time.Second, Order: highFirst})
					return err
				})
			}
			wg.Wait()
			close(late)
			for s := range late {
				t.Error(s)
			}
			if how == "paused" {
				err = f.Cluster.Primary.Resume()
			} else {
				err = f.Cluster.Primary.Start(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			// Whether a completion sent before the pause took effect is
			// unknown to its caller; the ones that did not are leased
			// again once their leases expire. Run the queue dry.
			poll.Until(t, 60*time.Second, "every job done", func() bool {
				ls2, err := b.Fetch(ctx, queue.FetchRequest{Queue: q, Max: jobs, Lease: time.Minute, Order: highFirst})
				if err != nil {
					return false
				}
				for _, l := range ls2 {
					if err := b.Complete(ctx, l, nil); err != nil {
						t.Logf("Complete %s: %v", l.Msg.ID, err)
					}
				}
				c, err := b.Counts(ctx, q)
				return err == nil && c.Done == jobs && c.Active == 0 && c.Pending == 0
			})
			for _, l := range ls {
				if err := b.Complete(ctx, l, nil); !errors.Is(err, queue.ErrLeaseLost) {
					t.Fatalf("Complete of an old lease of %s = %v, want ErrLeaseLost", l.Msg.ID, err)
				}
			}
			var done int
			if err := f.Primary.QueryRow(ctx, `SELECT count(*) FROM queue_jobs WHERE queue = $1 AND state = 'done'`, q).Scan(&done); err != nil {
				t.Fatal(err)
			}
			if c, _ := b.Counts(ctx, q); done != jobs || c.Done != jobs {
				t.Fatalf("%d done rows, done counter %d; want %d each", done, c.Done, jobs)
			}
		})
	}
}

// A job that comes due below a fetch floor (here enqueued with a RunAt in
// the past after jobs were taken) is fetched first by a fetch the range
// above the floor does not fill, and within fetchFloorRounds fetches by
// fetches it does fill.
func TestFetchFindsJobsBelowTheFloor(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{Prefix: "floor"})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	const q = "floor"
	fetch := func(max int) []*queue.Lease {
		t.Helper()
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: q, Max: max, Lease: time.Minute, Order: highFirst})
		if err != nil {
			t.Fatal(err)
		}
		return ls
	}
	for i := range 4 {
		if _, err := c.Enqueue(ctx, q, "k", nil, queue.EnqueueOptions{ID: fmt.Sprint("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if ls := fetch(2); len(ls) != 2 || ls[0].Msg.ID != "a0" || ls[1].Msg.ID != "a1" {
		t.Fatalf("first fetch: %v", ids(ls))
	}
	// Below the floor (a1): due an hour ago.
	if _, err := c.Enqueue(ctx, q, "k", nil, queue.EnqueueOptions{ID: "old", RunAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ls := fetch(10); fmt.Sprint(ids(ls)) != "[old a2 a3]" {
		t.Fatalf("a fetch the range above the floor does not fill: %v, want [old a2 a3]", ids(ls))
	}

	// The range above the floor fills every fetch.
	for i := range 10 * fetchFloorRounds {
		if _, err := c.Enqueue(ctx, q, "k", nil, queue.EnqueueOptions{ID: fmt.Sprintf("b%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	fetch(1) // a floor in the b jobs
	if _, err := c.Enqueue(ctx, q, "k", nil, queue.EnqueueOptions{ID: "old2", RunAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if i > fetchFloorRounds {
			t.Fatalf("old2 not fetched in %d fetches", i)
		}
		if ls := fetch(1); ls[0].Msg.ID == "old2" {
			break
		}
	}
}

func ids(ls []*queue.Lease) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Msg.ID
	}
	return out
}

// A strict fetch (natsrelay's) takes a job that came due below the floor
// first, even while the range above fills every fetch: the floor would
// leave it for up to fetchFloorRounds fetches (as
// TestFetchFindsJobsBelowTheFloor shows), behind later jobs of its key.
func TestStrictFetchIgnoresTheFloor(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{Prefix: "strict"})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	const q = "strict"
	fetch := func(max int, strict bool) []*queue.Lease {
		t.Helper()
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: q, Max: max, Lease: time.Minute, Order: highFirst, Strict: strict})
		if err != nil {
			t.Fatal(err)
		}
		return ls
	}
	for i := range 50 {
		if _, err := c.Enqueue(ctx, q, "k", nil, queue.EnqueueOptions{ID: fmt.Sprintf("b%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	fetch(1, false) // a floor at b000
	fetch(1, false) // and b001: the round counter is past its reset
	if _, err := c.Enqueue(ctx, q, "k", nil, queue.EnqueueOptions{ID: "old", RunAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if ls := fetch(1, true); len(ls) != 1 || ls[0].Msg.ID != "old" {
		t.Fatalf("strict fetch: %v, want [old]", ids(ls))
	}
	if ls := fetch(1, true); len(ls) != 1 || ls[0].Msg.ID != "b002" {
		t.Fatalf("next strict fetch: %v, want [b002]", ids(ls))
	}
}
