package idempotency_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/queuefault"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/retry"
)

type charge struct{ Order string }

// setup returns a client and a started worker whose "charge" handler runs
// effect, through the Worker middleware built from o (its Guard a new
// in-memory one when nil).
func setup(t *testing.T, b queue.Backend, o idempotency.WorkerOptions, effect func(ctx context.Context, j *queue.Job[charge]) error) (*queue.Client, *queue.Worker) {
	t.Helper()
	if o.Guard == nil {
		o.Guard, _ = idempotency.NewGuard(idempotency.GuardOptions{})
	}
	iw, err := idempotency.NewWorker(o)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"q": {Concurrency: 2, Lease: 60 * time.Millisecond}},
		Backoff: retry.Constant{D: time.Millisecond}, FetchWait: 20 * time.Millisecond,
		Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{iw.Middleware}})
	if err != nil {
		t.Fatal(err)
	}
	queue.Handle(w, "charge", effect)
	w.Start(context.Background())
	t.Cleanup(func() { w.Close() })
	return c, w
}

func waitState(t *testing.T, c *queue.Client, id string, s queue.State) *queue.Message {
	t.Helper()
	var m *queue.Message
	poll.Until(t, 10*time.Second, "job "+id+" "+string(s), func() bool { m, _ = c.Job(context.Background(), "q", id); return m != nil && m.State == s })
	return m
}

// A job redelivered after its handler completed (the queue lost the
// completion) completes without running its effect again.
func TestWorkerMiddlewareRedeliveredJobRunsOnce(t *testing.T) {
	b := &queuefault.LoseComplete{Backend: queue.NewMemoryBackend(queue.MemoryBackendOptions{})}
	var charged atomic.Int64
	c, w := setup(t, b, idempotency.WorkerOptions{}, func(ctx context.Context, j *queue.Job[charge]) error {
		charged.Add(1)
		return nil
	})
	id, _ := c.Enqueue(context.Background(), "q", "charge", charge{"o-1"}, queue.EnqueueOptions{})
	m := waitState(t, c, id, queue.Done)
	if charged.Load() != 1 || m.Attempt != 2 || !b.Lost() {
		t.Fatalf("charged %d times, job %+v; want once, done at its second delivery", charged.Load(), m)
	}
	if st := w.Stats()[0]; st.Processed != 1 || st.Fetched != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A failed attempt releases the key: the retry runs the handler again.
// An empty key fails the job permanently.
func TestWorkerMiddlewareRetriesAndEmptyKey(t *testing.T) {
	var runs atomic.Int64
	c, _ := setup(t, queue.NewMemoryBackend(queue.MemoryBackendOptions{}), idempotency.WorkerOptions{
		Key: func(a queue.Attempt) string { return a.Metadata()["order"] },
	}, func(ctx context.Context, j *queue.Job[charge]) error {
		if runs.Add(1) == 1 {
			return errors.New("card network timeout")
		}
		return nil
	})
	ctx := context.Background()
	id, _ := c.Enqueue(ctx, "q", "charge", charge{"o-2"}, queue.EnqueueOptions{Metadata: map[string]string{"order": "o-2"}})
	if m := waitState(t, c, id, queue.Done); runs.Load() != 2 || m.Attempt != 2 {
		t.Fatalf("%d runs, job %+v; want the retry to run again", runs.Load(), m)
	}
	nokey, _ := c.Enqueue(ctx, "q", "charge", charge{"o-3"}, queue.EnqueueOptions{MaxAttempts: 5})
	if m := waitState(t, c, nokey, queue.Dead); m.Attempt != 1 || !strings.Contains(m.LastError, "empty key") || runs.Load() != 2 {
		t.Fatalf("job without a key %+v (%d runs); want dead at once, unrun", m, runs.Load())
	}
}

// Two jobs with one business key: the handler runs once between them. The
// second, arriving while the first runs, is snoozed (no attempt spent),
// then completes from the key's record.
func TestWorkerMiddlewareBusinessKey(t *testing.T) {
	release := make(chan struct{})
	var runs atomic.Int64
	c, w := setup(t, queue.NewMemoryBackend(queue.MemoryBackendOptions{}), idempotency.WorkerOptions{
		Key:       func(a queue.Attempt) string { return "charge:" + a.Metadata()["order"] },
		MaxSnooze: 20 * time.Millisecond,
	}, func(ctx context.Context, j *queue.Job[charge]) error {
		runs.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	ctx := context.Background()
	md := queue.EnqueueOptions{Metadata: map[string]string{"order": "o-4"}}
	first, _ := c.Enqueue(ctx, "q", "charge", charge{"o-4"}, md)
	poll.Until(t, 10*time.Second, "the first job running", func() bool { return runs.Load() == 1 })
	second, _ := c.Enqueue(ctx, "q", "charge", charge{"o-4"}, md)
	poll.Until(t, 10*time.Second, "the second job snoozed", func() bool { return w.Stats()[0].Snoozed > 0 })
	close(release)
	waitState(t, c, first, queue.Done)
	m := waitState(t, c, second, queue.Done)
	if runs.Load() != 1 || m.Attempt != 1 || m.Snoozes == 0 {
		t.Fatalf("%d runs; second job %+v: want one run, the second done on its first attempt after snoozes", runs.Load(), m)
	}
}

func TestNewWorkerOptions(t *testing.T) {
	g, _ := idempotency.NewGuard(idempotency.GuardOptions{})
	for _, tc := range []struct {
		o    idempotency.WorkerOptions
		want string
	}{
		{idempotency.WorkerOptions{}, "WorkerOptions.Guard is required"},
		{idempotency.WorkerOptions{Guard: g, MaxSnooze: -time.Second}, "WorkerOptions.MaxSnooze must be > 0"},
	} {
		if _, err := idempotency.NewWorker(tc.o); !errors.Is(err, idempotency.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewWorker(%+v) = %v, want ErrInvalid saying %q", tc.o, err, tc.want)
		}
	}
}
