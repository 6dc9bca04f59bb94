// Package requestid gives every HTTP request an ID, carries it in the
// request's context and response header, and adds it to every log record
// made with that context.
//
//	ids, err := requestid.NewHTTP(requestid.HTTPOptions{}) // X-Request-ID, at most 128 bytes
//	logger := slog.New(requestid.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil)))
//	http.ListenAndServe(addr, ids.Middleware(mux))
//	// in a handler:
//	logger.InfoContext(r.Context(), "paid") // {"msg":"paid","request_id":"4bf9...", ...}
//	id, ok := requestid.FromContext(r.Context())
//
// # Where the ID comes from
//
// The middleware takes, in this order:
//
//  1. the request's X-Request-ID header (HTTPOptions.Header), when it is 1
//     to MaxLength bytes of A-Z a-z 0-9 . _ : - (anything else, a header
//     injection attempt or a runaway client, is replaced and counted in
//     HTTPStats.Replaced; an empty header counts as none);
//  2. the trace ID of a valid W3C traceparent header (Trace Context Level
//     1: lowercase hex, version ff and all-zero IDs rejected, later
//     versions read forward-compatibly; a request with several
//     traceparent headers has none), so logs and traces share one ID;
//  3. a new 128-bit random ID, 32 lowercase hex digits.
//
// A valid traceparent is kept in the context too (TraceFromContext), and
// the log handler adds its trace_id and span_id to the records.
//
// The ID goes into the context (FromContext; NewContext puts one in a
// context of your own, for a job consumer say) and into the response's
// X-Request-ID header before the handler runs.
//
// # Logs
//
// NewLogHandler wraps any slog.Handler: a record logged with a context that
// carries an ID (slog's *Context methods, or Logger.Log(ctx, ...)) gets
// request_id, and trace_id and span_id when a traceparent came in. Give
// such a logger to the primitives' Options.Logger and their own lines carry
// the ID too, where they log with the caller's context. Attributes added
// this way land inside the groups the logger opened (WithGroup), as every
// record attribute does.
//
// # Queue jobs
//
// queue.RequestIDClient (client middleware) copies the ID and the trace
// of the enqueue's ctx into a job's metadata, and queue.RequestIDWorker
// (worker middleware) puts them back into the attempt's ctx, so the job's
// log lines, the Worker's own included, carry the request's ID. They live
// in package queue, which imports this one, so that this package stays
// standard library only.
//
// # Cost
//
// The middleware allocates twice per request (the context, which holds the
// ID and the header's value, and the request copy r.WithContext makes) and
// nothing more, even when it generates the ID: see BenchmarkMiddleware.
// metrics.HTTP behind it allocates nothing, so request IDs and RED metrics
// together cost those 2 allocations (bench/'s BenchmarkMiddleware, beside
// otelhttp and slok/go-http-metrics).
//
// Middleware order: put this middleware outside the middleware that read
// the ID (metrics.HTTP's exemplars, loggers) and outside a metrics.HTTP
// that reads the mux's pattern (see metrics.HTTP).
package requestid
