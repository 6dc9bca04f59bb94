package scalekitotel

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/cache"
)

// The cache's attribute keys.
const (
	// CacheName is the name given to Tracer.Cache.
	CacheName = attribute.Key("scalekit.cache.name")
	// CacheKey is the key of a Get's load span (a GetMany's span has
	// CacheKeys instead).
	CacheKey = attribute.Key("scalekit.cache.key")
	// CacheKeys is how many keys a load span waited for.
	CacheKeys = attribute.Key("scalekit.cache.keys")
	// CacheTier is where a Get's answer came from: l2 (the Store, fresh),
	// l2_stale (a stale Store value, its refresh running), loader (this
	// instance loaded it), fill (another instance's fill, waited for),
	// l1_copy (a refresh's copy), or none (failed).
	CacheTier = attribute.Key("scalekit.cache.tier")
	// CacheLease says what a load did about the fill lease: taken (this
	// instance won it and filled the Store), waited (another instance held
	// it), or none.
	CacheLease = attribute.Key("scalekit.cache.lease")
	// CacheJoined is true when a Get joined a load already in flight.
	CacheJoined = attribute.Key("scalekit.cache.joined")
	// CacheHit is set on the caller's span by a hit: l1 or l1_stale.
	CacheHit = attribute.Key("scalekit.cache.hit")
	// CacheRefresh is set on the caller's span by a hit that started a
	// background refresh: early (XFetch) or stale.
	CacheRefresh = attribute.Key("scalekit.cache.refresh")
)

// Cache returns a cache.Tracer (cache.Options.Tracer) for the cache
// named name. Each Get or GetMany that misses the L1 gets a span "cache
// get <name>" (the Store read and the loader are its children, when
// this call runs them) saying where the answer came from: a Get's span
// has CacheTier, CacheLease and CacheJoined; a GetMany's counts its keys
// per source (scalekit.cache.keys.l2, .l2_stale, .loader, .leased,
// .fill, .l1_copy, .joined, .lease_waited). A hit makes no span: it
// sets CacheHit (and CacheRefresh when it started a refresh) on the
// caller's span, if it records; a GetMany the L1 answered several keys
// of sets scalekit.cache.hits and the stale and refresh counts instead.
// The last hit's attributes win on a span that sees several.
func (t *Tracer) Cache(name string) cache.Tracer {
	return &cacheTracer{t.scoped(CacheName.String(name), "cache get "+name)}
}

type cacheTracer struct{ scope }

func (c *cacheTracer) TraceHit(ctx context.Context, d cache.TraceHitData) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if d.Keys > 1 {
		span.SetAttributes(c.name, attribute.Int("scalekit.cache.hits", d.Keys), attribute.Int("scalekit.cache.hits.stale", d.Stale),
			attribute.Int("scalekit.cache.refreshes.early", d.EarlyRefreshes), attribute.Int("scalekit.cache.refreshes.stale", d.StaleRefreshes))
		return
	}
	hit := "l1"
	if d.Stale > 0 {
		hit = "l1_stale"
	}
	span.SetAttributes(c.name, CacheHit.String(hit))
	switch {
	case d.EarlyRefreshes > 0:
		span.SetAttributes(CacheRefresh.String("early"))
	case d.StaleRefreshes > 0:
		span.SetAttributes(CacheRefresh.String("stale"))
	}
}

func (c *cacheTracer) TraceLoadStart(ctx context.Context, d cache.TraceLoadStartData) context.Context {
	attrs := []attribute.KeyValue{c.name, CacheKeys.Int(len(d.Keys))}
	if len(d.Keys) == 1 {
		attrs = append(attrs, CacheKey.String(d.Keys[0]))
	}
	ctx, _ = c.t.tracer.Start(ctx, c.spanName, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return ctx
}

func (c *cacheTracer) TraceLoadEnd(ctx context.Context, d cache.TraceLoadEndData) {
	span := trace.SpanFromContext(ctx)
	defer span.End()
	if !span.IsRecording() {
		return
	}
	if d.Keys == 1 {
		tier, lease := "none", "none"
		switch {
		case d.Store > 0:
			tier = "l2"
		case d.StoreStale > 0:
			tier = "l2_stale"
		case d.Loaded > 0:
			tier = "loader"
		case d.Filled > 0:
			tier = "fill"
		case d.Copy > 0:
			tier = "l1_copy"
		}
		switch {
		case d.Leased > 0:
			lease = "taken"
		case d.LeaseWaited > 0:
			lease = "waited"
		}
		span.SetAttributes(CacheTier.String(tier), CacheLease.String(lease), CacheJoined.Bool(d.Joined > 0))
	} else {
		span.SetAttributes(attribute.Int("scalekit.cache.keys.l2", d.Store), attribute.Int("scalekit.cache.keys.l2_stale", d.StoreStale),
			attribute.Int("scalekit.cache.keys.loader", d.Loaded), attribute.Int("scalekit.cache.keys.leased", d.Leased),
			attribute.Int("scalekit.cache.keys.fill", d.Filled), attribute.Int("scalekit.cache.keys.l1_copy", d.Copy),
			attribute.Int("scalekit.cache.keys.joined", d.Joined), attribute.Int("scalekit.cache.keys.lease_waited", d.LeaseWaited))
	}
	if d.Err != nil && !errors.Is(d.Err, cache.ErrNotFound) {
		span.RecordError(d.Err)
		span.SetStatus(codes.Error, d.Err.Error())
	}
}
