package queue_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/retry"
)

type n struct{ N int }

// Metadata out of bounds is refused with an ErrInvalid error naming the
// key, before anything is stored; the bounds themselves are allowed.
func TestMetadataBounds(t *testing.T) {
	ctx := context.Background()
	many := func(k int) map[string]string {
		md := map[string]string{}
		for i := range k {
			md["k"+strconv.Itoa(i)] = "v"
		}
		return md
	}
	for _, tc := range []struct {
		name string
		md   map[string]string
		want string // in the error; "" for none
	}{
		{"at the bounds", map[string]string{strings.Repeat("k", queue.MaxMetadataKey): strings.Repeat("v", queue.MaxMetadataValue), "e": ""}, ""},
		{"as many as allowed", many(queue.MaxMetadata), ""},
		{"too many", many(queue.MaxMetadata + 1), "33 entries, at most 32"},
		{"empty key", map[string]string{"": "v"}, `key "" must be 1 to 64 bytes`},
		{"long key", map[string]string{"ok": "", strings.Repeat("k", queue.MaxMetadataKey+1): "v"}, `key "kkkk`},
		{"long value", map[string]string{"tenant": strings.Repeat("v", queue.MaxMetadataValue+1)}, `["tenant"] must be at most 1024 bytes, got 1025`},
		{"bad UTF-8 key", map[string]string{"a\xff": "v"}, `key "a\xff" is not valid UTF-8`},
		{"bad UTF-8 value", map[string]string{"trace": "\xfe"}, `["trace"] is not valid UTF-8`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
			c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
			id, err := c.Enqueue(ctx, "q", "k", nil, queue.EnqueueOptions{Metadata: tc.md})
			cnt, _ := c.Counts(ctx, "q")
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m, _ := c.Job(ctx, "q", id); !maps.Equal(m.Metadata, tc.md) {
					t.Fatalf("stored %v, want %v", m.Metadata, tc.md)
				}
				return
			}
			if !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), "EnqueueOptions.Metadata") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrInvalid saying %q", err, tc.want)
			}
			if id != "" || cnt.Pending != 0 {
				t.Fatalf("a refused enqueue returned %q and left %+v", id, cnt)
			}
		})
	}
	t.Run("added by a middleware", func(t *testing.T) {
		// The bounds hold after the client middleware ran, too.
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{
			func(next queue.EnqueueFunc) queue.EnqueueFunc {
				return func(ctx context.Context, m *queue.Message) error {
					m.Metadata = many(queue.MaxMetadata + 1)
					return next(ctx, m)
				}
			},
		}})
		_, err := c.Enqueue(ctx, "q", "k", nil, queue.EnqueueOptions{})
		if cnt, _ := c.Counts(ctx, "q"); !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), "after the client middleware") || cnt.Pending != 0 {
			t.Fatalf("err %v, counts %+v; want ErrInvalid and nothing stored", err, cnt)
		}
	})
}

// record is a middleware pair (client and worker) that appends
// name+">" before calling next and "<"+name after it.
type trail struct {
	mu  sync.Mutex
	got []string
}

func (tr *trail) add(s string) { tr.mu.Lock(); tr.got = append(tr.got, s); tr.mu.Unlock() }
func (tr *trail) list() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.got)
}

func (tr *trail) client(name string) func(queue.EnqueueFunc) queue.EnqueueFunc {
	return func(next queue.EnqueueFunc) queue.EnqueueFunc {
		return func(ctx context.Context, m *queue.Message) error {
			tr.add(name + ">")
			err := next(ctx, m)
			tr.add("<" + name)
			return err
		}
	}
}

func (tr *trail) worker(name string) func(queue.AttemptFunc) queue.AttemptFunc {
	return func(next queue.AttemptFunc) queue.AttemptFunc {
		return func(ctx context.Context, a queue.Attempt) error {
			tr.add(name + ">")
			err := next(ctx, a)
			tr.add("<" + name)
			return err
		}
	}
}

