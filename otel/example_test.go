package scalekitotel_test

import (
	"context"
	"fmt"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
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

// Export a breaker's Stats through the OpenTelemetry metric API.
func ExampleMetrics() {
	reader := sdkmetric.NewManualReader() // a periodic reader and an exporter in a real program
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	m, _ := scalekitotel.NewMetrics(scalekitotel.MetricsOptions{MeterProvider: mp})
	defer m.Close()

	b, _ := breaker.New(breaker.Options{Name: "payments"})
	_ = m.AddBreaker(b)
	_ = b.Do(context.Background(), func(context.Context) error { return nil })

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if sum, ok := mt.Data.(metricdata.Sum[float64]); ok && mt.Name == "scalekit_breaker_calls" {
				for _, p := range sum.DataPoints {
					if r, _ := p.Attributes.Value("result"); r.AsString() == "success" {
						fmt.Println(mt.Name, r.AsString(), p.Value)
					}
				}
			}
		}
	}
	// Output:
	// scalekit_breaker_calls success 1
}

// Trace a cache: a Get that loads is a span, parent of the loader's.
func ExampleTracer_Cache() {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tr, _ := scalekitotel.New(scalekitotel.Options{TracerProvider: tp})
	users, _ := cache.New[string](cache.Options{TTL: time.Minute, Tracer: tr.Cache("users")})
	defer users.Close()

	load := func(context.Context, string) (string, error) { return "Ada", nil }
	_, _ = users.Get(context.Background(), "u1", load) // a miss: loads, one span
	_, _ = users.Get(context.Background(), "u1", load) // a hit: no span
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			if kv.Key == scalekitotel.CacheTier {
				fmt.Println(s.Name(), kv.Value.AsString())
			}
		}
	}
	// Output:
	// cache get users loader
}
