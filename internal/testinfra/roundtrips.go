package testinfra

import (
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// RoundTrips counts what a client sends: set as a pgx tracer
// (ConnConfig.Tracer) it counts statements, batches and prepares, added as a
// go-redis hook (AddHook) commands and pipelines; each is one round trip
// (to one node). Tests prove a batch is one round trip with it; the
// benchmarks report round trips per operation.
type RoundTrips struct{ n atomic.Int64 }

// Load returns the count.
func (c *RoundTrips) Load() int64 { return c.n.Load() }

// Reset sets the count to 0.
func (c *RoundTrips) Reset() { c.n.Store(0) }

// TraceQueryStart counts a statement (pgx.QueryTracer).
func (c *RoundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

// TraceQueryEnd is part of pgx.QueryTracer.
func (c *RoundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TracePrepareStart counts a prepare (pgx.PrepareTracer).
func (c *RoundTrips) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.n.Add(1)
	return ctx
}

// TracePrepareEnd is part of pgx.PrepareTracer.
func (c *RoundTrips) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// TraceBatchStart counts a batch (pgx.BatchTracer): its statements go
// out together, one round trip.
func (c *RoundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}

// TraceBatchQuery is part of pgx.BatchTracer.
func (c *RoundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd is part of pgx.BatchTracer.
func (c *RoundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// DialHook is part of redis.Hook.
func (c *RoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook counts a command (redis.Hook).
func (c *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook counts a pipeline (redis.Hook).
func (c *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

var (
	_ pgx.QueryTracer   = (*RoundTrips)(nil)
	_ pgx.PrepareTracer = (*RoundTrips)(nil)
	_ redis.Hook        = (*RoundTrips)(nil)
)
