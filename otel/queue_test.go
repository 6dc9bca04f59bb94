package scalekitotel_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/poll"
	scalekitotel "github.com/scalekit-go/scalekit/otel"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/retry"
)

type args struct{ N int }

// tracedQueue is a MemoryBackend with a traced Client and a traced
// Worker on queue "q" retrying at once, handler running for kind "k".
func tracedQueue(t *testing.T, tr *scalekitotel.Tracer, handler func(ctx context.Context, j *queue.Job[args]) error) *queue.Client {
	t.Helper()
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	c, err := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{tr.EnqueueMiddleware}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"q": {Concurrency: 4}},
		Backoff: retry.Constant{}, FetchWait: 50 * time.Millisecond,
		Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{tr.AttemptMiddleware}})
	if err != nil {
		t.Fatal(err)
	}
	if err := queue.Handle(w, "k", handler); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	})
	return c
}

// An enqueue inside a span puts its trace context in the job's metadata;
// every attempt (a failure, then a success) is a span of its own, child
// of and linked to the enqueuing span, with queue, kind, attempt and
// outcome; the handler's ctx holds the attempt span and the baggage.
func TestQueueAttemptSpansJoinTheEnqueuingTrace(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	var calls atomic.Int32
	var handlerSpans sync.Map // attempt -> span context seen by the handler
	var tenant atomic.Value
	c := tracedQueue(t, tr, func(ctx context.Context, j *queue.Job[args]) error {
		handlerSpans.Store(j.Attempt, trace.SpanContextFromContext(ctx))
		tenant.Store(baggage.FromContext(ctx).Member("tenant").Value())
		if calls.Add(1) == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	})

	m, _ := baggage.NewMember("tenant", "acme")
	bg, _ := baggage.New(m)
	ctx, root := tp.Tracer("test").Start(baggage.ContextWithBaggage(context.Background(), bg), "request")
	id, err := c.Enqueue(ctx, "q", "k", args{1}, queue.EnqueueOptions{MaxAttempts: 3, Metadata: map[string]string{"tenant-id": "7"}})
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Job(context.Background(), "q", id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(job.Metadata["traceparent"], root.SpanContext().TraceID().String()) || job.Metadata["tenant-id"] != "7" || job.Metadata["baggage"] != "tenant=acme" {
		t.Fatalf("job metadata %v: want traceparent of trace %s, baggage and the caller's tenant-id", job.Metadata, root.SpanContext().TraceID())
	}
	poll.Until(t, 10*time.Second, "two attempt spans", func() bool { return len(named(sr, "process q")) == 2 })

	sends := named(sr, "send q")
	if len(sends) != 1 {
		t.Fatalf("%d send spans, want 1", len(sends))
	}
	send := sends[0]
	if send.Parent().SpanID() != root.SpanContext().SpanID() || send.SpanKind() != trace.SpanKindProducer {
		t.Fatalf("send span: parent %v kind %v, want child of the request, producer", send.Parent().SpanID(), send.SpanKind())
	}
	if v, _ := attr(send, "messaging.message.id"); v.AsString() != id {
		t.Fatalf("send span message id %q, want %q", v.AsString(), id)
	}
	wantOutcome := map[int64]string{1: scalekitotel.OutcomeRetry, 2: scalekitotel.OutcomeCompleted}
	for _, s := range named(sr, "process q") {
		att, _ := attr(s, scalekitotel.QueueAttempt)
		if s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("attempt %d: kind %v, want consumer", att.AsInt64(), s.SpanKind())
		}
		if s.Parent().SpanID() != send.SpanContext().SpanID() || s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("attempt %d: parent %v in trace %v, want the send span %v", att.AsInt64(), s.Parent().SpanID(), s.SpanContext().TraceID(), send.SpanContext().SpanID())
		}
		if len(s.Links()) != 1 || s.Links()[0].SpanContext.SpanID() != send.SpanContext().SpanID() {
			t.Errorf("attempt %d: links %v, want one to the send span", att.AsInt64(), s.Links())
		}
		for key, want := range map[string]string{"messaging.destination.name": "q", string(scalekitotel.QueueKind): "k", "messaging.message.id": id, string(scalekitotel.QueueOutcome): wantOutcome[att.AsInt64()]} {
			if v, _ := attr(s, attributeKey(key)); v.AsString() != want {
				t.Errorf("attempt %d: %s = %q, want %q", att.AsInt64(), key, v.AsString(), want)
			}
		}
		if hs, _ := handlerSpans.Load(int(att.AsInt64())); hs.(trace.SpanContext).SpanID() != s.SpanContext().SpanID() {
			t.Errorf("attempt %d: the handler's ctx holds span %v, want the attempt's", att.AsInt64(), hs)
		}
		if wantErr := att.AsInt64() == 1; (s.Status().Code == codes.Error) != wantErr || (len(s.Events()) > 0) != wantErr {
			t.Errorf("attempt %d: status %v events %v", att.AsInt64(), s.Status(), s.Events())
		}
	}
	if tenant.Load() != "acme" {
		t.Fatalf("the handler's baggage has tenant %v, want acme", tenant.Load())
	}
}

