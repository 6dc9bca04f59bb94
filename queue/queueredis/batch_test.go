package queueredis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// scriptCalls counts the scripts a client runs (EVALSHA and EVAL).
type scriptCalls struct{ n atomic.Int64 }

func (h *scriptCalls) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// enqueueN enqueues n jobs on queue q and leases them all (lease d).
func enqueueN(t *testing.T, b *Backend, q string, n int, d time.Duration) []*queue.Lease {
	t.Helper()
	ctx := context.Background()
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Clock: b.clk})
	for i := 0; i < n; i++ {
		if _, err := c.Enqueue(ctx, q, "k", i, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var ls []*queue.Lease
	for len(ls) < n {
		got, err := b.Fetch(ctx, queue.FetchRequest{Queue: q, Max: n - len(ls), Lease: d, Order: highFirst})
		if err != nil || len(got) == 0 {
			t.Fatalf("fetch: %d leases, %v", len(got), err)
		}
		ls = append(ls, got...)
	}
	return ls
}

// One round completes each job of its batch on its own: a lease taken
// over by another fetch is refused (ErrLeaseLost) while the others of
// the same script are stored, and the same lease twice in a batch is
// stored once and answered 1 twice (a retried call).
func TestRoundFencesEachJob(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	b := newBackend(t, Options{Client: r.Client, Clock: clk})
	ctx := context.Background()
	ls := enqueueN(t, b, "fence", 3, time.Minute)
	clk.Add(2 * time.Minute) // every lease runs out
	again, err := b.Fetch(ctx, queue.FetchRequest{Queue: "fence", Max: 1, Lease: time.Minute, Order: highFirst})
	if err != nil || len(again) != 1 {
		t.Fatal(again, err)
	}
	// again[0] took over one job; extend the others' leases back.
	var stale *queue.Lease
	var held []*queue.Lease
	for _, l := range ls {
		if l.Msg.ID == again[0].Msg.ID {
			stale = l
		}
	}
	if stale == nil {
		t.Fatalf("the refetched job %s is none of the leased ones", again[0].Msg.ID)
	}
	// The other two leases ran out too but nobody took them: re-lease them.
	rest, err := b.Fetch(ctx, queue.FetchRequest{Queue: "fence", Max: 2, Lease: time.Minute, Order: highFirst})
	if err != nil || len(rest) != 2 {
		t.Fatal(rest, err)
	}
	held = append(held, rest...)
	ln := b.lane("fence")
	batch := []*queue.Lease{held[0], stale, again[0], held[1], held[0]}
	cs := make([]*pendingComplete, len(batch))
	for i, l := range batch {
		cs[i] = &pendingComplete{ctx: ctx, l: l, output: []byte(fmt.Sprintf(`{"n":%d}`, i)), done: make(chan error, 1)}
	}
	b.round(ln, cs, nil)
	want := []error{nil, queue.ErrLeaseLost, nil, nil, nil}
	for i, p := range cs {
		if err := <-p.done; !errors.Is(err, want[i]) || (want[i] == nil && err != nil) {
			t.Errorf("completion %d (job %s): %v, want %v", i, batch[i].Msg.ID, err, want[i])
		}
	}
	for i, l := range []*queue.Lease{held[0], again[0], held[1]} {
		m, err := b.Job(ctx, "fence", l.Msg.ID)
		if err != nil || m.State != queue.Done {
			t.Fatalf("job %d after the round: %+v %v, want done", i, m, err)
		}
	}
	if m, _ := b.Job(ctx, "fence", held[0].Msg.ID); string(m.Output) != `{"n":0}` {
		t.Errorf("the lease completed twice in one batch stored output %s, want the first one's", m.Output)
	}
	if cnt, _ := b.Counts(ctx, "fence"); cnt.Done != 3 || cnt.Active != 0 {
		t.Fatalf("counts %+v, want 3 done", cnt)
	}
}

// Many goroutines complete at once (run with -race): every completion
// of a held lease succeeds, every completion of a lease taken over gets
// ErrLeaseLost, each job is done once, and the completions share
// scripts (fewer scripts than completions).
func TestConcurrentCompletions(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	calls := &scriptCalls{}
	client := redis.NewClient(&redis.Options{Addr: r.Addr(), ContextTimeoutEnabled: true, PoolSize: 64})
	defer client.Close()
	client.AddHook(calls)
	b := newBackend(t, Options{Client: client, Clock: clk})
	ctx := context.Background()
	const n = 600
	ls := enqueueN(t, b, "hammer", n, time.Minute)
	// A third of the jobs are taken over: their leases run out and
	// another fetch takes them. The others' leases are renewed first.
	for _, l := range ls[n/3:] {
		if err := b.Extend(ctx, l, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(2 * time.Minute)
	over, err := b.Fetch(ctx, queue.FetchRequest{Queue: "hammer", Max: n, Lease: time.Hour, Order: highFirst})
	if err != nil || len(over) != n/3 {
		t.Fatalf("taking over: %d leases, %v; want %d", len(over), err, n/3)
	}
	before := calls.n.Load()
	var (
		wg           sync.WaitGroup
		okN, lostN   atomic.Int64
		unexpected   atomic.Int64
		completeOnce = func(l *queue.Lease, wantLost bool) {
			defer wg.Done()
			err := b.Complete(ctx, l, nil)
			switch {
			case wantLost && errors.Is(err, queue.ErrLeaseLost):
				lostN.Add(1)
			case !wantLost && err == nil:
				okN.Add(1)
			default:
				unexpected.Add(1)
				t.Errorf("Complete of job %s (lease lost: %v): %v", l.Msg.ID, wantLost, err)
			}
		}
	)
	start := make(chan struct{})
	for i, l := range ls {
		wg.Add(1)
		go func() { <-start; completeOnce(l, i < n/3) }()
	}
	for _, l := range over {
		wg.Add(2) // twice: a retried call is answered as the first
		go func() { <-start; completeOnce(l, false) }()
		go func() { <-start; completeOnce(l, false) }()
	}
	close(start)
	wg.Wait()
	if lostN.Load() != n/3 || okN.Load() != n-n/3+2*n/3 || unexpected.Load() != 0 {
		t.Fatalf("%d completed, %d lease lost, %d unexpected", okN.Load(), lostN.Load(), unexpected.Load())
	}
	if cnt, err := b.Counts(ctx, "hammer"); err != nil || cnt.Done != n || cnt.Active != 0 || cnt.Pending != 0 {
		t.Fatalf("counts %+v %v, want %d done", cnt, err, n)
	}
	scripts := calls.n.Load() - before
	t.Logf("%d completions in %d scripts", n+n/3, scripts)
	if scripts >= int64(n+n/3) {
		t.Fatalf("%d completions took %d scripts: none were batched", n+n/3, scripts)
	}
}

// Redis paused (SIGSTOP) while a batch of completions is in flight and
// more wait behind it, or killed then (and restarted; AOF, appendfsync
// always): every Complete returns within about Timeout (with an error,
// or nil when it landed), nothing is lost
// and no job is completed twice: a worker then runs exactly the jobs
// whose completion did not land, once each.
func TestCompletionsWhenRedisFails(t *testing.T) {
	for _, mode := range []string{"pause", "restart"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			s, client := ownRedis(t, "--appendonly", "yes", "--appendfsync", "always")
			const timeout = 2 * time.Second // the window in which the test sees the round stuck
			b := newBackend(t, Options{Client: client, Timeout: timeout})
			const n = 64
			ls := enqueueN(t, b, "fail", n, 2*time.Second)
			pid, err := client.InfoMap(ctx, "server").Result()
			if err != nil {
				t.Fatal(err)
			}
			p, err := strconv.Atoi(pid["Server"]["process_id"])
			if err != nil {
				t.Fatal(pid, err)
			}
			var wg sync.WaitGroup
			var okN, errN atomic.Int64
			first, second := make(chan struct{}), make(chan struct{})
			for i, l := range ls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i < n/2 {
						<-first
					} else {
						<-second
					}
					t0 := time.Now()
					err := b.Complete(ctx, l, nil)
					if d := time.Since(t0); d > 2*timeout+time.Second {
						t.Errorf("Complete took %v with Timeout %v", d, timeout)
					}
					if err != nil {
						errN.Add(1)
					} else {
						okN.Add(1)
					}
				}()
			}
			// A round is in flight on the paused Redis (taken after the
			// pause: it cannot answer), then the second half waits
			// behind it.
			if err := s.Pause(); err != nil {
				t.Fatal(err)
			}
			ln := b.lane("fail")
			r0 := ln.Rounds() // the fetches' before
			close(first)
			waitFor(t, "a round in flight", func() bool { return ln.Rounds() > r0 })
			close(second)
			waitFor(t, "completions waiting behind it", func() bool { cs, _ := ln.Waiting(); return cs >= n/2 })
			switch mode {
			case "pause":
				wg.Wait()
				if err := s.Resume(); err != nil {
					t.Fatal(err)
				}
				if okN.Load() != 0 {
					t.Fatalf("%d completions succeeded on a paused Redis", okN.Load())
				}
			case "restart":
				// SIGKILL to its pid: scalekittest's Kill would resume it
				// first, and it would answer the round.
				if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				wg.Wait()
				if err := s.Kill(); err != nil { // reaps it
					t.Fatal(err)
				}
				if err := s.Start(ctx); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%s: %d completions succeeded, %d failed", mode, okN.Load(), errN.Load())
			waitFor(t, "Redis answers", func() bool { return client.Ping(ctx).Err() == nil })

			ran := drainQueue(t, b, "fail", n)
			for _, l := range ls {
				m, err := b.Job(ctx, "fail", l.Msg.ID)
				if err != nil || m.State != queue.Done {
					t.Fatalf("job %s: %+v %v", l.Msg.ID, m, err)
				}
				// Attempt 1: the batched completion landed (the worker
				// must not have run it); 2: it did not, the worker ran it once.
				switch {
				case ran[l.Msg.ID] > 1:
					t.Errorf("job %s ran %d times in the worker", l.Msg.ID, ran[l.Msg.ID])
				case m.Attempt == 1 && ran[l.Msg.ID] != 0, m.Attempt == 2 && ran[l.Msg.ID] != 1, m.Attempt > 2:
					t.Errorf("job %s: attempt %d, ran %d times in the worker", l.Msg.ID, m.Attempt, ran[l.Msg.ID])
				}
			}
			if got := int64(n - len(ran)); got < okN.Load() {
				t.Errorf("%d completions were acknowledged but only %d jobs were done before the worker", okN.Load(), got)
			}
		})
	}
}

