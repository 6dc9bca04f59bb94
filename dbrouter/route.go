package dbrouter

import "context"

// RouteTracer sees where the Router sends each statement
// (Options.RouteTracer), before it reaches the pool: the ctx it returns
// is the one the pool's query (and so its pgx QueryTracer) gets. It is
// the pgx tracer way, with no tracing library imported here: the otel
// module's dbrouterotel puts the decision in ctx and, as a pgx
// QueryTracer composed after otelpgx or any span-making tracer, sets it
// on the query's span. It must be safe for concurrent use and must not
// block. Default: none (one nil check per statement).
type RouteTracer interface {
	TraceRoute(ctx context.Context, d RouteData) context.Context
}

// RouteData is one routing decision: the replica chosen (its name, as in
// Stats), or "" for the primary, and why.
type RouteData struct {
	Replica string
	Reason  RouteReason
}

// RouteReason is why a statement went where it did.
type RouteReason uint8

const (
	// RouteWrite: a write (Exec, CopyFrom, SendBatch, a read-write
	// transaction) goes to the primary.
	RouteWrite RouteReason = iota
	// RouteAny: a read with no token went to a healthy replica.
	RouteAny
	// RouteIntent: dbrouter.Primary(ctx) sent the read to the primary.
	RouteIntent
	// RouteFallback: no healthy replica had replayed the floor; the read
	// fell back to the primary.
	RouteFallback
	// RouteNoReplica: as RouteFallback, with NoFallback: the read failed
	// with ErrNoReplica.
	RouteNoReplica
	// RoutePrimaryOnly: the Router has no replicas.
	RoutePrimaryOnly
	// RouteToken: a read with a read-your-writes token went to a replica
	// that had replayed it or, when none had (or within the
	// ConsistencyWindow), to the primary.
	RouteToken
	// RouteTokenWait: no replica had replayed the token at once; the
	// read waited up to TokenWait and went to the replica that caught up,
	// or to the primary when none did.
	RouteTokenWait
	// RouteReplicaFailed: the replica chosen failed before the first row
	// (down, a recovery conflict, a write sent as a read); the read runs
	// again on the primary.
	RouteReplicaFailed
)

// String returns the reason's name: write, any, intent, fallback,
// no_replica, primary_only, token, token_wait, replica_failed.
func (r RouteReason) String() string {
	switch r {
	case RouteWrite:
		return "write"
	case RouteAny:
		return "any"
	case RouteIntent:
		return "intent"
	case RouteFallback:
		return "fallback"
	case RouteNoReplica:
		return "no_replica"
	case RoutePrimaryOnly:
		return "primary_only"
	case RouteToken:
		return "token"
	case RouteTokenWait:
		return "token_wait"
	case RouteReplicaFailed:
		return "replica_failed"
	}
	return "unknown"
}

// traceRoute tells the RouteTracer where a statement goes (rep nil: the
// primary) and returns the ctx to run it with.
func (r *Router) traceRoute(ctx context.Context, rep *replica, why RouteReason) context.Context {
	d := RouteData{Reason: why}
	if rep != nil {
		d.Replica = rep.name
	}
	return r.o.RouteTracer.TraceRoute(ctx, d)
}

// retryRoute is the ctx of a read retried on the primary after its
// replica failed: the RouteTracer is told.
func (r *Router) retryRoute(ctx context.Context) context.Context {
	if r.o.RouteTracer == nil {
		return ctx
	}
	return r.traceRoute(ctx, nil, RouteReplicaFailed)
}
