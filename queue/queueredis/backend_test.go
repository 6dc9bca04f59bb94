package queueredis

import (
	"context"
	"errors"
	"fmt"
	"github.com/scalekit-go/scalekit/internal/testlog"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuetest"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(queuetest.CrashEnv); addr != "" {
		os.Exit(queuetest.CrashWorker(crashBackend(addr)))
	}
	if addr := os.Getenv(queuetest.FleetEnv); addr != "" {
		os.Exit(queuetest.FleetProcess(crashBackend(addr)))
	}
	testinfra.Main(m)
}

// newBackend is New for tests, with testinfra.CallTimeout unless set.
// highFirst is the fetch order of the tests: High, Default, Low.
var highFirst = [3]queue.Priority{queue.High, queue.Default, queue.Low}

func newBackend(t testing.TB, o Options) *Backend {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = testinfra.CallTimeout
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformanceStandalone(t *testing.T) {
	r := testinfra.Redis(t)
	queuetest.Run(t, func(t *testing.T, clk clock.Clock) queue.Backend {
		return newBackend(t, Options{Client: r.Client, Clock: clk})
	})
}

func TestConformanceCluster(t *testing.T) {
	c := testinfra.RedisCluster(t)
	queuetest.Run(t, func(t *testing.T, clk clock.Clock) queue.Backend {
		return newBackend(t, Options{Client: c.Client, Prefix: c.Prefix + "queue", Clock: clk})
	})
}

func TestWorkersStandalone(t *testing.T) {
	r := testinfra.Redis(t)
	queuetest.RunWorker(t, func(t *testing.T) queue.Backend { return newBackend(t, Options{Client: r.Client}) })
}

func TestWorkersCluster(t *testing.T) {
	c := testinfra.RedisCluster(t)
	queuetest.RunWorker(t, func(t *testing.T) queue.Backend {
		return newBackend(t, Options{Client: c.Client, Prefix: c.Prefix + "queue"})
	})
}

// The keys of one queue share the hash tag {prefix:queue}: a job hash
// with readable fields, a ready list per priority, ZSETs by time.
func TestKeyLayout(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	b := newBackend(t, Options{Client: r.Client, Clock: clk})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Clock: clk})
	ctx := context.Background()
	now, _ := c.Enqueue(ctx, "emails", "welcome", map[string]int{"user": 7}, queue.EnqueueOptions{Priority: queue.High, UniqueKey: "u7"})
	later, _ := c.Enqueue(ctx, "emails", "digest", nil, queue.EnqueueOptions{Delay: time.Minute})
	job, err := r.Client.HGetAll(ctx, "{queue:emails}:job:"+now).Result()
	if err != nil || job["kind"] != "welcome" || job["payload"] != `{"user":7}` || job["state"] != "pending" ||
		job["priority"] != "1" || job["run_at"] != fmt.Sprint(clk.Now().UnixMicro()) || job["max_attempts"] != "10" {
		t.Fatalf("job hash %v %v", job, err)
	}
	if ids, _ := r.Client.LRange(ctx, "{queue:emails}:ready:high", 0, -1).Result(); len(ids) != 1 || ids[0] != now {
		t.Fatalf("ready:high = %v, want [%s]", ids, now)
	}
	if z, _ := r.Client.ZRangeWithScores(ctx, "{queue:emails}:scheduled", 0, -1).Result(); len(z) != 1 || z[0].Member != later ||
		int64(z[0].Score) != clk.Now().Add(time.Minute).UnixMicro() {
		t.Fatalf("scheduled = %v, want %s at now+1m (µs)", z, later)
	}
	if h, _ := r.Client.HGet(ctx, "{queue:emails}:unique:u7", "id").Result(); h != now {
		t.Fatalf("unique hold names %q, want %s", h, now)
	}
	ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "emails", Max: 5, Lease: 30 * time.Second, Order: highFirst})
	if err != nil || len(ls) != 1 {
		t.Fatalf("fetch %v %v", ls, err)
	}
	if s, _ := r.Client.ZScore(ctx, "{queue:emails}:active", now).Result(); int64(s) != clk.Now().Add(30*time.Second).UnixMicro() ||
		!ls[0].Until.Equal(clk.Now().Add(30*time.Second)) {
		t.Fatalf("active score %v, lease until %v: want the lease deadline", s, ls[0].Until)
	}
	if err := b.Complete(ctx, ls[0], nil); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := r.Client.PTTL(ctx, "{queue:emails}:job:"+now).Result(); ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("done job TTL %v, want the 24h retention", ttl)
	}
	if ids, _ := r.Client.ZRangeWithScores(ctx, "{queue:emails}:ids", 0, -1).Result(); len(ids) != 2 || ids[0].Score != 0 || ids[1].Score != 0 {
		t.Fatalf("ids = %v, want both jobs' ids at score 0", ids)
	}
	keys, _ := r.Client.Keys(ctx, "*").Result()
	for _, k := range keys {
		// The set of queue names is the prefix's own, outside every queue's.
		if !strings.HasPrefix(k, "{queue:emails}:") && k != "{queue}:queues" {
			t.Fatalf("key %q outside the queue's hash tag", k)
		}
	}
	if qs, _ := r.Client.SMembers(ctx, "{queue}:queues").Result(); len(qs) != 1 || qs[0] != "emails" {
		t.Fatalf("the set of queue names = %v, want [emails]", qs)
	}
}

