// Package scalekitotel traces scalekit's primitives with OpenTelemetry and
// exports their Stats through the OpenTelemetry metric API. It is a Go
// module of its own (github.com/scalekit-go/scalekit/otel), so the core
// module never compiles OpenTelemetry.
//
//	tr, _ := scalekitotel.New(scalekitotel.Options{TracerProvider: tp}) // nil: the global provider
//	jobs, _ := queue.NewClient(queue.ClientOptions{Backend: b,
//		Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{tr.EnqueueMiddleware}})
//	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: qs,
//		Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{tr.AttemptMiddleware}})
//
// # Queue
//
// EnqueueMiddleware makes a producer span per job enqueued and writes its
// trace context (W3C traceparent and tracestate, and baggage) into the
// job's metadata; AttemptMiddleware makes a consumer span per attempt,
// child of and linked to that span (Options.QueueNewTrace: a new trace,
// linked), with the queue, kind, job id, attempt number and outcome
// (completed, snoozed, retry, dead).
package scalekitotel
