package queue

import (
	"context"
	"unicode/utf8"

	"github.com/scalekit-go/scalekit/requestid"
)

// The metadata keys of the request-ID middleware.
const (
	// RequestIDKey holds the request ID of the ctx a job was enqueued
	// with (requestid.FromContext).
	RequestIDKey = "request_id"
	// RequestTraceKey holds the W3C traceparent the request came with
	// (requestid.TraceFromContext), written as a version 00 traceparent.
	// It is the request's incoming trace, for the logs' trace_id and
	// span_id; an OpenTelemetry middleware propagates the enqueuer's own
	// span under "traceparent" of its own.
	RequestTraceKey = "request_traceparent"
)

// RequestIDClient returns client middleware (ClientOptions.Middleware)
// that copies the request ID of the enqueue's ctx, and the W3C trace it
// came with, into the job's metadata (RequestIDKey, RequestTraceKey), so
// the job's logs carry its request's ID: see RequestIDWorker. A key the
// job has already (set in EnqueueOptions.Metadata, or by an earlier
// middleware) is kept; a ctx with no ID, or with one that is no metadata
// value (over MaxMetadataValue bytes, or not UTF-8), adds nothing.
func RequestIDClient() func(next EnqueueFunc) EnqueueFunc {
	return func(next EnqueueFunc) EnqueueFunc {
		return func(ctx context.Context, m *Message) error {
			id, ok := requestid.FromContext(ctx)
			if !ok || id == "" || len(id) > MaxMetadataValue || !utf8.ValidString(id) {
				return next(ctx, m)
			}
			add := func(k, v string) {
				if _, had := m.Metadata[k]; had {
					return
				}
				if m.Metadata == nil {
					m.Metadata = make(map[string]string, 2)
				}
				m.Metadata[k] = v
			}
			add(RequestIDKey, id)
			if t, ok := requestid.TraceFromContext(ctx); ok {
				add(RequestTraceKey, t.String())
			}
			return next(ctx, m)
		}
	}
}

// RequestIDWorker returns worker middleware (WorkerOptions.Middleware)
// that puts the request ID of a job's metadata (RequestIDKey, and the
// trace of RequestTraceKey when it parses) into the attempt's ctx with
// requestid.NewContext, so that every record the handler, and the
// Worker's own attempt logs, make with that ctx through a
// requestid.NewLogHandler logger carries request_id (and trace_id and
// span_id). A job without the key runs with its ctx unchanged.
func RequestIDWorker() func(next AttemptFunc) AttemptFunc {
	return func(next AttemptFunc) AttemptFunc {
		return func(ctx context.Context, a Attempt) error {
			id, ok := a.md[RequestIDKey]
			if !ok || id == "" {
				return next(ctx, a)
			}
			if v, ok := a.md[RequestTraceKey]; ok {
				if t, ok := requestid.ParseTraceparent(v); ok {
					ctx = requestid.NewTraceContext(ctx, t)
				}
			}
			return next(requestid.NewContext(ctx, id), a)
		}
	}
}
