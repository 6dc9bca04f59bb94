package queue

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// A worker whose lease is lost (here: the backend's clock jumps past it
// and another consumer takes the job) cancels its handler and records
// nothing: the job belongs to the new holder.
func TestLostLeaseCancelsTheHandler(t *testing.T) {
	clk := testclock.New()
	b := NewMemoryBackend(MemoryBackendOptions{Clock: clk})
	c, _ := NewClient(ClientOptions{Backend: b, Clock: clk})
	ctx := context.Background()
	id, _ := c.Enqueue(ctx, "q", "slow", nil, EnqueueOptions{})
	w, err := NewWorker(WorkerOptions{Backend: b, Clock: clk, FetchWait: 10 * time.Millisecond, Queues: map[string]Options{"q": {Lease: 60 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	running, cancelled := make(chan struct{}), make(chan struct{})
	Handle(w, "slow", func(ctx context.Context, j *Job[any]) error {
		close(running)
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	})
	w.Start(ctx)
	defer w.Close()
	<-running
	clk.Add(time.Hour)
	stolen, err := b.Fetch(ctx, FetchRequest{Queue: "q", Max: 1, Lease: time.Hour, Order: fetchOrder(0)})
	if err != nil || len(stolen) != 1 || stolen[0].Msg.ID != id {
		t.Fatalf("taking the expired job: %v %v", stolen, err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was not cancelled after its lease was lost")
	}
	poll.Until(t, 5*time.Second, "the lost lease counted", func() bool { return w.Stats()[0].Lost != 0 })
	if st := w.Stats()[0]; st.Lost != 1 || st.Processed != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v: want the lost lease counted and no outcome recorded", st)
	}
	if m, _ := c.Job(ctx, "q", id); m.State != Active || m.Attempt != 2 {
		t.Fatalf("the job %+v, want it active under its new holder", m)
	}
}

// A queue's rate limit spaces its jobs across the worker.
func TestRateLimitedQueue(t *testing.T) {
	lim, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 20, Burst: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	b := NewMemoryBackend(MemoryBackendOptions{})
	c, _ := NewClient(ClientOptions{Backend: b})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		c.Enqueue(ctx, "mail", "send", nil, EnqueueOptions{})
	}
	w, _ := NewWorker(WorkerOptions{Backend: b, FetchWait: 10 * time.Millisecond, Queues: map[string]Options{"mail": {Concurrency: 5, Limiter: lim}}})
	var times []time.Time
	done := make(chan struct{}, 5)
	Handle(w, "send", func(ctx context.Context, j *Job[any]) error {
		done <- struct{}{}
		return nil
	})
	start := time.Now()
	w.Start(ctx)
	defer w.Close()
	for i := 0; i < 5; i++ {
		<-done
		times = append(times, time.Now())
	}
	// 5 jobs at 20/s burst 1 need at least 4 intervals of 50ms: the
	// limiter, not the clock of this test, decides; assert the order of
	// magnitude only.
	if d := times[4].Sub(start); d < 150*time.Millisecond {
		t.Fatalf("5 jobs at 20/s took %v, want the limit to space them (>= 200ms)", d)
	}
}

func TestWorkerOptions(t *testing.T) {
	b := NewMemoryBackend(MemoryBackendOptions{})
	for _, c := range []struct {
		o    WorkerOptions
		want string
	}{
		{WorkerOptions{}, "Backend is required"},
		{WorkerOptions{Backend: b}, "at least one queue"},
		{WorkerOptions{Backend: b, Queues: map[string]Options{"q": {Concurrency: -1}}}, `Queues["q"].Concurrency`},
		{WorkerOptions{Backend: b, Queues: map[string]Options{"q": {Lease: time.Millisecond}}}, `Queues["q"].Lease`},
		{WorkerOptions{Backend: b, Queues: map[string]Options{"bad name": {}}}, "bad name"},
		{WorkerOptions{Backend: b, Queues: map[string]Options{"q": {}}, MaxOutput: -1}, "MaxOutput"},
	} {
		if _, err := NewWorker(c.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewWorker: %v, want ErrInvalid saying %q", err, c.want)
		}
	}
	w, _ := NewWorker(WorkerOptions{Backend: b, Queues: map[string]Options{"q": {}}})
	if err := Handle(w, "k", func(ctx context.Context, j *Job[int]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := Handle(w, "k", func(ctx context.Context, j *Job[int]) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second handler for a kind: %v", err)
	}
	if err := HandleResult(w, "k", func(ctx context.Context, j *Job[int]) (int, error) { return 0, nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("HandleResult for a kind with a handler: %v", err)
	}
	w.Start(context.Background())
	if err := Handle(w, "late", func(ctx context.Context, j *Job[int]) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Handle after Start: %v", err)
	}
	w.Close()
}

// TestJobProgressOutsideAWorker: a Job made by hand (a handler's unit
// test) checks Progress's arguments and writes nothing.
func TestJobProgressOutsideAWorker(t *testing.T) {
	j := &Job[int]{ID: "x"}
	ctx := context.Background()
	if err := j.Progress(ctx, 50, "half"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		pct int
		msg string
	}{{-1, ""}, {101, ""}, {50, strings.Repeat("é", 101)}} {
		if err := j.Progress(ctx, c.pct, c.msg); !errors.Is(err, ErrInvalid) {
			t.Errorf("Progress(%d, %d bytes): %v, want ErrInvalid", c.pct, len(c.msg), err)
		}
	}
}

func TestFetchOrderWeights(t *testing.T) {
	firsts := map[Priority]int{}
	for i := 0; i < 1000; i++ {
		firsts[fetchOrder(float64(i) / 1000)[0]]++
	}
	if firsts[High] != 600 || firsts[Default] != 300 || firsts[Low] != 100 {
		t.Fatalf("first places %v, want 600/300/100 for high/default/low", firsts)
	}
}

// stingyLimiter admits its first event and refuses every other one for an
// hour, counting the calls.
type stingyLimiter struct{ calls atomic.Int64 }

func (l *stingyLimiter) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	if l.calls.Add(1) == 1 {
		return ratelimit.Decision{Allowed: true}, nil
	}
	return ratelimit.Decision{RetryAfter: time.Hour}, nil
}

// A strict limit over a backlog delays the jobs it refuses: they go back
// to the queue with no attempt counted, instead of failing attempts (with
// their Timeout running) that never ran the handler.
func TestRateLimitDoesNotBurnAttempts(t *testing.T) {
	b := NewMemoryBackend(MemoryBackendOptions{})
	c, _ := NewClient(ClientOptions{Backend: b})
	ctx := context.Background()
	var ids []string
	for i := 0; i < 3; i++ {
		id, err := c.Enqueue(ctx, "strict", "send", nil, EnqueueOptions{MaxAttempts: 1, Timeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	lim := &stingyLimiter{}
	w, err := NewWorker(WorkerOptions{Backend: b, FetchWait: 10 * time.Millisecond, Queues: map[string]Options{"strict": {Concurrency: 3, Limiter: lim}}})
	if err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int64
	Handle(w, "send", func(ctx context.Context, j *Job[any]) error { ran.Add(1); return nil })
	w.Start(ctx)
	defer w.Close()
	// One job is admitted and done; the two others were refused and their
	// outcome recorded one way or the other.
	poll.Until(t, 20*time.Second, "one job done and the two refused jobs settled", func() bool {
		cnt, _ := c.Counts(ctx, "strict")
		return cnt.Done == 1 && cnt.Pending+cnt.Dead == 2
	})
	cnt, _ := c.Counts(ctx, "strict")
	if cnt.Dead != 0 || cnt.Pending != 2 || ran.Load() != 1 {
		t.Fatalf("counts %+v, %d handler runs: want the 2 refused jobs pending (not dead), 1 run", cnt, ran.Load())
	}
	for _, id := range ids {
		if m, _ := c.Job(ctx, "strict", id); m.State == Pending && (m.Attempt != 0 || m.LastError != "") {
			t.Fatalf("refused job %+v: want no attempt counted and no error", m)
		}
	}
	if st := w.Stats()[0]; st.Limited < 2 || st.Failed != 0 {
		t.Fatalf("stats %+v: want >= 2 limited, 0 failed", st)
	}
}
