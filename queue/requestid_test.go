package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/scalekit-go/scalekit/internal/testlog"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/requestid"
	"github.com/scalekit-go/scalekit/retry"
)

// logLines is a JSON log sink safe for concurrent use.
type logLines struct{ testlog.Buffer }

// records returns the lines whose msg contains part, decoded.
func (l *logLines) records(t *testing.T, part string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.Contains(fmt.Sprint(rec["msg"]), part) {
			out = append(out, rec)
		}
	}
	return out
}

// A request's ID and trace travel through the job's metadata to the
// handler's ctx, so the handler's log lines and the Worker's own line
// about the attempt's outcome carry them.
func TestRequestIDMiddleware(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tr, _ := requestid.ParseTraceparent(tp)
	var sink logLines
	logger := slog.New(requestid.NewLogHandler(slog.NewJSONHandler(&sink, nil)))

	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	c, err := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{queue.RequestIDClient()}})
	if err != nil {
		t.Fatal(err)
	}
	rctx := requestid.NewContext(requestid.NewTraceContext(context.Background(), tr), "req-7")
	id, err := c.Enqueue(rctx, "q", "k", n{1}, queue.EnqueueOptions{MaxAttempts: 2, Metadata: map[string]string{"tenant": "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := c.Job(context.Background(), "q", id)
	if m.Metadata[queue.RequestIDKey] != "req-7" || m.Metadata[queue.RequestTraceKey] != tp || m.Metadata["tenant"] != "acme" {
		t.Fatalf("metadata %v", m.Metadata)
	}

	w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"q": {}}, Logger: logger,
		Backoff: retry.Constant{D: time.Millisecond}, FetchWait: 20 * time.Millisecond,
		Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{queue.RequestIDWorker()}})
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Value
	queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[n]) error {
		got, _ := requestid.FromContext(ctx)
		gt, _ := requestid.TraceFromContext(ctx)
		seen.Store(got + " " + gt.String())
		logger.InfoContext(ctx, "handler ran", "attempt", j.Attempt)
		if j.Attempt == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	poll.Until(t, 10*time.Second, "the job done", func() bool { m, _ := c.Job(context.Background(), "q", id); return m.State == queue.Done })
	if got := seen.Load(); got != "req-7 "+tp {
		t.Fatalf("the handler's ctx carried %q", got)
	}
	handler, retried := sink.records(t, "handler ran"), sink.records(t, "will retry")
	if len(handler) != 2 || len(retried) != 1 {
		t.Fatalf("%d handler lines and %d retry lines, want 2 and 1", len(handler), len(retried))
	}
	for _, rec := range append(handler, retried...) {
		if rec["request_id"] != "req-7" || rec["trace_id"] != tr.TraceID || rec["span_id"] != tr.SpanID {
			t.Errorf("line without the request's IDs: %v", rec)
		}
	}
}

func TestRequestIDClientEdges(t *testing.T) {
	ctx := context.Background()
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{queue.RequestIDClient()}})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		md   map[string]string
		want map[string]string
	}{
		{"no ID", ctx, nil, nil},
		{"ID without trace", requestid.NewContext(ctx, "r1"), nil, map[string]string{queue.RequestIDKey: "r1"}},
		{"the job's own key is kept", requestid.NewContext(ctx, "r1"), map[string]string{queue.RequestIDKey: "mine"}, map[string]string{queue.RequestIDKey: "mine"}},
		{"an ID too long for metadata is left out", requestid.NewContext(ctx, strings.Repeat("x", queue.MaxMetadataValue+1)), nil, nil},
		{"an ID not UTF-8 is left out", requestid.NewContext(ctx, "a\xff"), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := c.Enqueue(tc.ctx, "q", "k", nil, queue.EnqueueOptions{Metadata: tc.md})
			if err != nil {
				t.Fatal(err)
			}
			m, _ := c.Job(ctx, "q", id)
			if fmt.Sprint(m.Metadata) != fmt.Sprint(tc.want) {
				t.Fatalf("metadata %v, want %v", m.Metadata, tc.want)
			}
		})
	}
}

// Many requests enqueue at once, many attempts run at once: each handler
// sees its own request's ID.
func TestRequestIDMiddlewareConcurrent(t *testing.T) {
	ctx := context.Background()
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{queue.RequestIDClient()}})
	const jobs = 200
	var wrong, done atomic.Int64
	w, start := startWorker(t, b, 8, queue.RequestIDWorker())
	queue.Handle(w, "k", func(ctx context.Context, j *queue.Job[n]) error {
		if id, _ := requestid.FromContext(ctx); id != fmt.Sprint("req-", j.Args.N) {
			wrong.Add(1)
		}
		done.Add(1)
		return nil
	})
	start()
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() {
			if _, err := c.Enqueue(requestid.NewContext(ctx, fmt.Sprint("req-", i)), "q", "k", n{i}, queue.EnqueueOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	poll.Until(t, 20*time.Second, "every job run", func() bool { return done.Load() == jobs })
	if wrong.Load() != 0 {
		t.Fatalf("%d handlers saw another request's ID", wrong.Load())
	}
}
