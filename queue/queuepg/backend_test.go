package queuepg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuetest"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(queuetest.CrashEnv); url != "" {
		os.Exit(queuetest.CrashWorker(crashBackend(url)))
	}
	if url := os.Getenv(queuetest.FleetEnv); url != "" {
		os.Exit(queuetest.FleetProcess(crashBackend(url)))
	}
	testinfra.Main(m)
}

// highFirst is the fetch order of the tests: High, Default, Low.
var highFirst = [3]queue.Priority{queue.High, queue.Default, queue.Low}

func newBackend(t testing.TB, pool *pgxpool.Pool, o Options) *Backend {
	t.Helper()
	o.Pool = pool
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	f := testinfra.Postgres(t)
	queuetest.Run(t, func(t *testing.T, clk clock.Clock) queue.Backend {
		return txBackend{newBackend(t, f.Primary, Options{Clock: clk}), f.Primary}
	})
}

func TestWorkers(t *testing.T) {
	f := testinfra.Postgres(t)
	queuetest.RunWorker(t, func(t *testing.T) queue.Backend { return newBackend(t, f.Primary, Options{}) })
}

// A job enqueued in a rolled-back transaction does not exist; one
// enqueued in a committed transaction is processed, with the business row.
func TestEnqueueTx(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{})
	if _, err := f.Primary.Exec(ctx, `CREATE TABLE users (id int PRIMARY KEY, email text)`); err != nil {
		t.Fatal(err)
	}
	signup := func(id int, commit bool) string {
		tx, err := f.Primary.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `INSERT INTO users VALUES ($1, $2)`, id, fmt.Sprintf("u%d@example.com", id)); err != nil {
			t.Fatal(err)
		}
		jobID, err := b.EnqueueTx(ctx, tx, "emails", "welcome", map[string]int{"user": id}, queue.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return jobID
	}
	rolledBack := signup(1, false)
	committed := signup(2, true)
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	if _, err := c.Job(ctx, "emails", rolledBack); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("the rolled-back transaction's job: %v, want ErrNotFound", err)
	}
	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"emails": {}}})
	sent := make(chan int, 2)
	queue.Handle(w, "welcome", func(ctx context.Context, j *queue.Job[map[string]int]) error { sent <- j.Args["user"]; return nil })
	w.Start(ctx)
	defer w.Close()
	select {
	case u := <-sent:
		if u != 2 {
			t.Fatalf("processed the job of user %d, want 2", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the committed job was not processed")
	}
	poll.Until(t, 5*time.Second, "the committed job done", func() bool {
		m, _ := c.Job(ctx, "emails", committed)
		return m != nil && m.State == queue.Done
	})
	if cnt, _ := c.Counts(ctx, "emails"); cnt.Done != 1 || cnt.Pending+cnt.Active+cnt.Scheduled != 0 {
		t.Fatalf("counts %+v, want exactly the committed job, done", cnt)
	}
}

// A waiting Fetch wakes on the NOTIFY of an enqueue from another
// connection instead of sleeping out its wait: with a 30s PollInterval,
// only the NOTIFY can deliver the job within the test's 10s.
func TestNotifyWakesFetch(t *testing.T) {
	f := testinfra.Postgres(t)
	const pollEvery = 30 * time.Second
	b := newBackend(t, f.Primary, Options{PollInterval: pollEvery})
	other := newBackend(t, f.Primary, Options{})
	ctx := context.Background()
	type result struct {
		ls  []*queue.Lease
		err error
		at  time.Time
	}
	got := make(chan result, 1)
	go func() {
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "wake", Max: 1, Lease: time.Minute, Wait: time.Minute, Order: highFirst})
		got <- result{ls, err, time.Now()}
	}()
	// The fetch found nothing and waits, and the listener is in LISTEN:
	// the enqueue below can reach it only by its NOTIFY.
	poll.Until(t, 20*time.Second, "the fetch waiting and the listener listening", func() bool {
		return b.idle.Load() >= 1 && b.listening.Load()
	})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: other})
	enqueued := time.Now()
	if _, err := c.Enqueue(ctx, "wake", "k", nil, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-got:
		if res.err != nil || len(res.ls) != 1 {
			t.Fatalf("woken fetch got %v %v, want the job", res.ls, res.err)
		}
		if d := res.at.Sub(enqueued); d >= pollEvery/3 {
			t.Fatalf("the fetch returned %v after the enqueue: not woken by the NOTIFY", d)
		} else {
			t.Logf("woken %v after the enqueue (poll every %v)", d, pollEvery)
		}
	case <-time.After(pollEvery / 3):
		t.Fatalf("the waiting fetch was not woken within %v of the enqueue (it polls every %v): NOTIFY did not reach it", pollEvery/3, pollEvery)
	}
}