// Done jobs are dropped once Retention has passed (on the backend's
// clock); dead jobs stay.
func TestRetention(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	b := newBackend(t, Options{Client: r.Client, Clock: clk, Retention: time.Hour})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Clock: clk})
	ctx := context.Background()
	done, _ := c.Enqueue(ctx, "q", "k", nil, queue.EnqueueOptions{})
	dead, _ := c.Enqueue(ctx, "q", "k", nil, queue.EnqueueOptions{})
	ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "q", Max: 2, Lease: time.Minute, Order: highFirst})
	if err != nil || len(ls) != 2 {
		t.Fatal(ls, err)
	}
	if err := b.Complete(ctx, ls[0], nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Fail(ctx, ls[1], "bad", time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	if cnt, _ := c.Counts(ctx, "q"); cnt.Done != 1 || cnt.Dead != 1 {
		t.Fatalf("at the retention: %+v, want the done job still counted", cnt)
	}
	clk.Add(time.Second)
	if cnt, _ := c.Counts(ctx, "q"); cnt.Done != 0 || cnt.Dead != 1 {
		t.Fatalf("past the retention: %+v, want 0 done, 1 dead", cnt)
	}
	if _, err := b.Fetch(ctx, queue.FetchRequest{Queue: "q", Max: 1, Lease: time.Minute, Order: highFirst}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Job(ctx, "q", done); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("done job past the retention: %v, want ErrNotFound", err)
	}
	if m, err := c.Job(ctx, "q", dead); err != nil || m.State != queue.Dead || m.LastError != "bad" {
		t.Fatalf("dead job: %+v %v", m, err)
	}
	if n, _ := r.Client.ZCard(ctx, "{queue:q}:done").Result(); n != 0 {
		t.Fatalf("done ZSET holds %d entries after the sweep", n)
	}
	if ids, _ := r.Client.ZRange(ctx, "{queue:q}:ids", 0, -1).Result(); len(ids) != 1 || ids[0] != dead {
		t.Fatalf("ids = %v after the sweep, want only the dead job", ids)
	}
}

// go-redis may run a script twice (it retries after some network errors
// and read timeouts): the same Enqueue, Complete or Fail again succeeds
// without a second effect, while the fence still refuses other leases.
func TestRetriedCallsAreSafe(t *testing.T) {
	r := testinfra.Redis(t)
	b := newBackend(t, Options{Client: r.Client})
	ctx := context.Background()
	m, err := queue.NewMessage(time.Now(), "again", "k", 1, queue.EnqueueOptions{UniqueKey: "u"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := b.Enqueue(ctx, m); err != nil {
			t.Fatalf("Enqueue #%d of the same message: %v", i+1, err)
		}
	}
	other := *m
	other.ID, other.Payload = "other", []byte("2")
	if err := b.Enqueue(ctx, &other); !errors.Is(err, queue.ErrDuplicate) {
		t.Fatalf("another message with the unique key: %v, want ErrDuplicate", err)
	}
	other.ID, other.UniqueKey = m.ID, ""
	if err := b.Enqueue(ctx, &other); !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("another message with a used id: %v, want ErrInvalid", err)
	}
	if cnt, _ := b.Counts(ctx, "again"); cnt.Pending != 1 {
		t.Fatalf("counts %+v, want one job", cnt)
	}
	fetch := func() *queue.Lease {
		t.Helper()
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "again", Max: 1, Lease: time.Minute, Order: highFirst})
		if err != nil || len(ls) != 1 {
			t.Fatalf("fetch %v %v", ls, err)
		}
		return ls[0]
	}
	l := fetch()
	if err := b.Release(ctx, l, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(ctx, l, nil); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("Complete after Release: %v, want ErrLeaseLost", err)
	}
	l = fetch()
	if err := b.Fail(ctx, l, "boom", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Fail(ctx, l, "boom", time.Time{}, false); err != nil {
		t.Fatalf("the same Fail again: %v", err)
	}
	if err := b.Complete(ctx, l, nil); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("Complete of a failed lease: %v, want ErrLeaseLost", err)
	}
	l2 := fetch()
	if l2.Msg.Attempt != 2 {
		t.Fatalf("after one failure: attempt %d, want 2", l2.Msg.Attempt)
	}
	if err := b.Fail(ctx, l, "boom", time.Time{}, false); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("the old lease's Fail once the job is leased again: %v, want ErrLeaseLost", err)
	}
	for i := 0; i < 2; i++ {
		if err := b.Complete(ctx, l2, nil); err != nil {
			t.Fatalf("Complete #%d of the same lease: %v", i+1, err)
		}
	}
	if cnt, _ := b.Counts(ctx, "again"); cnt.Done != 1 || cnt.Pending+cnt.Active+cnt.Retry != 0 {
		t.Fatalf("counts %+v, want the job done once", cnt)
	}
}

