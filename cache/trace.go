package cache

import "context"

// Tracer sees the Gets and GetManys of a cache (Options.Tracer), the way
// pgx's tracers see queries: small methods taking data structs, so that
// a tracing package (scalekit's otel module) makes spans of them while
// this package imports none. A nil Tracer costs one nil check per call.
// Its methods are called from the caller's goroutine, must be safe for
// concurrent use and must not block.
type Tracer interface {
	// TraceHit is called when the L1 answers keys of a Get or GetMany
	// without a wait (fresh, stale or remembered not-found values),
	// with ctx the caller's. No span per hit is expected: an
	// implementation notes the hit on the caller's span, if any.
	TraceHit(ctx context.Context, d TraceHitData)
	// TraceLoadStart is called when keys of a Get or GetMany miss the L1
	// and must wait for the Store or a load, before either is asked. The
	// ctx it returns is the one the Store read and, if this call starts
	// the load, the loader (in the background) see: a span put in it is
	// their parent.
	TraceLoadStart(ctx context.Context, d TraceLoadStartData) context.Context
	// TraceLoadEnd is called when that Get or GetMany has its answer
	// (or its ctx ended), with the ctx TraceLoadStart returned.
	TraceLoadEnd(ctx context.Context, d TraceLoadEndData)
}

// TraceHitData is what TraceHit gets: how many keys the L1 answered, and
// of them how many were served stale (past their freshness, while a
// refresh runs) and how many started a background refresh, early
// (XFetch) or of a stale value.
type TraceHitData struct {
	Keys, Stale, EarlyRefreshes, StaleRefreshes int
}

// TraceLoadStartData is what TraceLoadStart gets: the keys that missed
// the L1 (the caller's, before a namespace's versioning).
type TraceLoadStartData struct {
	Keys []string
}

// TraceLoadEndData is what TraceLoadEnd gets: where the keys that missed
// the L1 got their answer. Each key counts in one of Store, StoreStale,
// Loaded, Filled or Copy, or in none when its load failed or the
// caller's ctx ended first; Joined and LeaseWaited count across them.
type TraceLoadEndData struct {
	Keys int
	// Store counts keys the Store (L2) answered fresh.
	Store int
	// StoreStale counts keys served a stale Store value at once while
	// their refresh runs.
	StoreStale int
	// Loaded counts keys this instance's loader answered; Leased of them
	// under a fill lease this instance won (and then filled the Store).
	Loaded, Leased int
	// Filled counts keys another instance's fill answered while this one
	// waited on its lease.
	Filled int
	// Copy counts keys answered with the L1 copy a refresh in flight
	// kept (a Get that joined a refresh).
	Copy int
	// Joined counts keys whose load was in flight already (another Get
	// of this instance started it).
	Joined int
	// LeaseWaited counts keys whose lease another instance held, so that
	// this instance waited for its fill (Filled, or taken over and
	// Loaded when the holder gave up).
	LeaseWaited int
	// Err is the answer's error: the first failed key's, or ctx.Err().
	Err error
}

// source is where a call's answer came from (TraceLoadEndData).
type source uint8

const (
	fromNone source = iota // failed, or not delivered
	fromStore
	fromStoreStale
	fromLoad
	fromLeasedLoad
	fromFill
	fromCopy
)

// count adds cl's answer to d (the call was done, or the caller left).
func (d *TraceLoadEndData) count(src source, waited bool) {
	switch src {
	case fromStore:
		d.Store++
	case fromStoreStale:
		d.StoreStale++
	case fromLoad:
		d.Loaded++
	case fromLeasedLoad:
		d.Loaded++
		d.Leased++
	case fromFill:
		d.Filled++
	case fromCopy:
		d.Copy++
	}
	if waited {
		d.LeaseWaited++
	}
}
