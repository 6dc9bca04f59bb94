package scalekitotel_test

import (
	"context"
	"fmt"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	scalekitotel "github.com/scalekit-go/scalekit/otel"
	"github.com/scalekit-go/scalekit/queue"
)

// Trace a queue: the enqueue and each attempt of the job are spans of
// the request's trace.
func Example_queue() {
	rec := tracetest.NewSpanRecorder() // an exporter in a real program
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tr, _ := scalekitotel.New(scalekitotel.Options{TracerProvider: tp})

	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	jobs, _ := queue.NewClient(queue.ClientOptions{Backend: b,
		Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{tr.EnqueueMiddleware}})
	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"emails": {}},
		Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{tr.AttemptMiddleware}})
	done := make(chan struct{})
	_ = queue.Handle(w, "email:welcome", func(ctx context.Context, j *queue.Job[string]) error {
		close(done)
		return nil
	})
	_ = w.Start(context.Background())

	ctx, span := tp.Tracer("app").Start(context.Background(), "POST /signup")
	_, _ = jobs.Enqueue(ctx, "emails", "email:welcome", "ada@example.com", queue.EnqueueOptions{})
	span.End()
	<-done
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.Shutdown(sctx)

	for _, s := range rec.Ended() {
		if s.Name() != "POST /signup" {
			fmt.Println(s.Name(), s.SpanContext().TraceID() == span.SpanContext().TraceID())
		}
	}
	// Output:
	// send emails true
	// process emails true
}