// A Fetch waiting on an empty queue wakes when another client enqueues,
// long before its 1s re-check.
func TestFetchWaitWakesOnEnqueue(t *testing.T) {
	r := testinfra.Redis(t)
	b := newBackend(t, Options{Client: r.Client})
	other := r.Server.NewClient(0)
	defer other.Close()
	producer, _ := queue.NewClient(queue.ClientOptions{Backend: newBackend(t, Options{Client: other})})
	ctx := context.Background()
	type result struct {
		ls  []*queue.Lease
		err error
		at  time.Time
	}
	got := make(chan result, 1)
	go func() {
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "wake", Max: 1, Lease: time.Minute, Wait: 30 * time.Second, Order: highFirst})
		got <- result{ls, err, time.Now()}
	}()
	time.Sleep(150 * time.Millisecond) // the fetch is blocked in XREAD
	enqueued := time.Now()
	if _, err := producer.Enqueue(ctx, "wake", "k", nil, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-got:
		if res.err != nil || len(res.ls) != 1 {
			t.Fatalf("woken fetch: %v %v", res.ls, res.err)
		}
		if d := res.at.Sub(enqueued); d > 600*time.Millisecond {
			t.Fatalf("the fetch took %v after the enqueue: it slept to its re-check instead of waking", d)
		} else {
			t.Logf("woken %v after the enqueue", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting fetch did not return")
	}
}

// A waiting Fetch returns a delayed job when it becomes due, and returns
// at once when its ctx is cancelled.
func TestFetchWaitDueAndCancel(t *testing.T) {
	r := testinfra.Redis(t)
	b := newBackend(t, Options{Client: r.Client})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, "due", "k", nil, queue.EnqueueOptions{Delay: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "due", Max: 1, Lease: time.Minute, Wait: 10 * time.Second, Order: highFirst})
	if err != nil || len(ls) != 1 {
		t.Fatalf("fetch %v %v", ls, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Fatalf("the job delayed 300ms came after %v", d)
	}

	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = b.Fetch(cctx, queue.FetchRequest{Queue: "empty", Max: 1, Lease: time.Minute, Wait: 10 * time.Second, Order: highFirst})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled fetch: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("a fetch cancelled after 100ms returned after %v", d)
	}
	if ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "due", Max: 1, Lease: time.Minute, Order: highFirst}); err != nil || len(ls) != 0 {
		t.Fatalf("Wait 0 on a queue with nothing due: %v %v", ls, err)
	}
}