// TestCrashedWorker is queuetest.RunCrash; the jobs leased at the kill
// are read from the jobs table.
func TestCrashedWorker(t *testing.T) {
	f := testinfra.Postgres(t)
	b := newBackend(t, f.Primary, Options{})
	queuetest.RunCrash(t, b, f.PrimaryURL, func(ctx context.Context) ([]string, error) {
		rows, err := f.Primary.Query(ctx, `SELECT id FROM queue_jobs WHERE queue = 'crash' AND state = 'active'`)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	})
}

// crashBackend is the crash test's child backend, on the database at url.
func crashBackend(url string) queue.Backend {
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		panic(err)
	}
	b, err := New(Options{Pool: pool})
	if err != nil {
		panic(err)
	}
	return b
}

func TestBadOptions(t *testing.T) {
	f := testinfra.Postgres(t)
	for _, o := range []Options{{}, {Pool: f.Primary, Prefix: "Bad-Prefix"}, {Pool: f.Primary, Retention: -1}, {Pool: f.Primary, PollInterval: -1}} {
		if _, err := New(o); !errors.Is(err, queue.ErrInvalid) {
			t.Errorf("New(%+v) = %v", o, err)
		}
	}
}

// EnqueueTx sends no NOTIFY from the caller's transaction (PostgreSQL
// would serialise its commit with every other notifying commit): the
// backend notifies from its own connection once the transaction
// committed, and not at all for one rolled back.
func TestEnqueueTxNotifiesAfterCommit(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{})
	listener, err := pgx.Connect(ctx, f.PrimaryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, `LISTEN queue_jobs`); err != nil {
		t.Fatal(err)
	}
	// The business transactions run on a connection of their own, out of
	// the backend's pool: a NOTIFY from that session can only be one sent
	// inside them.
	user, err := pgx.Connect(ctx, f.PrimaryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close(ctx)
	enqueue := func(queueName string, commit bool) uint32 {
		tx, err := user.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var pid uint32
		if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := b.EnqueueTx(ctx, tx, queueName, "k", nil, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return pid
	}
	enqueue("txrolledback", false)
	pid := enqueue("txcommitted", true)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		n, err := listener.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("no NOTIFY for the committed transaction's queue within 10s: %v", err)
		}
		switch n.Payload {
		case "txrolledback":
			t.Fatal("a NOTIFY for the job of a rolled-back transaction")
		case "txcommitted":
			if n.PID == pid {
				t.Fatalf("the NOTIFY came from the enqueuing transaction's session (pid %d): it held PostgreSQL's notify lock through its commit", pid)
			}
			return
		}
	}
}

// With PollOnly (PgBouncer in transaction mode) nothing LISTENs and
// nothing is notified: a waiting Fetch finds a new job at its next poll.
func TestPollOnly(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{PollOnly: true, PollInterval: 50 * time.Millisecond})
	got := make(chan []*queue.Lease, 1)
	go func() {
		ls, _ := b.Fetch(ctx, queue.FetchRequest{Queue: "pollonly", Max: 1, Lease: time.Minute, Wait: 20 * time.Second, Order: highFirst})
		got <- ls
	}()
	poll.Until(t, 20*time.Second, "the fetch waiting", func() bool { return b.idle.Load() >= 1 })
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	if _, err := c.Enqueue(ctx, "pollonly", "k", nil, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ls := <-got:
		if len(ls) != 1 {
			t.Fatalf("fetch got %d jobs, want 1", len(ls))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a poll-only fetch did not find the job")
	}
	if b.listening.Load() {
		t.Fatal("a poll-only backend started a listener")
	}
	b.nmu.Lock()
	notifying := b.notifying
	b.nmu.Unlock()
	if notifying {
		t.Fatal("a poll-only backend started the notifier")
	}
}