func TestClientMiddleware(t *testing.T) {
	ctx := context.Background()
	t.Run("order", func(t *testing.T) {
		var tr trail
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		c, err := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{tr.client("a"), tr.client("b")}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Enqueue(ctx, "q", "k", nil, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(tr.list(), " "); got != "a> b> <b <a" {
			t.Fatalf("order %q, want the first outermost", got)
		}
	})
	t.Run("refuses", func(t *testing.T) {
		// A middleware that returns without calling next stores nothing,
		// and Enqueue returns its error.
		errNoTenant := errors.New("no tenant in ctx")
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{
			func(next queue.EnqueueFunc) queue.EnqueueFunc {
				return func(ctx context.Context, m *queue.Message) error { return errNoTenant }
			},
		}})
		id, err := c.Enqueue(ctx, "q", "k", nil, queue.EnqueueOptions{})
		if cnt, _ := c.Counts(ctx, "q"); !errors.Is(err, errNoTenant) || id != "" || cnt.Pending != 0 {
			t.Fatalf("Enqueue = %q, %v; counts %+v: want the middleware's error and nothing stored", id, err, cnt)
		}
	})
	t.Run("EnqueueMany", func(t *testing.T) {
		// Each job of a batch passes through the middleware, in order; a
		// refused one fails the whole batch, its index named, and nothing
		// is stored.
		var tr trail
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{
			tr.client("a"), injectRequestID,
			func(next queue.EnqueueFunc) queue.EnqueueFunc {
				return func(ctx context.Context, m *queue.Message) error {
					if m.Kind == "forbidden" {
						return errors.New("kind not allowed for this tenant")
					}
					return next(ctx, m)
				}
			},
		}})
		rctx := context.WithValue(ctx, ridKey{}, "req-9")
		rs, err := c.EnqueueMany(rctx, queue.EnqueueRequest{Queue: "q", Kind: "k"}, queue.EnqueueRequest{Queue: "q", Kind: "k", Args: 2})
		if err != nil || rs[0].Err != nil || rs[1].Err != nil {
			t.Fatal(err, rs)
		}
		for _, r := range rs {
			if m, _ := c.Job(ctx, "q", r.ID); m.Metadata["request_id"] != "req-9" {
				t.Fatalf("job %s: metadata %v", r.ID, m.Metadata)
			}
		}
		if got := strings.Join(tr.list(), " "); got != "a> <a a> <a" {
			t.Fatalf("order %q", got)
		}
		_, err = c.EnqueueMany(rctx, queue.EnqueueRequest{Queue: "q", Kind: "k", Args: 3}, queue.EnqueueRequest{Queue: "q", Kind: "forbidden"})
		if cnt, _ := c.Counts(ctx, "q"); err == nil || !strings.Contains(err.Error(), "jobs[1]: kind not allowed") || cnt.Pending != 2 {
			t.Fatalf("err %v, counts %+v: want jobs[1] named and nothing more stored", err, cnt)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		for _, tc := range []struct {
			mw   []func(queue.EnqueueFunc) queue.EnqueueFunc
			want string
		}{
			{[]func(queue.EnqueueFunc) queue.EnqueueFunc{nil}, "ClientOptions.Middleware[0] is nil"},
			{[]func(queue.EnqueueFunc) queue.EnqueueFunc{(&trail{}).client("a"), func(queue.EnqueueFunc) queue.EnqueueFunc { return nil }}, "ClientOptions.Middleware[1] returned a nil"},
		} {
			if _, err := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: tc.mw}); !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewClient: %v, want ErrInvalid saying %q", err, tc.want)
			}
		}
		for _, tc := range []struct {
			mw   []func(queue.AttemptFunc) queue.AttemptFunc
			want string
		}{
			{[]func(queue.AttemptFunc) queue.AttemptFunc{(&trail{}).worker("a"), nil}, "WorkerOptions.Middleware[1] is nil"},
			{[]func(queue.AttemptFunc) queue.AttemptFunc{func(queue.AttemptFunc) queue.AttemptFunc { return nil }}, "WorkerOptions.Middleware[0] returned a nil"},
		} {
			_, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"q": {}}, Middleware: tc.mw})
			if !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewWorker: %v, want ErrInvalid saying %q", err, tc.want)
			}
		}
	})
}

type ridKey struct{}

// injectRequestID is a client middleware that copies the request id of
// ctx into the job's metadata.
func injectRequestID(next queue.EnqueueFunc) queue.EnqueueFunc {
	return func(ctx context.Context, m *queue.Message) error {
		if rid, ok := ctx.Value(ridKey{}).(string); ok {
			if m.Metadata == nil {
				m.Metadata = map[string]string{}
			}
			m.Metadata["request_id"] = rid
		}
		return next(ctx, m)
	}
}

// restoreRequestID is a worker middleware that puts the job's request id
// back into ctx.
func restoreRequestID(next queue.AttemptFunc) queue.AttemptFunc {
	return func(ctx context.Context, a queue.Attempt) error {
		if rid, ok := a.Metadata()["request_id"]; ok {
			ctx = context.WithValue(ctx, ridKey{}, rid)
		}
		return next(ctx, a)
	}
}

