package requestid

import (
	"context"
	"log/slog"
)

// The attribute keys the log handler adds.
const (
	IDKey    = "request_id"
	TraceKey = "trace_id"
	SpanKey  = "span_id"
)

// NewLogHandler returns a handler that passes every record to h, adding
// request_id (and trace_id and span_id when the request came with a W3C
// traceparent) when the record's context carries them (see FromContext).
// Records logged without a context, or with one carrying no ID, pass
// through unchanged. Enabled, WithAttrs and WithGroup are h's.
func NewLogHandler(h slog.Handler) slog.Handler {
	if lh, ok := h.(*logHandler); ok {
		return lh // wrapped already: add the IDs once
	}
	return &logHandler{h: h}
}

type logHandler struct {
	h slog.Handler
}

func (l *logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

func (l *logHandler) Handle(ctx context.Context, r slog.Record) error {
	if c := fromContext(ctx); c != nil {
		r = r.Clone() // no copy: makes AddAttrs append to an array of its own
		if c.hasTrace {
			r.AddAttrs(slog.String(IDKey, c.id), slog.String(TraceKey, c.trace.TraceID), slog.String(SpanKey, c.trace.SpanID))
		} else {
			r.AddAttrs(slog.String(IDKey, c.id))
		}
	}
	return l.h.Handle(ctx, r)
}

func (l *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{h: l.h.WithAttrs(as)}
}

func (l *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{h: l.h.WithGroup(name)}
}