// Two workers on two clients share a queue with waiting fetches: every
// job runs exactly once.
func TestTwoWorkersShareAQueue(t *testing.T) {
	r := testinfra.Redis(t)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[int]int{}
	var workers []*queue.Worker
	for i := 0; i < 2; i++ {
		cl := r.Server.NewClient(0)
		defer cl.Close()
		w, err := queue.NewWorker(queue.WorkerOptions{Backend: newBackend(t, Options{Client: cl}), FetchWait: 200 * time.Millisecond,
			Queues: map[string]queue.Options{"shared": {Concurrency: 4}}})
		if err != nil {
			t.Fatal(err)
		}
		queue.Handle(w, "n", func(ctx context.Context, j *queue.Job[int]) error {
			mu.Lock()
			seen[j.Args]++
			mu.Unlock()
			return nil
		})
		w.Start(ctx)
		defer w.Close()
		workers = append(workers, w)
	}
	c, _ := queue.NewClient(queue.ClientOptions{Backend: newBackend(t, Options{Client: r.Client})})
	const n = 300
	for i := 0; i < n; i++ {
		o := queue.EnqueueOptions{Priority: queue.Priority(i % 3)}
		if i%10 == 0 {
			o.Delay = 50 * time.Millisecond
		}
		if _, err := c.Enqueue(ctx, "shared", "n", i, o); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every job done", func() bool { cnt, _ := c.Counts(ctx, "shared"); return cnt.Done == n })
	mu.Lock()
	defer mu.Unlock()
	for i := 0; i < n; i++ {
		if seen[i] != 1 {
			t.Fatalf("job %d ran %d times", i, seen[i])
		}
	}
	t.Logf("worker 0 ran %d, worker 1 ran %d", workers[0].Stats()[0].Processed, workers[1].Stats()[0].Processed)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 20*time.Second, what, cond)
}

// logBuffer is a concurrency-safe sink for a worker's logs.
type logBuffer = testlog.Buffer