func startWorker(t *testing.T, b queue.Backend, conc int, mw ...func(queue.AttemptFunc) queue.AttemptFunc) (*queue.Worker, func()) {
	t.Helper()
	w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"q": {Concurrency: conc}},
		Backoff: retry.Constant{D: time.Millisecond}, FetchWait: 20 * time.Millisecond, Middleware: mw})
	if err != nil {
		t.Fatal(err)
	}
	return w, func() {
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
	}
}

// oneJob returns a memory backend, its client and the id of a job of kind
// "k" in queue "q" with maxAttempts.
func oneJob(t *testing.T, maxAttempts int) (queue.Backend, *queue.Client, string) {
	t.Helper()
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	id, err := c.Enqueue(context.Background(), "q", "k", n{1}, queue.EnqueueOptions{MaxAttempts: maxAttempts})
	if err != nil {
		t.Fatal(err)
	}
	return b, c, id
}

func TestWorkerMiddleware(t *testing.T) {
	ctx := context.Background()
	t.Run("order and metadata", func(t *testing.T) {
		// The first middleware is outermost; a request id a client
		// middleware put into the metadata reaches the worker middleware,
		// and through the ctx it builds, the handler.
		var tr trail
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{injectRequestID}})
		id, err := c.Enqueue(context.WithValue(ctx, ridKey{}, "req-42"), "q", "k", n{1}, queue.EnqueueOptions{Metadata: map[string]string{"tenant": "acme"}})
		if err != nil {
			t.Fatal(err)
		}
		var seen atomic.Value
		w, start := startWorker(t, b, 1, tr.worker("a"), restoreRequestID, tr.worker("b"))
		queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[n]) error {
			tr.add("handler")
			seen.Store(fmt.Sprint(ctx.Value(ridKey{}), " ", j.Metadata))
			return nil
		})
		start()
		poll.Until(t, 10*time.Second, "the job done", func() bool { m, _ := c.Job(ctx, "q", id); return m.State == queue.Done })
		if got := strings.Join(tr.list(), " "); got != "a> b> handler <b <a" {
			t.Fatalf("order %q, want the first outermost", got)
		}
		if got := seen.Load(); got != "req-42 map[request_id:req-42 tenant:acme]" {
			t.Fatalf("the handler saw %q", got)
		}
	})
	t.Run("short-circuit fails the attempt", func(t *testing.T) {
		// A middleware that returns an error without calling next fails
		// the attempt as a handler error would: retried, then dead, its
		// error recorded; the handler never runs. Permanent works too.
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
		retried, _ := c.Enqueue(ctx, "q", "k", n{1}, queue.EnqueueOptions{MaxAttempts: 3})
		permanent, _ := c.Enqueue(ctx, "q", "k", n{2}, queue.EnqueueOptions{MaxAttempts: 3, Metadata: map[string]string{"permanent": "1"}})
		var attempts atomic.Int64
		w, start := startWorker(t, b, 2, func(next queue.AttemptFunc) queue.AttemptFunc {
			return func(ctx context.Context, a queue.Attempt) error {
				attempts.Add(1)
				if a.Metadata()["permanent"] != "" {
					return queue.Permanent(errors.New("tenant suspended"))
				}
				return fmt.Errorf("refused attempt %d", a.Attempt)
			}
		})
		var ran atomic.Int64
		queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[n]) error { ran.Add(1); return nil })
		start()
		poll.Until(t, 10*time.Second, "both jobs dead", func() bool {
			a, _ := c.Job(ctx, "q", retried)
			p, _ := c.Job(ctx, "q", permanent)
			return a.State == queue.Dead && p.State == queue.Dead
		})
		a, _ := c.Job(ctx, "q", retried)
		p, _ := c.Job(ctx, "q", permanent)
		if ran.Load() != 0 || attempts.Load() != 4 || a.Attempt != 3 || a.LastError != "refused attempt 3" || p.Attempt != 1 || p.LastError != "tenant suspended" {
			t.Fatalf("handler runs %d, attempts %d; jobs %+v and %+v", ran.Load(), attempts.Load(), a, p)
		}
		if st := w.Stats()[0]; st.Failed != 4 || st.Retried != 2 || st.Dead != 2 || st.Processed != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("panic in a middleware", func(t *testing.T) {
		// A panic in a middleware is a failed attempt holding the panic
		// and its stack, counted in Panics, like a handler panic.
		b, c, id := oneJob(t, 2)
		w, start := startWorker(t, b, 1, func(next queue.AttemptFunc) queue.AttemptFunc {
			return func(ctx context.Context, a queue.Attempt) error {
				if a.Attempt == 1 {
					panic("tracer not configured")
				}
				return next(ctx, a)
			}
		})
		queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[n]) error {
			if j.LastError == "" {
				return errors.New("the handler should see the panic as the last error")
			}
			return nil
		})
		start()
		poll.Until(t, 10*time.Second, "the job done", func() bool { m, _ := c.Job(ctx, "q", id); return m.State == queue.Done })
		m, _ := c.Job(ctx, "q", id)
		if m.Attempt != 2 || !strings.Contains(m.LastError, `panicked: tracer not configured`) || !strings.Contains(m.LastError, "middleware_test.go") {
			t.Fatalf("job %+v, want the panic and its stack as the first attempt's error", m)
		}
		if st := w.Stats()[0]; st.Panics != 1 || st.Failed != 1 || st.Processed != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("next needs the Attempt it was given", func(t *testing.T) {
		b, c, id := oneJob(t, 1)
		w, start := startWorker(t, b, 1, func(next queue.AttemptFunc) queue.AttemptFunc {
			return func(ctx context.Context, a queue.Attempt) error { return next(ctx, queue.Attempt{ID: a.ID}) }
		})
		queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[n]) error { return nil })
		start()
		poll.Until(t, 10*time.Second, "the job dead", func() bool { m, _ := c.Job(ctx, "q", id); return m.State == queue.Dead })
		if m, _ := c.Job(ctx, "q", id); !strings.Contains(m.LastError, "an Attempt the Worker did not make") {
			t.Fatalf("job %+v", m)
		}
	})
}