// drainQueue runs a worker (Concurrency 8, leases of 1s) on queue q until
// n of its jobs are done, and returns how many times it ran each job (by
// id).
func drainQueue(t *testing.T, b *Backend, q string, n int64) map[string]int {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	ran := map[string]int{}
	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: b, FetchWait: 100 * time.Millisecond,
		Queues: map[string]queue.Options{q: {Concurrency: 8, Lease: time.Second}}})
	queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[int]) error {
		mu.Lock()
		ran[j.ID]++
		mu.Unlock()
		return nil
	})
	w.Start(ctx)
	waitFor(t, "every job done", func() bool { cnt, _ := b.Counts(ctx, q); return cnt.Done == n })
	w.Close()
	mu.Lock()
	defer mu.Unlock()
	return ran
}

// ownRedis starts a redis-server of the test's own with args (skipped
// when the binary is missing, unless servers are required) and a client
// of it; both end with the test.
func ownRedis(t *testing.T, args ...string) (*testinfra.RedisServer, *redis.Client) {
	t.Helper()
	s, err := testinfra.StartRedis(context.Background(), testinfra.RedisOptions{Args: args})
	if err != nil {
		if errors.Is(err, testinfra.ErrMissingBinary) && !testinfra.RequireServers() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	client := s.NewClient(0)
	t.Cleanup(func() { client.Close() })
	return s, client
}