// With QueueNewTrace, each attempt starts a trace of its own, linked to
// the enqueuing span.
func TestQueueNewTraceLinks(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp, QueueNewTrace: true})
	c := tracedQueue(t, tr, func(context.Context, *queue.Job[args]) error { return nil })
	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := c.Enqueue(ctx, "q", "k", args{}, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	root.End()
	poll.Until(t, 10*time.Second, "an attempt span", func() bool { return len(named(sr, "process q")) == 1 })
	s := named(sr, "process q")[0]
	send := named(sr, "send q")[0]
	if s.Parent().IsValid() || s.SpanContext().TraceID() == root.SpanContext().TraceID() {
		t.Fatalf("attempt span parent %v trace %v: want a new root", s.Parent(), s.SpanContext().TraceID())
	}
	if len(s.Links()) != 1 || s.Links()[0].SpanContext.SpanID() != send.SpanContext().SpanID() {
		t.Fatalf("links %v, want one to the send span", s.Links())
	}
}

// Each outcome: snoozed (not an error), dead by Permanent, dead out of
// attempts.
func TestQueueOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     int
		err     func(attempt, snoozes int) error
		want    []string
		errored []bool
	}{
		{"snoozed then completed", 2, func(_, s int) error {
			if s == 0 {
				return queue.Snooze(0)
			}
			return nil
		}, []string{scalekitotel.OutcomeSnoozed, scalekitotel.OutcomeCompleted}, []bool{false, false}},
		{"permanent", 5, func(int, int) error { return queue.Permanent(errors.New("bad")) }, []string{scalekitotel.OutcomeDead}, []bool{true}},
		{"out of attempts", 2, func(int, int) error { return errors.New("bad") }, []string{scalekitotel.OutcomeRetry, scalekitotel.OutcomeDead}, []bool{true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, sr := recorder(t)
			tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
			c := tracedQueue(t, tr, func(_ context.Context, j *queue.Job[args]) error { return tc.err(j.Attempt, j.Snoozes) })
			if _, err := c.Enqueue(context.Background(), "q", "k", args{}, queue.EnqueueOptions{MaxAttempts: tc.max}); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, 10*time.Second, "the attempt spans", func() bool { return len(named(sr, "process q")) == len(tc.want) })
			for i, s := range named(sr, "process q") {
				if v, _ := attr(s, scalekitotel.QueueOutcome); v.AsString() != tc.want[i] {
					t.Errorf("span %d: outcome %q, want %q", i, v.AsString(), tc.want[i])
				}
				if (s.Status().Code == codes.Error) != tc.errored[i] {
					t.Errorf("span %d: status %v", i, s.Status())
				}
				// Enqueued outside any span: the send span is a root, and the
				// attempt's parent.
				if send := named(sr, "send q")[0]; s.Parent().SpanID() != send.SpanContext().SpanID() {
					t.Errorf("span %d: parent %v, want the send span", i, s.Parent())
				}
			}
		})
	}
}