// Many goroutines enqueue through client middleware while a worker runs
// the jobs through worker middleware: every job runs once and its
// handler sees its own request id (-race checks the sharing).
func TestMiddlewareHammer(t *testing.T) {
	ctx := context.Background()
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	var enqueued atomic.Int64
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{
		injectRequestID,
		func(next queue.EnqueueFunc) queue.EnqueueFunc {
			return func(ctx context.Context, m *queue.Message) error { enqueued.Add(1); return next(ctx, m) }
		},
	}})
	var attempts atomic.Int64
	w, start := startWorker(t, b, 8, restoreRequestID, func(next queue.AttemptFunc) queue.AttemptFunc {
		return func(ctx context.Context, a queue.Attempt) error { attempts.Add(1); return next(ctx, a) }
	})
	var mu sync.Mutex
	seen := map[int]int{}
	var bad atomic.Value
	queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[n]) error {
		if rid := ctx.Value(ridKey{}); rid != "req-"+strconv.Itoa(j.Args.N) || j.Metadata["request_id"] != rid {
			bad.Store(fmt.Sprintf("job %d saw request id %v and metadata %v", j.Args.N, rid, j.Metadata))
		}
		j.Metadata["scratch"] = "the handler's own copy"
		mu.Lock()
		seen[j.Args.N]++
		mu.Unlock()
		return nil
	})
	start()
	const goroutines, each = 16, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				k := g*each + i
				if _, err := c.Enqueue(context.WithValue(ctx, ridKey{}, "req-"+strconv.Itoa(k)), "q", "k", n{k}, queue.EnqueueOptions{}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	poll.Until(t, 20*time.Second, "every job done", func() bool { return w.Stats()[0].Processed == goroutines*each })
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != goroutines*each || enqueued.Load() != goroutines*each || attempts.Load() != goroutines*each {
		t.Fatalf("%d distinct jobs ran, %d enqueued, %d attempts; want %d each", len(seen), enqueued.Load(), attempts.Load(), goroutines*each)
	}
	for k, runs := range seen {
		if runs != 1 {
			t.Fatalf("job %d ran %d times", k, runs)
		}
	}
}

// IsSnooze tells a Snooze error from others, through wrapping, with its
// delay; worker middleware uses it to name a snoozed attempt's outcome.
func TestIsSnooze(t *testing.T) {
	if d, ok := queue.IsSnooze(fmt.Errorf("wrapped: %w", queue.Snooze(3*time.Second))); !ok || d != 3*time.Second {
		t.Fatalf("IsSnooze(wrapped Snooze(3s)) = %v, %v", d, ok)
	}
	for _, err := range []error{nil, errors.New("x"), queue.Permanent(errors.New("x")), queue.Snooze(-1)} {
		if _, ok := queue.IsSnooze(err); ok {
			t.Fatalf("IsSnooze(%v) = true", err)
		}
	}
}
