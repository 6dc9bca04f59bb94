package batch

import (
	"context"
	"errors"
)

// Tracer sees a Loader's fetches (Options.Tracer), the way pgx's tracers
// see queries: small methods taking data structs, so that a tracing
// package (scalekit's otel module) makes spans of them while this
// package imports none. Its methods run on the goroutine that runs the
// fetch, must be safe for concurrent use and must not block.
type Tracer interface {
	// TraceFetchStart is called before a fetch, with the fetch's ctx
	// (the first caller's values, no cancellation of its own); the ctx
	// it returns is the one the fetch gets.
	TraceFetchStart(ctx context.Context, d TraceFetchStartData) context.Context
	// TraceFetchEnd is called when the fetch returned, with the ctx
	// TraceFetchStart returned.
	TraceFetchEnd(ctx context.Context, d TraceFetchEndData)
}

// TraceFetchStartData is what TraceFetchStart gets: how many keys the
// fetch gets, and the ctx of each Load (or key of a LoadMany) that asked
// for them while the batch was open, in order (a caller asking for
// several keys appears once per key; one that joins a fetch already
// running is not there).
type TraceFetchStartData struct {
	Keys    int
	Callers []context.Context
}

// TraceFetchEndData is what TraceFetchEnd gets: the fetch's error (a
// *PanicError for a panic) or, without one, how many keys it did not
// find and how many had an error of their own (NewWithResults).
type TraceFetchEndData struct {
	Keys, NotFound, Failed int
	Err                    error
}

// traceFetch runs b's fetch between the Tracer's calls.
func (l *Loader[K, V]) traceFetch(b *pendingBatch[K, V]) {
	l.mu.Lock()
	callers := b.callers
	b.callers = nil
	l.mu.Unlock()
	ctx := l.o.Tracer.TraceFetchStart(b.ctx, TraceFetchStartData{Keys: len(b.keys), Callers: callers})
	l.fetchInto(ctx, b)
	d := TraceFetchEndData{Keys: len(b.keys), Err: b.err}
	for _, err := range b.errs {
		switch {
		case err == nil:
		case errors.Is(err, ErrNotFound):
			d.NotFound++
		default:
			d.Failed++
		}
	}
	l.o.Tracer.TraceFetchEnd(ctx, d)
}
