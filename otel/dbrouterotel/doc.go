// Package dbrouterotel puts dbrouter's routing decisions on the query
// spans: where each statement went (the primary, or which replica) and
// why (a write, a read with no token, Primary(ctx), a read-your-writes
// token, a token wait, a fallback, a replica that failed), composed with
// otelpgx, the span-making pgx tracer, rather than replacing it.
//
//	rt, _ := dbrouterotel.New(dbrouterotel.Options{})
//	r, _ := dbrouter.Open(ctx, primaryURL, replicaURLs, dbrouter.Options{RouteTracer: rt,
//		ConfigurePool: func(_ string, cfg *pgxpool.Config) error {
//			cfg.ConnConfig.Tracer = rt.Compose(otelpgx.NewTracer()) // otelpgx first, then rt
//			return nil
//		}})
//
// The Router tells the Tracer its decision (dbrouter.RouteTracer) with
// the statement's ctx, and the Tracer keeps it there; as a pgx tracer
// (query, prepare, batch and copy) placed after otelpgx in a pgx
// multitracer (Compose builds it, in that order) it finds the span
// otelpgx started in ctx and sets the attributes
// scalekit.dbrouter.target (primary or replica), scalekit.dbrouter.replica
// (the replica's name) and scalekit.dbrouter.reason (dbrouter.RouteReason)
// on it. otelpgx traces only statements made within a recording span, so
// the router's own replay checks and a pool's background statements make
// no traces. With no span-making pgx tracer the attributes land on the
// span ctx holds, the caller's; Options.CallerSpan sets them there at
// routing time for pools that have no pgx tracer at all. A transaction's
// statements reach the pool with the caller's ctx, which holds no
// decision: the Tracer keeps the decision of a routed BEGIN for its
// connection and puts it on each statement until COMMIT or ROLLBACK. It
// lives in a package of its own so that scalekitotel does not compile
// pgx; it does not import otelpgx either: any span-making pgx tracer
// composes the same way.
package dbrouterotel