// Redis stops under a running worker: Enqueue fails within Timeout, the
// worker logs its failed fetches and keeps trying, and once Redis is back
// (empty: the test server keeps nothing on disk) jobs enqueued afterwards
// are processed.
func TestRedisDown(t *testing.T) {
	r := testinfra.Redis(t)
	const timeout = 300 * time.Millisecond
	b := newBackend(t, Options{Client: r.Client, Timeout: timeout})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	logs := &logBuffer{}
	w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, FetchWait: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Queues: map[string]queue.Options{"down": {Concurrency: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan int, 10)
	queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[int]) error { ran <- j.Args; return nil })
	ctx := context.Background()
	w.Start(ctx)
	defer w.Close()
	receive := func(want int) {
		t.Helper()
		select {
		case got := <-ran:
			if got != want {
				t.Fatalf("ran job %d, want %d", got, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("job %d did not run within 20s; logs:\n%s", want, logs.String())
		}
	}
	if _, err := c.Enqueue(ctx, "down", "k", 1, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	receive(1)
	// Its completion may share a round trip with the worker's next fetch:
	// wait for it to land before Redis stops (or it fails with the fetch,
	// and the job, gone with the restart, is never done).
	waitFor(t, "job 1 recorded as processed", func() bool { return w.Stats()[0].Processed == 1 })

	r.Stop()
	start := time.Now()
	_, err = c.Enqueue(ctx, "down", "k", 2, queue.EnqueueOptions{})
	if err == nil {
		t.Fatal("Enqueue with Redis down succeeded")
	}
	if d := time.Since(start); d > timeout+200*time.Millisecond {
		t.Fatalf("Enqueue with Redis down took %v, Timeout is %v", d, timeout)
	}
	t.Logf("Enqueue with Redis down: %v after %v", err, time.Since(start))
	waitFor(t, "the worker logs at least 2 failed fetches", func() bool { return logs.Count("queue: fetch failed") >= 2 })

	r.Start()
	waitFor(t, "Enqueue succeeds again", func() bool {
		_, err := c.Enqueue(ctx, "down", "k", 3, queue.EnqueueOptions{})
		return err == nil
	})
	receive(3)
	t.Logf("the worker logged %d failed fetches while Redis was down", logs.Count("queue: fetch failed"))
	waitFor(t, "both jobs recorded as processed", func() bool { return w.Stats()[0].Processed == 2 })
}

// A paused Redis (connections open, no answers) costs each call at most
// Timeout.
func TestPausedRedis(t *testing.T) {
	r := testinfra.Redis(t)
	const timeout = 200 * time.Millisecond
	b := newBackend(t, Options{Client: r.Client, Timeout: timeout})
	ctx := context.Background()
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	if _, err := c.Enqueue(ctx, "p", "k", nil, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	defer r.Resume()
	for name, call := range map[string]func() error{
		"Enqueue": func() error { _, err := c.Enqueue(ctx, "p", "k", nil, queue.EnqueueOptions{}); return err },
		"Fetch": func() error {
			_, err := b.Fetch(ctx, queue.FetchRequest{Queue: "p", Max: 1, Lease: time.Minute, Wait: time.Second, Order: highFirst})
			return err
		},
		"Counts": func() error { _, err := c.Counts(ctx, "p"); return err },
		"List":   func() error { _, err := c.List(ctx, queue.ListRequest{Queue: "p"}); return err },
		// The first enqueue to a queue adds it to the set of names first.
		"Enqueue to a new queue": func() error { _, err := c.Enqueue(ctx, "p2", "k", nil, queue.EnqueueOptions{}); return err },
		"Queues":                 func() error { _, err := c.Queues(ctx); return err },
	} {
		start := time.Now()
		err := call()
		d := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "did not answer within") {
			t.Fatalf("%s on a paused Redis: %v, want a timeout error", name, err)
		}
		if d > timeout+300*time.Millisecond {
			t.Fatalf("%s on a paused Redis took %v, Timeout is %v", name, d, timeout)
		}
	}
}

// With persistence (AOF, appendfsync always), a Redis killed with SIGKILL
// and restarted keeps every job in its state, leases included, and a
// worker then finishes them all.
func TestRestartWithPersistence(t *testing.T) {
	ctx := context.Background()
	s, client := ownRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	var err error
	b := newBackend(t, Options{Client: client})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	const n = 50
	ids := make([]string, n)
	for i := range ids {
		o := queue.EnqueueOptions{}
		if i%5 == 0 {
			o.Delay = 200 * time.Millisecond
		}
		if ids[i], err = c.Enqueue(ctx, "durable", "k", i, o); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "durable", Max: 10, Lease: time.Second, Order: highFirst})
	if err != nil || len(ls) != 10 {
		t.Fatal(ls, err)
	}
	for _, l := range ls[:5] {
		if err := b.Complete(ctx, l, nil); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := c.Counts(ctx, "durable")
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Redis answers after the restart", func() bool { return client.Ping(ctx).Err() == nil })
	after, err := c.Counts(ctx, "durable")
	if err != nil || after.Done != before.Done || after.Active+after.Pending+after.Scheduled != before.Active+before.Pending+before.Scheduled {
		t.Fatalf("after SIGKILL and restart: %+v %v, before %+v", after, err, before)
	}
	t.Logf("before the kill %+v; after the restart %+v", before, after)

	ran := drainQueue(t, b, "durable", n)
	for i, id := range ids {
		if m, err := c.Job(ctx, "durable", id); err != nil || m.State != queue.Done {
			t.Fatalf("job %d after the restart: %+v %v", i, m, err)
		}
	}
	if len(ran) != n-5 {
		t.Fatalf("the worker ran %d distinct jobs, want the %d not completed before the kill", len(ran), n-5)
	}
}

// A full Redis (maxmemory, noeviction) refuses new jobs with its OOM
// error, whole (no partial write), while workers still lease and finish
// every job already queued.
func TestFullRedis(t *testing.T) {
	ctx := context.Background()
	_, client := ownRedis(t, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
	b := newBackend(t, Options{Client: client})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	payload := strings.Repeat("x", 32<<10)
	var ids []string
	for len(ids) < 1000 {
		id, err := c.Enqueue(ctx, "full", "k", payload, queue.EnqueueOptions{})
		if err != nil {
			if !strings.Contains(err.Error(), "OOM") {
				t.Fatalf("Enqueue on a full Redis: %v, want the OOM error", err)
			}
			if _, err := c.Job(ctx, "full", id); id != "" || err == nil {
				t.Fatalf("the refused Enqueue left job %q behind", id)
			}
			break
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 || len(ids) == 1000 {
		t.Fatalf("%d jobs enqueued before Redis was full", len(ids))
	}
	if cnt, err := c.Counts(ctx, "full"); err != nil || cnt.Pending != int64(len(ids)) {
		t.Fatalf("counts on a full Redis: %+v %v, want %d pending", cnt, err, len(ids))
	}
	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: b, FetchWait: 100 * time.Millisecond,
		Queues: map[string]queue.Options{"full": {Concurrency: 4}}})
	queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[string]) error { return nil })
	w.Start(ctx)
	defer w.Close()
	waitFor(t, "the queued jobs done", func() bool { cnt, _ := c.Counts(ctx, "full"); return cnt.Done == int64(len(ids)) })
	t.Logf("Redis full after %d jobs of 32KiB; a worker finished them all", len(ids))
}

// TestCrashedWorker is queuetest.RunCrash; the jobs leased at the kill
// are read from the active ZSET.
func TestCrashedWorker(t *testing.T) {
	r := testinfra.Redis(t)
	b := newBackend(t, Options{Client: r.Client})
	queuetest.RunCrash(t, b, r.Addr(), func(ctx context.Context) ([]string, error) {
		return r.Client.ZRange(ctx, "{queue:crash}:active", 0, -1).Result()
	})
}

// crashBackend is the crash test's child backend, on the Redis at addr.
func crashBackend(addr string) queue.Backend {
	b, err := New(Options{Client: redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true}), Timeout: 2 * time.Second})
	if err != nil {
		panic(err)
	}
	return b
}

