package scalekitotel

import (
	"context"
	"errors"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/queue"
)

// The messaging semantic conventions' keys and values (kept here rather
// than importing a semconv version).
const (
	messagingSystem      = attribute.Key("messaging.system")
	messagingDestination = attribute.Key("messaging.destination.name")
	messagingOperation   = attribute.Key("messaging.operation.type")
	messagingMessageID   = attribute.Key("messaging.message.id")
	system               = "scalekit"
)

// The outcomes of an attempt (QueueOutcome).
const (
	OutcomeCompleted = "completed"
	OutcomeSnoozed   = "snoozed"
	OutcomeRetry     = "retry"
	OutcomeDead      = "dead"
)

// EnqueueMiddleware is client middleware (queue.ClientOptions.Middleware)
// that makes a producer span "send <queue>" per job enqueued and writes
// its trace context into the job's metadata (traceparent, tracestate,
// baggage with the default Propagator), so each attempt's span joins
// the trace. A propagated value that does not fit the metadata's bounds
// (queue.MaxMetadata pairs, queue.MaxMetadataValue bytes: a big
// baggage) is left out, and the span gets an event saying which, rather
// than failing the enqueue. In an EnqueueMany, the job's span ends when
// the job is accepted into the batch, before the batch is stored.
func (t *Tracer) EnqueueMiddleware(next queue.EnqueueFunc) queue.EnqueueFunc {
	return func(ctx context.Context, m *queue.Message) error {
		ctx, span := t.tracer.Start(ctx, "send "+m.Queue, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(messagingSystem.String(system), messagingDestination.String(m.Queue),
				messagingOperation.String("send"), messagingMessageID.String(m.ID), QueueKind.String(m.Kind)))
		defer span.End()
		carrier := propagation.MapCarrier{}
		t.prop.Inject(ctx, carrier)
		for _, k := range carrier.Keys() {
			v := carrier[k]
			_, had := m.Metadata[k]
			switch {
			case len(v) > queue.MaxMetadataValue || !utf8.ValidString(v):
				span.AddEvent("scalekit.queue.metadata_skipped", trace.WithAttributes(attribute.String("key", k), attribute.String("reason", "value too long")))
				continue
			case !had && len(m.Metadata) >= queue.MaxMetadata:
				span.AddEvent("scalekit.queue.metadata_skipped", trace.WithAttributes(attribute.String("key", k), attribute.String("reason", "metadata full")))
				continue
			}
			if m.Metadata == nil {
				m.Metadata = make(map[string]string, len(carrier))
			}
			m.Metadata[k] = v
		}
		err := next(ctx, m)
		var dup *queue.DuplicateError
		switch {
		case errors.As(err, &dup):
			span.SetAttributes(attribute.String("scalekit.queue.duplicate_of", dup.ID))
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	}
}

// AttemptMiddleware is worker middleware (queue.WorkerOptions.Middleware)
// that makes a consumer span "process <queue>" per attempt, linked to
// the enqueuing span whose context EnqueueMiddleware put in the job's
// metadata and, unless Options.QueueNewTrace, its child. The span
// carries the queue, kind, job id, attempt and max attempts, and the
// outcome the attempt's error makes (QueueOutcome: completed, snoozed,
// retry or dead); a failed attempt records its error. Each retry is a
// span of its own. The handler's ctx holds the span (and the job's
// baggage), so its own spans are the attempt's children. Put it first
// in the Middleware slice to time and see what the other middleware do.
func (t *Tracer) AttemptMiddleware(next queue.AttemptFunc) queue.AttemptFunc {
	return func(ctx context.Context, a queue.Attempt) error {
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(messagingSystem.String(system), messagingDestination.String(a.Queue),
				messagingOperation.String("process"), messagingMessageID.String(a.ID), QueueKind.String(a.Kind),
				QueueAttempt.Int(a.Attempt), QueueMaxAttempts.Int(a.MaxAttempts))}
		if md := a.Metadata(); len(md) > 0 {
			enq := t.prop.Extract(context.Background(), propagation.MapCarrier(md))
			if sc := trace.SpanContextFromContext(enq); sc.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
				if !t.newTrace {
					ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
				} else {
					opts = append(opts, trace.WithNewRoot())
				}
			}
			if b := baggage.FromContext(enq); b.Len() > 0 {
				ctx = baggage.ContextWithBaggage(ctx, b)
			}
		}
		ctx, span := t.tracer.Start(ctx, "process "+a.Queue, opts...)
		defer span.End()
		err := next(ctx, a)
		span.SetAttributes(QueueOutcome.String(outcome(a, err)))
		if _, snoozed := queue.IsSnooze(err); err != nil && !snoozed {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	}
}

// outcome is what err, an attempt's result, makes of the job, as the
// Worker decides it.
func outcome(a queue.Attempt, err error) string {
	if err == nil {
		return OutcomeCompleted
	}
	if _, ok := queue.IsSnooze(err); ok {
		return OutcomeSnoozed
	}
	if queue.IsPermanent(err) || a.Attempt >= a.MaxAttempts {
		return OutcomeDead
	}
	return OutcomeRetry
}