// Counts does not read the queue's done rows (the metrics collector runs
// it on every scrape): with 100,000 done jobs it touches a handful of
// blocks of the jobs table, heap and indexes together. Its done count
// follows completions, Delete and Sweep.
func TestCountsDoesNotScanDoneJobs(t *testing.T) {
	ctx := context.Background()
	pool := testinfra.Postgres(t).OneConnPool(t) // the block counters it flushes (tableBlocks) are the ones read
	b := newBackend(t, pool, Options{Prefix: "countscan"})
	if _, err := pool.Exec(ctx, `INSERT INTO countscan_jobs (queue, id, kind, payload, priority, state, max_attempts, run_at, enqueued_at, finished_at)
SELECT 'big', 'd' || i, 'k', '{}'::bytea, 0, 'done', 10, now(), now(), now() FROM generate_series(1, 100000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DROP TABLE countscan_counts`); err != nil {
		t.Fatal(err)
	}
	if err := b.Migrate(ctx); err != nil { // seeds the counter from the rows, as on an upgrade
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE countscan_jobs`); err != nil {
		t.Fatal(err)
	}
	blocks := func() int64 { return tableBlocks(t, pool, "countscan_jobs") }
	before := blocks()
	cnt, err := b.Counts(ctx, "big")
	if err != nil || cnt.Done != 100000 {
		t.Fatalf("counts %+v %v, want 100000 done", cnt, err)
	}
	if used := blocks() - before; used > 100 {
		t.Fatalf("Counts touched %d blocks of the jobs table with 100,000 done jobs: it scans them", used)
	} else {
		t.Logf("Counts touched %d blocks", used)
	}
	// The done count follows completions, Delete and Sweep.
	cl, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	for i := 0; i < 3; i++ {
		if _, err := cl.Enqueue(ctx, "big", "k", nil, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "big", Max: 3, Lease: time.Minute, Order: highFirst})
	if err != nil || len(ls) != 3 {
		t.Fatal(ls, err)
	}
	for _, l := range ls {
		if err := b.Complete(ctx, l, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Delete(ctx, "big", "d1"); err != nil {
		t.Fatal(err)
	}
	if cnt, _ := b.Counts(ctx, "big"); cnt.Done != 100002 {
		t.Fatalf("done after 3 completions and 1 Delete: %d, want 100002", cnt.Done)
	}
	if _, err := pool.Exec(ctx, `UPDATE countscan_jobs SET finished_at = now() - interval '2 days' WHERE id LIKE 'd%'`); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Sweep(ctx); err != nil || n != 99999 {
		t.Fatalf("Sweep deleted %d %v, want the 99999 old done jobs", n, err)
	}
	if cnt, _ := b.Counts(ctx, "big"); cnt.Done != 3 {
		t.Fatalf("done after the sweep: %d, want 3", cnt.Done)
	}
}

// tableBlocks is how many blocks of table (heap and indexes) the
// database read or found in its buffers so far.
func tableBlocks(t *testing.T, pool *pgxpool.Pool, table string) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	var n int64
	err := pool.QueryRow(ctx, `SELECT coalesce(heap_blks_read, 0) + coalesce(heap_blks_hit, 0) + coalesce(idx_blks_read, 0) + coalesce(idx_blks_hit, 0)
FROM pg_statio_user_tables WHERE relname = $1`, table).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Many concurrent business transactions enqueue with EnqueueTx, a third
// of them rolled back, while one consumer waits with a 30s PollInterval:
// every committed job reaches it through the notifier's NOTIFYs, no
// rolled-back one exists.
func TestEnqueueTxHammer(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{PollInterval: 30 * time.Second})
	const writers, each = 16, 12
	var mu sync.Mutex
	committed, rolledBack, fetched := map[string]bool{}, map[string]bool{}, map[string]bool{}
	cctx, stop := context.WithCancel(ctx)
	consumerDone := make(chan error, 1)
	go func() {
		for {
			// A wait longer than the test: only NOTIFYs bring jobs in time.
			ls, err := b.Fetch(cctx, queue.FetchRequest{Queue: "hammer", Max: 50, Lease: time.Minute, Wait: time.Minute, Order: highFirst})
			if cctx.Err() != nil {
				consumerDone <- nil
				return
			}
			if err != nil {
				consumerDone <- err
				return
			}
			mu.Lock()
			for _, l := range ls {
				fetched[l.Msg.ID] = true
			}
			mu.Unlock()
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				tx, err := f.Primary.Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				id, err := b.EnqueueTx(ctx, tx, "hammer", "k", map[string]int{"g": g, "i": i}, queue.EnqueueOptions{})
				if err != nil {
					tx.Rollback(ctx)
					t.Error(err)
					return
				}
				commit := i%3 != 0
				if commit {
					err = tx.Commit(ctx)
				} else {
					err = tx.Rollback(ctx)
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if commit {
					committed[id] = true
				} else {
					rolledBack[id] = true
				}
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	poll.Until(t, 25*time.Second, "every committed job fetched", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(fetched) >= len(committed)
	})
	stop()
	if err := <-consumerDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for id := range fetched {
		if rolledBack[id] || !committed[id] {
			t.Fatalf("fetched job %s that no committed transaction enqueued", id)
		}
	}
	if len(committed) != writers*each*2/3 {
		t.Fatalf("%d committed, want %d", len(committed), writers*each*2/3)
	}
}

// Enqueues and waiting fetches racing with Close neither panic nor leave
// a notifier or listener running; after Close, enqueues still work (the
// workers poll).
func TestCloseRacesEnqueue(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	for round := 0; round < 5; round++ {
		b, err := New(Options{Pool: f.Primary})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					if _, err := c.Enqueue(ctx, "closing", "k", nil, queue.EnqueueOptions{}); err != nil {
						t.Error(err)
						return
					}
					fctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
					b.Fetch(fctx, queue.FetchRequest{Queue: "closing-empty", Max: 1, Lease: time.Minute, Wait: time.Millisecond, Order: highFirst})
					cancel()
				}
			}()
		}
		b.Close()
		wg.Wait()
		b.Close()
		queued := func() int {
			b.nmu.Lock()
			defer b.nmu.Unlock()
			return len(b.dirty) + len(b.pending)
		}
		before := queued()
		tx, err := f.Primary.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.EnqueueTx(ctx, tx, "closing", "k", nil, queue.EnqueueOptions{}); err != nil {
			t.Fatalf("EnqueueTx after Close: %v", err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Enqueue(ctx, "closing", "k", nil, queue.EnqueueOptions{}); err != nil {
			t.Fatalf("Enqueue after Close: %v", err)
		}
		if after := queued(); after != before {
			t.Fatalf("enqueues after Close queued %d notifications for a notifier that no longer runs", after-before)
		}
	}
}

// TestMigrateAddsTheNewColumns: Migrate upgrades a jobs table made by
// the version before snoozes, progress and outputs, keeping its jobs,
// which then snooze, report progress and complete with an output.
func TestMigrateAddsTheNewColumns(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("upg%d", time.Now().UnixNano())
	_, err := f.Primary.Exec(ctx, `CREATE TABLE `+prefix+`_jobs (
  queue text NOT NULL, id text NOT NULL, kind text NOT NULL, payload bytea NOT NULL, priority smallint NOT NULL,
  state text NOT NULL, attempt int NOT NULL DEFAULT 0, max_attempts int NOT NULL, run_at timestamptz NOT NULL,
  timeout_ms bigint NOT NULL DEFAULT 0, unique_key text, unique_until timestamptz, enqueued_at timestamptz NOT NULL,
  last_error text NOT NULL DEFAULT '', finished_at timestamptz, token text, lease_until timestamptz,
  unique_active bool NOT NULL DEFAULT false, PRIMARY KEY (queue, id));
INSERT INTO `+prefix+`_jobs (queue, id, kind, payload, priority, state, max_attempts, run_at, enqueued_at)
VALUES ('q', 'old', 'k', '{}', 0, 'pending', 3, now(), now())`)
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, f.Primary, Options{Prefix: prefix})
	m, err := b.Job(ctx, "q", "old")
	if err != nil || m.Snoozes != 0 || m.Progress != (queue.Progress{}) || m.Output != nil || !m.StartedAt.IsZero() {
		t.Fatalf("the old job after Migrate: %+v %v", m, err)
	}
	fetch := func() *queue.Lease {
		t.Helper()
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "q", Max: 1, Lease: time.Minute, Order: highFirst})
		if err != nil || len(ls) != 1 {
			t.Fatalf("fetch %v %v", ls, err)
		}
		return ls[0]
	}
	if err := b.Release(ctx, fetch(), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	l := fetch()
	if err := b.Progress(ctx, l, 30, "a third"); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(ctx, l, []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	m, err = b.Job(ctx, "q", "old")
	if err != nil || m.State != queue.Done || m.Attempt != 1 || m.Snoozes != 1 || m.Progress.Percent != 30 || string(m.Output) != `{"ok":true}` || m.StartedAt.IsZero() {
		t.Fatalf("the old job once done: %+v %v", m, err)
	}
}

// TestPeriodicFleet is queuetest.RunPeriodicFleet: three processes, one
// schedule, each tick's job run exactly once.
func TestPeriodicFleet(t *testing.T) {
	f := testinfra.Postgres(t)
	queuetest.RunPeriodicFleet(t, newBackend(t, f.Primary, Options{}), f.PrimaryURL)
}

// Instances starting at once migrate at once: every Migrate succeeds (they
// deadlocked, SQLSTATE 40P01, or raced on CREATE ... IF NOT EXISTS before
// Migrate took an advisory lock), and the tables work.
func TestConcurrentMigrate(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	for round := range 3 {
		prefix := fmt.Sprintf("cm%d", round)
		errs := make(chan error, 8)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				b, err := New(Options{Pool: f.Primary, Prefix: prefix})
				if err != nil {
					errs <- err
					return
				}
				defer b.Close()
				errs <- b.Migrate(ctx)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		b := newBackend(t, f.Primary, Options{Prefix: prefix})
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		if _, err := c.Enqueue(ctx, "q", "k", nil, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}