func TestBadOptions(t *testing.T) {
	r := testinfra.Redis(t)
	plain := redis.NewClient(&redis.Options{Addr: r.Addr()}) // ContextTimeoutEnabled false, ReadTimeout 3s
	defer plain.Close()
	for _, c := range []struct {
		o     Options
		field string
	}{
		{Options{}, "Options.Client"},
		{Options{Client: r.Client, Prefix: "a{b}"}, "Options.Prefix"},
		{Options{Client: r.Client, Timeout: -1}, "Options.Timeout"},
		{Options{Client: r.Client, Retention: -time.Hour}, "Options.Retention"},
		{Options{Client: plain}, "Options.Client"},
	} {
		_, err := New(c.o)
		if !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), c.field) || !strings.HasPrefix(err.Error(), "queue: invalid: queueredis: ") {
			t.Errorf("New(%+v) = %v, want ErrInvalid naming %s", c.o, err, c.field)
		}
	}
	b := newBackend(t, Options{Client: r.Client})
	ctx := context.Background()
	for _, fr := range []queue.FetchRequest{{Queue: "q", Max: 0, Lease: time.Second}, {Queue: "q", Max: 1}} {
		if _, err := b.Fetch(ctx, fr); !errors.Is(err, queue.ErrInvalid) {
			t.Errorf("Fetch(%+v) = %v, want ErrInvalid", fr, err)
		}
	}
	if err := b.Enqueue(ctx, &queue.Message{Queue: "bad{tag}", ID: "x"}); !errors.Is(err, queue.ErrInvalid) {
		t.Errorf("Enqueue to a queue named with braces: %v", err)
	}
}

// A while-active unique hold is a hash without TTL, deleted when its job
// finishes: Redis keeps no hold of a finished job.
func TestUniqueWhileActiveHoldIsDeleted(t *testing.T) {
	r := testinfra.Redis(t)
	b := newBackend(t, Options{Client: r.Client})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	for _, dead := range []bool{false, true} {
		if _, err := c.Enqueue(ctx, "wa", "k", nil, queue.EnqueueOptions{UniqueKey: "u", UniqueWhileActive: true}); err != nil {
			t.Fatal(err)
		}
		if ttl, _ := r.Client.PTTL(ctx, "{queue:wa}:unique:u").Result(); ttl != -1 {
			t.Fatalf("while-active hold TTL %v, want none (-1)", ttl)
		}
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "wa", Max: 1, Lease: time.Minute, Order: highFirst})
		if err != nil || len(ls) != 1 {
			t.Fatal(ls, err)
		}
		if dead {
			err = b.Fail(ctx, ls[0], "x", time.Time{}, true)
		} else {
			err = b.Complete(ctx, ls[0], nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := r.Client.Exists(ctx, "{queue:wa}:unique:u").Result(); n != 0 {
			t.Fatalf("the hold of a finished job (dead=%v) is still in Redis", dead)
		}
	}
}

// TestPeriodicFleet is queuetest.RunPeriodicFleet: three processes, one
// schedule, each tick's job run exactly once.
func TestPeriodicFleet(t *testing.T) {
	r := testinfra.Redis(t)
	queuetest.RunPeriodicFleet(t, newBackend(t, Options{Client: r.Client}), r.Addr())
}
