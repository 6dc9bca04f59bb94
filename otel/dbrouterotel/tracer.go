package dbrouterotel

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"weak"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/dbrouter"
)

// The attribute keys.
const (
	// Target is primary or replica.
	Target = attribute.Key("scalekit.dbrouter.target")
	// Replica is the replica's name (as in dbrouter's Stats); unset for
	// the primary.
	Replica = attribute.Key("scalekit.dbrouter.replica")
	// Reason is why: dbrouter.RouteReason's String (write, any, intent,
	// fallback, no_replica, primary_only, token, token_wait,
	// replica_failed).
	Reason = attribute.Key("scalekit.dbrouter.reason")
)

// Options configures New. The zero value works.
type Options struct {
	// CallerSpan also sets the decision on the span in the statement's
	// ctx when the Router routes it, for pools with no pgx tracer (the
	// last statement's decision wins on a span that runs several).
	// Default: false, the pgx tracer side sets it on the query's span.
	CallerSpan bool
}

// Tracer is a dbrouter.RouteTracer and a pgx tracer (pgx.QueryTracer,
// pgx.BatchTracer, pgx.CopyFromTracer, pgx.PrepareTracer): see the
// package doc. It is safe for concurrent use.
type Tracer struct {
	callerSpan bool
	// txs holds, per connection, the decision of the transaction it is
	// in: the Router routes a transaction's BEGIN, and its statements
	// reach the connection with the caller's ctx, which has no decision.
	// Keys are weak: an entry goes when its connection is collected.
	txs sync.Map // weak.Pointer[pgx.Conn] -> *connTx
}

// connTx is the routed transaction a connection is in, if any.
type connTx struct {
	mu     sync.Mutex
	active bool
	d      dbrouter.RouteData
}

var (
	_ dbrouter.RouteTracer = (*Tracer)(nil)
	_ pgx.QueryTracer      = (*Tracer)(nil)
	_ pgx.BatchTracer      = (*Tracer)(nil)
	_ pgx.CopyFromTracer   = (*Tracer)(nil)
	_ pgx.PrepareTracer    = (*Tracer)(nil)
)

// New returns a Tracer.
func New(o Options) (*Tracer, error) {
	return &Tracer{callerSpan: o.CallerSpan}, nil
}

// Compose returns the pgx tracer of a pool (pgx.ConnConfig.Tracer):
// spanMaker, the span-making tracer (otelpgx.NewTracer()), then t, so
// that t's attributes land on the spans spanMaker starts. spanMaker's
// other hooks (batch, copy, prepare, connect, pool acquire) are kept.
func (t *Tracer) Compose(spanMaker pgx.QueryTracer) *multitracer.Tracer {
	return multitracer.New(spanMaker, t)
}

type decisionKey struct{}

// TraceRoute keeps d in ctx for the pgx side (and with CallerSpan sets
// it on ctx's span).
func (t *Tracer) TraceRoute(ctx context.Context, d dbrouter.RouteData) context.Context {
	if t.callerSpan {
		annotate(ctx, d)
	}
	return context.WithValue(ctx, decisionKey{}, d)
}

// annotate sets d on the span in ctx, if it records.
func annotate(ctx context.Context, d dbrouter.RouteData) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if d.Replica == "" {
		span.SetAttributes(Target.String("primary"), Reason.String(d.Reason.String()))
		return
	}
	span.SetAttributes(Target.String("replica"), Replica.String(d.Replica), Reason.String(d.Reason.String()))
}

// fromCtx sets the decision ctx holds, if any, on ctx's span.
func fromCtx(ctx context.Context) context.Context {
	if d, ok := ctx.Value(decisionKey{}).(dbrouter.RouteData); ok {
		annotate(ctx, d)
	}
	return ctx
}

// TraceQueryStart sets the decision on the query's span: the one ctx
// holds, or, for a statement in a transaction the Router routed, the
// transaction's (BEGIN's).
func (t *Tracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if conn == nil {
		return fromCtx(ctx)
	}
	if dec, ok := ctx.Value(decisionKey{}).(dbrouter.RouteData); ok {
		annotate(ctx, dec)
		if txStatement(d.SQL) == "begin" {
			tx := t.connTx(conn, true)
			tx.mu.Lock()
			tx.active, tx.d = true, dec
			tx.mu.Unlock()
			return context.WithValue(ctx, beginKey{}, tx) // a failed BEGIN ends it
		}
		return ctx
	}
	end := txStatement(d.SQL)
	if dec, ok := t.inTx(conn, end == "commit" || end == "rollback"); ok {
		annotate(ctx, dec)
	}
	return ctx
}

// inTx returns the decision of the routed transaction conn is in, if
// any; ending marks the transaction over (the statement is its COMMIT or
// ROLLBACK).
func (t *Tracer) inTx(conn *pgx.Conn, ending bool) (dbrouter.RouteData, bool) {
	tx := t.connTx(conn, false)
	if tx == nil {
		return dbrouter.RouteData{}, false
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	active, dec := tx.active, tx.d
	if ending {
		tx.active = false
	}
	return dec, active
}

// TracePrepareStart sets the decision on the span of a statement's
// preparation (pgx prepares a statement on its first run on a
// connection), as TraceQueryStart does on the query's.
func (t *Tracer) TracePrepareStart(ctx context.Context, conn *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	if _, ok := ctx.Value(decisionKey{}).(dbrouter.RouteData); ok || conn == nil {
		return fromCtx(ctx)
	}
	if dec, ok := t.inTx(conn, false); ok {
		annotate(ctx, dec)
	}
	return ctx
}

// TracePrepareEnd does nothing.
func (t *Tracer) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// connTx returns conn's transaction state, creating it when create.
func (t *Tracer) connTx(conn *pgx.Conn, create bool) *connTx {
	key := weak.Make(conn)
	if v, ok := t.txs.Load(key); ok {
		return v.(*connTx)
	}
	if !create {
		return nil
	}
	v, loaded := t.txs.LoadOrStore(key, &connTx{})
	if !loaded {
		runtime.AddCleanup(conn, func(k weak.Pointer[pgx.Conn]) { t.txs.Delete(k) }, key)
	}
	return v.(*connTx)
}

// txStatement says whether sql begins (begin, start transaction) or ends
// (commit, rollback, end, abort) a transaction, or neither ("").
func txStatement(sql string) string {
	sql = strings.TrimSpace(sql)
	word := sql
	if i := strings.IndexAny(sql, " \t\r\n;"); i >= 0 {
		word = sql[:i]
	}
	switch strings.ToLower(word) {
	case "begin", "start":
		return "begin"
	case "commit", "end":
		return "commit"
	case "rollback", "abort":
		if strings.Contains(strings.ToLower(sql), " to ") { // ROLLBACK TO SAVEPOINT: still in it
			return ""
		}
		return "rollback"
	}
	return ""
}

// beginKey marks the ctx of a routed BEGIN, holding its connTx.
type beginKey struct{}

// TraceQueryEnd ends the transaction's decision when its BEGIN failed.
func (t *Tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	if tx, ok := ctx.Value(beginKey{}).(*connTx); ok && d.Err != nil {
		tx.mu.Lock()
		tx.active = false
		tx.mu.Unlock()
	}
}

// TraceBatchStart sets the decision on the batch's span.
func (t *Tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return fromCtx(ctx)
}

// TraceBatchQuery does nothing.
func (t *Tracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd does nothing.
func (t *Tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TraceCopyFromStart sets the decision on the copy's span.
func (t *Tracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	return fromCtx(ctx)
}

// TraceCopyFromEnd does nothing.
func (t *Tracer) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}