// A propagated value the metadata cannot hold (a baggage over
// MaxMetadataValue, or no room left) is left out with an event on the
// send span; the enqueue succeeds.
func TestQueueMetadataOutOfRoom(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{tr.EnqueueMiddleware}})
	m, _ := baggage.NewMember("big", strings.Repeat("x", 2000))
	bg, _ := baggage.New(m)
	full := map[string]string{}
	for i := range queue.MaxMetadata - 1 {
		full[string(rune('a'+i%26))+strings.Repeat("k", i/26+1)] = "v"
	}
	ctx, root := tp.Tracer("test").Start(baggage.ContextWithBaggage(context.Background(), bg), "request")
	defer root.End()
	id, err := c.Enqueue(ctx, "q", "k", args{}, queue.EnqueueOptions{Metadata: full})
	if err != nil {
		t.Fatal(err)
	}
	job, _ := c.Job(ctx, "q", id)
	if _, ok := job.Metadata["baggage"]; ok || len(job.Metadata) != queue.MaxMetadata || job.Metadata["traceparent"] == "" {
		t.Fatalf("metadata %d entries, baggage %q, traceparent %q", len(job.Metadata), job.Metadata["baggage"], job.Metadata["traceparent"])
	}
	var skipped []string
	for _, e := range named(sr, "send q")[0].Events() {
		for _, kv := range e.Attributes {
			if kv.Key == "key" {
				skipped = append(skipped, kv.Value.AsString())
			}
		}
	}
	if len(skipped) == 0 || !contains(skipped, "baggage") {
		t.Fatalf("skipped %v, want baggage among them", skipped)
	}
}

// Many goroutines enqueue at once through one Tracer; every job runs
// once in the trace of its enqueue.
func TestQueueTracingConcurrent(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	c := tracedQueue(t, tr, func(context.Context, *queue.Job[args]) error { return nil })
	const n = 64
	traces := make([]trace.TraceID, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, s := tp.Tracer("test").Start(context.Background(), "request")
			defer s.End()
			traces[i] = s.SpanContext().TraceID()
			if _, err := c.Enqueue(ctx, "q", "k", args{i}, queue.EnqueueOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	poll.Until(t, 20*time.Second, "every attempt span", func() bool { return len(named(sr, "process q")) == n })
	seen := map[trace.TraceID]int{}
	for _, s := range named(sr, "process q") {
		seen[s.SpanContext().TraceID()]++
	}
	for _, id := range traces {
		if seen[id] != 1 {
			t.Fatalf("trace %v has %d attempt spans, want 1", id, seen[id])
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// A Scheduler with EnqueueMiddleware enqueues each tick's job with a
// send span and its trace context in the metadata.
func TestQueueSchedulerTicksCarryTraceContext(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 5, 13, 59, 0, 0, time.UTC))
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{Clock: clk})
	s, err := queue.NewScheduler(queue.SchedulerOptions{Backend: b, Clock: clk,
		Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{tr.EnqueueMiddleware},
		Schedules:  []queue.Schedule{{Name: "hourly", Every: time.Hour, Queue: "q", Kind: "report"}}})
	check(t, err)
	defer s.Close()
	check(t, s.RunDue(ctx))
	clk.Add(time.Minute)
	check(t, s.RunDue(ctx))
	sends := named(sr, "send q")
	if len(sends) != 1 {
		t.Fatalf("%d send spans, want 1", len(sends))
	}
	id := str(sends[0], "messaging.message.id")
	job, err := b.Job(ctx, "q", id)
	check(t, err)
	if !strings.Contains(job.Metadata["traceparent"], sends[0].SpanContext().TraceID().String()) {
		t.Fatalf("tick job %s metadata %v", id, job.Metadata)
	}
}
