package queuetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
)

// RealTimeFactory returns the Backend under test on the real clock.
type RealTimeFactory func(t *testing.T) queue.Backend

type args struct{ N int }

func worker(t *testing.T, b queue.Backend, q string, o queue.Options) *queue.Worker {
	t.Helper()
	w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{q: o},
		Backoff: retry.Constant{D: time.Millisecond}, FetchWait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 20*time.Second, what, cond)
}

// RunWorker runs Workers on the backend (real time) as subtests of t,
// among them CancelRunning (a running job's handler ctx cancelled within
// a lease, the job not retried, the worker counting it in
// Stats.Cancelled, not Lost), DeleteRunning (the same for a job deleted
// while it runs) and PauseResume (a paused queue not fetched, its
// enqueues landing, until Resume).
func RunWorker(t *testing.T, f RealTimeFactory) {
	ctx := context.Background()
	t.Run("ProcessesEveryJobOnce", func(t *testing.T) {
		b, q := f(t), Name(t)
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		const n = 60
		for i := 0; i < n; i++ {
			if _, err := c.Enqueue(ctx, q, "count", args{i}, queue.EnqueueOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		seen := map[int]int{}
		w := worker(t, b, q, queue.Options{Concurrency: 4})
		if err := queue.Handle(w, "count", func(ctx context.Context, j *queue.Job[args]) error {
			mu.Lock()
			seen[j.Args.N]++
			mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		waitFor(t, "every job done", func() bool { c, _ := c.Counts(ctx, q); return c.Done == n })
		mu.Lock()
		defer mu.Unlock()
		for i := 0; i < n; i++ {
			if seen[i] != 1 {
				t.Fatalf("job %d ran %d times", i, seen[i])
			}
		}
	})
	t.Run("RetriesPanicsAndPermanent", func(t *testing.T) {
		b, q := f(t), Name(t)
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		flaky, _ := c.Enqueue(ctx, q, "flaky", args{}, queue.EnqueueOptions{MaxAttempts: 5})
		panicky, _ := c.Enqueue(ctx, q, "panicky", args{}, queue.EnqueueOptions{MaxAttempts: 1})
		final, _ := c.Enqueue(ctx, q, "final", args{}, queue.EnqueueOptions{MaxAttempts: 5})
		badArgs, _ := c.Enqueue(ctx, q, "typed", "not an object", queue.EnqueueOptions{MaxAttempts: 5})
		w := worker(t, b, q, queue.Options{Concurrency: 2})
		var flakyRuns, finalRuns atomic.Int64
		queue.Handle(w, "flaky", func(ctx context.Context, j *queue.Job[args]) error {
			if flakyRuns.Add(1) < 3 {
				return errors.New("provider timeout")
			}
			if j.Attempt != 3 || j.LastError != "provider timeout" {
				t.Errorf("third attempt sees %d %q", j.Attempt, j.LastError)
			}
			return nil
		})
		queue.Handle(w, "panicky", func(ctx context.Context, j *queue.Job[args]) error { panic("nil map") })
		queue.Handle(w, "final", func(ctx context.Context, j *queue.Job[args]) error {
			finalRuns.Add(1)
			return queue.Permanent(errors.New("card declined"))
		})
		queue.Handle(w, "typed", func(ctx context.Context, j *queue.Job[args]) error { return nil })
		w.Start(ctx)
		defer w.Close()
		state := func(id string) *queue.Message { m, _ := c.Job(ctx, q, id); return m }
		waitFor(t, "all four jobs settled", func() bool {
			return state(flaky).State == queue.Done && state(panicky).State == queue.Dead && state(final).State == queue.Dead && state(badArgs).State == queue.Dead
		})
		if m := state(panicky); !strings.Contains(m.LastError, "panicked: nil map") || !strings.Contains(m.LastError, "goroutine") {
			t.Fatalf("a panic's error %q, want the panic value and a stack", m.LastError)
		}
		if finalRuns.Load() != 1 || state(final).Attempt != 1 {
			t.Fatalf("a Permanent error ran %d times, want 1", finalRuns.Load())
		}
		// The worker counts a job after the backend answered its
		// completion, which may be after the job shows done.
		waitFor(t, "the stats to count the four jobs", func() bool { st := w.Stats()[0]; return st.Processed+st.Dead >= 4 })
		if st := w.Stats()[0]; st.Processed != 1 || st.Dead != 3 || st.Retried != 2 || st.Panics != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("HandlerSnoozes", func(t *testing.T) {
		// MaxAttempts 1: two snoozes spend no attempt, the third run
		// completes; a negative snooze is a failed attempt that says why.
		b, q := f(t), Name(t)
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		sleepy, _ := c.Enqueue(ctx, q, "sleepy", args{}, queue.EnqueueOptions{MaxAttempts: 1})
		bad, _ := c.Enqueue(ctx, q, "bad", args{}, queue.EnqueueOptions{MaxAttempts: 1})
		w := worker(t, b, q, queue.Options{Concurrency: 2})
		var runs atomic.Int64
		queue.Handle(w, "sleepy", func(ctx context.Context, j *queue.Job[args]) error {
			n := runs.Add(1)
			if j.Attempt != 1 || j.MaxAttempts != 1 || j.Snoozes != int(n-1) {
				t.Errorf("run %d sees attempt %d of %d, %d snoozes; want attempt 1 of 1, %d snoozes", n, j.Attempt, j.MaxAttempts, j.Snoozes, n-1)
			}
			if n < 3 {
				return queue.Snooze(20 * time.Millisecond)
			}
			return nil
		})
		queue.Handle(w, "bad", func(ctx context.Context, j *queue.Job[args]) error { return queue.Snooze(-time.Second) })
		w.Start(ctx)
		defer w.Close()
		state := func(id string) *queue.Message { m, _ := c.Job(ctx, q, id); return m }
		waitFor(t, "both jobs settled", func() bool {
			return state(sleepy).State == queue.Done && state(bad).State == queue.Dead
		})
		if m := state(sleepy); runs.Load() != 3 || m.Attempt != 1 || m.Snoozes != 2 {
			t.Fatalf("snoozed job: %d runs, %+v; want 3 runs, attempt 1, 2 snoozes", runs.Load(), m)
		}
		if m := state(bad); !strings.Contains(m.LastError, "Snooze(-1s)") || m.Snoozes != 0 {
			t.Fatalf("a negative snooze: %+v, want a failed attempt naming Snooze(-1s)", m)
		}
		// The worker counts a job after the backend answered its
		// completion, which may be after the job shows done.
		waitFor(t, "the stats to count both jobs", func() bool { st := w.Stats()[0]; return st.Processed+st.Dead >= 2 })
		if st := w.Stats()[0]; st.Snoozed != 2 || st.Processed != 1 || st.Dead != 1 {
			t.Fatalf("stats %+v, want 2 snoozed, 1 processed, 1 dead", st)
		}
	})
	t.Run("ResultsAndProgress", func(t *testing.T) {
		// A HandleResult handler reports progress (rate-limited, checked)
		// and returns an output, stored with the completion; an output
		// over MaxOutput fails the job; a Handle job has no output.
		b, q := f(t), Name(t)
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		report, _ := c.Enqueue(ctx, q, "report", args{N: 3}, queue.EnqueueOptions{})
		huge, _ := c.Enqueue(ctx, q, "huge", args{N: 100}, queue.EnqueueOptions{MaxAttempts: 5})
		plain, _ := c.Enqueue(ctx, q, "plain", args{}, queue.EnqueueOptions{})
		w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{q: {Concurrency: 3}},
			Backoff: retry.Constant{D: time.Millisecond}, FetchWait: 50 * time.Millisecond, MaxOutput: 64})
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			Pages int    `json:"pages"`
			URL   string `json:"url"`
		}
		var checks []error
		queue.HandleResult(w, "report", func(ctx context.Context, j *queue.Job[args]) (result, error) {
			checks = append(checks,
				j.Progress(ctx, 10, "started"),
				j.Progress(ctx, 101, "too far"),
				j.Progress(ctx, 50, strings.Repeat("x", queue.MaxProgressMessage+1)),
				j.Progress(ctx, 20, "dropped: within 250ms of the last"),
				j.Progress(ctx, 100, "rendered"))
			return result{Pages: j.Args.N, URL: "https://files.example.com/r.pdf"}, nil
		})
		var hugeRuns atomic.Int64
		queue.HandleResult(w, "huge", func(ctx context.Context, j *queue.Job[args]) (string, error) {
			hugeRuns.Add(1)
			return strings.Repeat("y", j.Args.N), nil
		})
		queue.Handle(w, "plain", func(ctx context.Context, j *queue.Job[args]) error { return nil })
		w.Start(ctx)
		defer w.Close()
		state := func(id string) *queue.Message { m, _ := c.Job(ctx, q, id); return m }
		waitFor(t, "the three jobs settled", func() bool {
			return state(report).State == queue.Done && state(huge).State == queue.Dead && state(plain).State == queue.Done
		})
		if len(checks) != 5 || checks[0] != nil || !errors.Is(checks[1], queue.ErrInvalid) || !errors.Is(checks[2], queue.ErrInvalid) || checks[3] != nil || checks[4] != nil {
			t.Fatalf("Progress returned %v; want nil, ErrInvalid, ErrInvalid, nil, nil", checks)
		}
		m := state(report)
		if string(m.Output) != `{"pages":3,"url":"https://files.example.com/r.pdf"}` || m.Progress.Percent != 100 || m.Progress.Message != "rendered" ||
			m.Progress.UpdatedAt.IsZero() || m.StartedAt.IsZero() || m.FinishedAt.Before(m.StartedAt) || m.StartedAt.Before(m.EnqueuedAt.Add(-time.Second)) {
			t.Fatalf("report job: %+v, want its output, 100%% rendered and its times", m)
		}
		if m := state(huge); hugeRuns.Load() != 1 || m.Output != nil || !strings.Contains(m.LastError, "MaxOutput (64)") || !strings.Contains(m.LastError, "102 bytes") {
			t.Fatalf("a too large output: %d runs, %+v; want one run, dead, the error naming MaxOutput", hugeRuns.Load(), m)
		}
		if m := state(plain); m.Output != nil {
			t.Fatalf("a Handle job has output %q", m.Output)
		}
	})
	t.Run("MetadataTravels", func(t *testing.T) {
		// Metadata given at enqueue and added by a client middleware is
		// stored with the job (Client.Job), reaches the worker middleware
		// (Attempt.Metadata) and the handler (Job.Metadata), exactly,
		// any UTF-8 included; a job without any has nil everywhere.
		b, q := f(t), Name(t)
		type ridKey struct{}
		c, err := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{
			func(next queue.EnqueueFunc) queue.EnqueueFunc {
				return func(ctx context.Context, m *queue.Message) error {
					if rid, ok := ctx.Value(ridKey{}).(string); ok {
						if m.Metadata == nil {
							m.Metadata = map[string]string{}
						}
						m.Metadata["request_id"] = rid
					}
					return next(ctx, m)
				}
			},
		}})
		if err != nil {
			t.Fatal(err)
		}
		given := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"tenant": "acme", "note": `quotes " and \ and ünïcödé ✓`, "empty": ""}
		want := map[string]string{"request_id": "req-7"}
		for k, v := range given {
			want[k] = v
		}
		withMD, err := c.Enqueue(context.WithValue(ctx, ridKey{}, "req-7"), q, "md", args{N: 1}, queue.EnqueueOptions{Metadata: given})
		if err != nil {
			t.Fatal(err)
		}
		given["tenant"] = "changed after the enqueue" // the options' map is copied
		plain, err := c.Enqueue(ctx, q, "md", args{N: 2}, queue.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantBatch := map[string]string{"batch": "yes", "request_id": "req-8"}
		rs, err := c.EnqueueMany(context.WithValue(ctx, ridKey{}, "req-8"),
			queue.EnqueueRequest{Queue: q, Kind: "md", Args: args{N: 3}, Options: queue.EnqueueOptions{Metadata: map[string]string{"batch": "yes"}}})
		if err != nil || rs[0].Err != nil {
			t.Fatal(err, rs)
		}
		batched := rs[0].ID
		var mu sync.Mutex
		var inMW []string
		inHandler := map[int]map[string]string{}
		w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{q: {Concurrency: 2}},
			FetchWait: 50 * time.Millisecond, Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{
				func(next queue.AttemptFunc) queue.AttemptFunc {
					return func(ctx context.Context, a queue.Attempt) error {
						mu.Lock()
						inMW = append(inMW, fmt.Sprint(a.Metadata()))
						mu.Unlock()
						return next(ctx, a)
					}
				},
			}})
		if err != nil {
			t.Fatal(err)
		}
		queue.Handle(w, "md", func(ctx context.Context, j *queue.Job[args]) error {
			mu.Lock()
			inHandler[j.Args.N] = j.Metadata
			mu.Unlock()
			return nil
		})
		w.Start(ctx)
		defer w.Close()
		waitFor(t, "the three jobs done", func() bool {
			for _, id := range []string{withMD, plain, batched} {
				if m, _ := c.Job(ctx, q, id); m == nil || m.State != queue.Done {
					return false
				}
			}
			return true
		})
		mu.Lock()
		defer mu.Unlock()
		if !maps.Equal(inHandler[1], want) || inHandler[2] != nil || !maps.Equal(inHandler[3], wantBatch) {
			t.Fatalf("the handlers saw %v, %v and %v; want %v, nil and %v", inHandler[1], inHandler[2], inHandler[3], want, wantBatch)
		}
		slices.Sort(inMW)
		wantMW := []string{fmt.Sprint(wantBatch), fmt.Sprint(want), fmt.Sprint(map[string]string(nil))}
		if slices.Sort(wantMW); !slices.Equal(inMW, wantMW) {
			t.Fatalf("the worker middleware saw %q, want %q", inMW, wantMW)
		}
		for id, md := range map[string]map[string]string{withMD: want, plain: nil, batched: wantBatch} {
			if m, _ := c.Job(ctx, q, id); !maps.Equal(m.Metadata, md) || (md == nil) != (m.Metadata == nil) {
				t.Fatalf("Client.Job(%s): Metadata %v, want %v", id, m.Metadata, md)
			}
		}
	})
	t.Run("RateLimitDoesNotBurnAttempts", func(t *testing.T) {
		// A limiter that admits one job and refuses the rest for an hour:
		// the refused jobs go back to the queue with no attempt counted
		// instead of dying in attempts that never ran (MaxAttempts 1).
		b, q := f(t), Name(t)
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		for i := 0; i < 3; i++ {
			if _, err := c.Enqueue(ctx, q, "send", args{i}, queue.EnqueueOptions{MaxAttempts: 1, Timeout: 50 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		}
		w := worker(t, b, q, queue.Options{Concurrency: 3, Limiter: &admitOnce{}})
		var ran atomic.Int64
		queue.Handle(w, "send", func(ctx context.Context, j *queue.Job[args]) error { ran.Add(1); return nil })
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		waitFor(t, "one job done and the two refused jobs settled", func() bool {
			cnt, _ := c.Counts(ctx, q)
			return cnt.Done == 1 && cnt.Pending+cnt.Dead == 2
		})
		if cnt, _ := c.Counts(ctx, q); cnt.Dead != 0 || cnt.Pending != 2 || ran.Load() != 1 {
			t.Fatalf("counts %+v, %d runs: want the 2 refused jobs pending (not dead) and 1 run", cnt, ran.Load())
		}
	})
	runControlWorker(t, f)
	t.Run("ShutdownFinishesThenReleases", func(t *testing.T) {
		b, q := f(t), Name(t)
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		for i := 0; i < 3; i++ {
			c.Enqueue(ctx, q, "short", args{i}, queue.EnqueueOptions{})
		}
		w := worker(t, b, q, queue.Options{Concurrency: 3})
		started := make(chan struct{}, 3)
		queue.Handle(w, "short", func(ctx context.Context, j *queue.Job[args]) error {
			started <- struct{}{}
			time.Sleep(100 * time.Millisecond)
			return nil
		})
		w.Start(ctx)
		for i := 0; i < 3; i++ {
			<-started
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := w.Shutdown(sctx); err != nil {
			t.Fatalf("Shutdown with time to spare: %v", err)
		}
		cancel()
		if cnt, _ := c.Counts(ctx, q); cnt.Done != 3 {
			t.Fatalf("after a graceful shutdown: %+v, want the 3 in-flight jobs done", cnt)
		}

		// Handlers that outlive the deadline: released, not lost.
		q2 := Name(t)
		for i := 0; i < 2; i++ {
			c.Enqueue(ctx, q2, "stuck", args{i}, queue.EnqueueOptions{})
		}
		w2 := worker(t, b, q2, queue.Options{Concurrency: 2})
		running := make(chan struct{}, 2)
		queue.Handle(w2, "stuck", func(ctx context.Context, j *queue.Job[args]) error {
			running <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})
		w2.Start(ctx)
		<-running
		<-running
		sctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := w2.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown past its deadline: %v", err)
		}
		cnt, _ := c.Counts(ctx, q2)
		if cnt.Pending != 2 || cnt.Active != 0 || cnt.Dead != 0 {
			t.Fatalf("after the deadline: %+v, want both jobs back as pending", cnt)
		}
		if st := w2.Stats()[0]; st.Released != 2 {
			t.Fatalf("stats %+v, want 2 released", st)
		}
	})
}

// admitOnce is a ratelimit.Limiter that admits its first event and
// refuses every other one for an hour.
type admitOnce struct{ calls atomic.Int64 }

func (l *admitOnce) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	if l.calls.Add(1) == 1 {
		return ratelimit.Decision{Allowed: true}, nil
	}
	return ratelimit.Decision{RetryAfter: time.Hour}, nil
}
