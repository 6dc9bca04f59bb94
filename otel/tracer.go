package scalekitotel

import (
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ErrInvalid is wrapped by errors about bad options or arguments.
var ErrInvalid = errors.New("scalekitotel: invalid")

// ScopeName is the instrumentation scope of the spans and instruments
// the package makes.
const ScopeName = "github.com/scalekit-go/scalekit/otel"

// The attribute keys the package sets, beside the messaging semantic
// conventions' (messaging.system, messaging.destination.name,
// messaging.operation.type, messaging.message.id).
const (
	// QueueKind is a job's kind (queue span attribute).
	QueueKind = attribute.Key("scalekit.queue.kind")
	// QueueAttempt is the attempt number, from 1 (attempt span).
	QueueAttempt = attribute.Key("scalekit.queue.attempt")
	// QueueMaxAttempts is when the job dies (attempt span).
	QueueMaxAttempts = attribute.Key("scalekit.queue.max_attempts")
	// QueueOutcome is what the attempt's error makes of the job (attempt
	// span): completed, snoozed, retry or dead.
	QueueOutcome = attribute.Key("scalekit.queue.outcome")
)

// Options configures New. The zero value works.
type Options struct {
	// TracerProvider makes the spans. Default: the global one
	// (otel.GetTracerProvider), a no-op until the program sets one.
	TracerProvider trace.TracerProvider
	// Propagator writes the trace context into a job's metadata at
	// enqueue and reads it back at each attempt. Default: W3C Trace
	// Context and Baggage (traceparent, tracestate, baggage), whatever
	// the global propagator is, so a job carries its trace even where
	// the program never set one.
	Propagator propagation.TextMapPropagator
	// QueueNewTrace makes each attempt span the root of a trace of its
	// own, linked to the enqueuing span, instead of its child. Jobs that
	// run long after they were enqueued (retries hours later, periodic
	// jobs) then do not stretch the enqueuing request's trace. Default:
	// false, the attempt span is a child of the enqueuing span (and
	// linked to it too).
	QueueNewTrace bool
}

// Tracer makes the spans and span events of scalekit's primitives:
// queue enqueues and attempts (EnqueueMiddleware, AttemptMiddleware),
// cache loads (Cache), batch fetches (Batch), retries (OnRetry), limiter
// denials (Limiter) and breaker state changes (OnStateChange). It is
// safe for concurrent use; one Tracer serves every primitive of a
// program.
type Tracer struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	newTrace bool
}

// New returns a Tracer, or an error naming the bad option. With no
// TracerProvider set and no global one, its spans are no-ops that cost
// a context lookup.
func New(o Options) (*Tracer, error) {
	tp := o.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	prop := o.Propagator
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return &Tracer{tracer: tp.Tracer(ScopeName), prop: prop, newTrace: o.QueueNewTrace}, nil
}

// scope is a Tracer for one named primitive: the attribute naming it
// and the name of its spans.
type scope struct {
	t        *Tracer
	name     attribute.KeyValue
	spanName string
}

func (t *Tracer) scoped(name attribute.KeyValue, spanName string) scope {
	return scope{t: t, name: name, spanName: spanName}
}
