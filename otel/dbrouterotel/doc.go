// Package dbrouterotel puts dbrouter's routing decisions on the query
// spans: where each statement went (the primary, or which replica) and
// why (a write, a read with no token, Primary(ctx), a read-your-writes
// token, a token wait, a fallback, a replica that failed), composed with
// the span-making pgx tracer (otelpgx) rather than replacing it.
//
//	rt, _ := dbrouterotel.New(dbrouterotel.Options{})
//	r, _ := dbrouter.Open(ctx, primaryURL, replicaURLs, dbrouter.Options{RouteTracer: rt,
//		ConfigurePool: func(_ string, cfg *pgxpool.Config) error {
//			cfg.ConnConfig.Tracer = multitracer.New(otelpgx.NewTracer(), rt) // the span maker first
//			return nil
//		}})
//
// The Router tells the Tracer its decision (dbrouter.RouteTracer) with
// the statement's ctx, and the Tracer keeps it there; as a pgx tracer
// (query, batch and copy) placed after otelpgx in a multitracer it finds
// the span otelpgx started in ctx and sets the attributes
// scalekit.dbrouter.target (primary or replica), scalekit.dbrouter.replica
// (the replica's name) and scalekit.dbrouter.reason (dbrouter.RouteReason)
// on it. With no span-making pgx tracer the attributes land on the span
// ctx holds, the caller's; Options.CallerSpan sets them there at routing
// time for pools that have no pgx tracer at all. A transaction's
// statements reach the pool with the caller's ctx, which holds no
// decision: the Tracer keeps the decision of a routed BEGIN for its
// connection and puts it on each statement until COMMIT or ROLLBACK. It lives in a package of
// its own so that scalekitotel does not compile pgx.
//
// QueryTracer is a minimal span-making pgx tracer (one span per query,
// database semantic conventions) for programs without otelpgx: put it
// first, multitracer.New(qt, rt). By default it traces only queries made
// within a span (QueryTracerOptions.RootSpans), so a pool's background
// statements make no traces.
package dbrouterotel
