package scalekitotel_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/internal/poll"
	scalekitotel "github.com/scalekit-go/scalekit/otel"
)

func newCache(t *testing.T, tr *scalekitotel.Tracer, store cache.Store) *cache.Cache[string] {
	t.Helper()
	c, err := cache.New[string](cache.Options{TTL: time.Hour, Store: store, Tracer: tr.Cache("users"), PollInterval: 5 * time.Millisecond})
	check(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// cacheSpans are the ended spans of the "users" cache.
func cacheSpans(sr *tracetest.SpanRecorder) []sdktrace.ReadOnlySpan {
	return named(sr, "cache get users")
}

func str(s sdktrace.ReadOnlySpan, k string) string {
	v, _ := attr(s, attributeKey(k))
	return v.String()
}

// A Get that loads is one span, the loader's span its child, saying
// the loader answered; a hit makes no span and marks the caller's.
func TestCacheSpanPerLoadingGet(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	c := newCache(t, tr, nil)
	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	var loaderSpan trace.SpanContext
	v, err := c.Get(ctx, "u1", func(ctx context.Context, k string) (string, error) {
		loaderSpan = trace.SpanContextFromContext(ctx)
		return "ada", nil
	})
	if err != nil || v != "ada" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if _, err := c.Get(ctx, "u1", nil); err != nil {
		t.Fatal(err)
	}
	req.End()
	spans := cacheSpans(sr)
	if len(spans) != 1 {
		t.Fatalf("%d cache spans, want 1 (the hit makes none)", len(spans))
	}
	s := spans[0]
	if s.Parent().SpanID() != req.SpanContext().SpanID() || loaderSpan.SpanID() != s.SpanContext().SpanID() {
		t.Fatalf("span parent %v, loader saw %v: want the request's child, the loader's parent", s.Parent(), loaderSpan)
	}
	for k, want := range map[string]string{"scalekit.cache.name": "users", "scalekit.cache.key": "u1", "scalekit.cache.tier": "loader", "scalekit.cache.lease": "none", "scalekit.cache.joined": "false"} {
		if got := str(s, k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	r := named(sr, "request")[0]
	if v, _ := attr(r, scalekitotel.CacheHit); v.AsString() != "l1" {
		t.Errorf("the request span's %s = %q, want l1", scalekitotel.CacheHit, v.AsString())
	}
}

// With a shared Store: the first instance loads under the lease it
// takes, the second reads the Store; a third instance missing while
// the first loads waits on its lease and gets its fill.
func TestCacheSpanTierAndLease(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	store := cache.NewMemoryStore(cache.MemoryStoreOptions{})
	a, b := newCache(t, tr, store), newCache(t, tr, store)
	ctx := context.Background()
	if _, err := a.Get(ctx, "u1", func(context.Context, string) (string, error) { return "ada", nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "u1", nil); err != nil {
		t.Fatal(err)
	}
	s := cacheSpans(sr)
	if len(s) != 2 || str(s[0], "scalekit.cache.tier") != "loader" || str(s[0], "scalekit.cache.lease") != "taken" ||
		str(s[1], "scalekit.cache.tier") != "l2" || str(s[1], "scalekit.cache.lease") != "none" {
		t.Fatalf("spans %v", s)
	}

	// u2: a's loader holds the lease until released; c waits for it.
	c := newCache(t, tr, store)
	release := make(chan struct{})
	loading := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = a.Get(ctx, "u2", func(context.Context, string) (string, error) {
			close(loading)
			<-release
			return "grace", nil
		})
	})
	<-loading
	var got string
	wg.Go(func() { got, _ = c.Get(ctx, "u2", nil) })
	poll.Until(t, 10*time.Second, "c waiting on a's lease", func() bool { return c.Stats().LeaseWaits == 1 })
	close(release)
	wg.Wait()
	if got != "grace" {
		t.Fatalf("c got %q", got)
	}
	var filled sdktrace.ReadOnlySpan
	for _, s := range cacheSpans(sr) {
		if str(s, "scalekit.cache.key") == "u2" && str(s, "scalekit.cache.tier") == "fill" {
			filled = s
		}
	}
	if filled == nil || str(filled, "scalekit.cache.lease") != "waited" {
		t.Fatalf("no u2 span with tier fill, lease waited: %v", cacheSpans(sr))
	}
}

// A Get joining a load in flight says so; a failed load is an error
// span; GetMany counts its keys per source.
func TestCacheSpanJoinedErrorAndMany(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	c := newCache(t, tr, nil)
	ctx := context.Background()
	release := make(chan struct{})
	loading := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = c.Get(ctx, "u1", func(context.Context, string) (string, error) {
			close(loading)
			<-release
			return "ada", nil
		})
	})
	<-loading
	wg.Go(func() { _, _ = c.Get(ctx, "u1", nil) })
	poll.Until(t, 10*time.Second, "the second Get joining", func() bool { return c.Stats().Coalesced == 1 })
	close(release)
	wg.Wait()
	joined := 0
	for _, s := range cacheSpans(sr) {
		if str(s, "scalekit.cache.joined") == "true" {
			joined++
		}
	}
	if joined != 1 {
		t.Fatalf("%d joined spans, want 1", joined)
	}

	if _, err := c.Get(ctx, "bad", func(context.Context, string) (string, error) { return "", errors.New("db down") }); err == nil {
		t.Fatal("no error")
	}
	var failed sdktrace.ReadOnlySpan
	for _, s := range cacheSpans(sr) {
		if str(s, "scalekit.cache.key") == "bad" {
			failed = s
		}
	}
	if failed == nil || failed.Status().Code != codes.Error || str(failed, "scalekit.cache.tier") != "none" {
		t.Fatalf("failed load span %v", failed)
	}

	mctx, req := tp.Tracer("test").Start(ctx, "request")
	res, err := c.GetMany(mctx, []string{"u1", "u3", "u4"}, func(_ context.Context, keys []string) (map[string]string, error) {
		out := map[string]string{}
		for _, k := range keys {
			out[k] = k
		}
		return out, nil
	})
	req.End()
	if err != nil || len(res) != 3 {
		t.Fatalf("GetMany = %v, %v", res, err)
	}
	var many sdktrace.ReadOnlySpan
	for _, s := range cacheSpans(sr) {
		if str(s, "scalekit.cache.keys") == "2" {
			many = s
		}
	}
	if many == nil || str(many, "scalekit.cache.keys.loader") != "2" || many.Parent().SpanID() != req.SpanContext().SpanID() {
		t.Fatalf("GetMany span %v", many)
	}
	if r := named(sr, "request")[0]; str(r, "scalekit.cache.hit") != "l1" {
		t.Fatalf("request span hit = %q (one key answered by the L1)", str(r, "scalekit.cache.hit"))
	}
}

// A caller whose ctx ends while the load runs ends its span with the
// ctx's error and no tier; the load goes on for the others. GetMany too.
func TestCacheSpanCallerLeaves(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	c := newCache(t, tr, nil)
	release := make(chan struct{})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	loading := make(chan struct{})
	go cancelWhen(loading, cancel)
	_, err := c.Get(ctx, "slow", func(context.Context, string) (string, error) {
		close(loading)
		<-release
		return "v", nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Get = %v, want context.Canceled", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	loading2 := make(chan struct{})
	go cancelWhen(loading2, cancel2)
	_, err = c.GetMany(ctx2, []string{"slow2", "slow3"}, func(context.Context, []string) (map[string]string, error) {
		close(loading2)
		<-release
		return nil, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("GetMany = %v, want context.Canceled", err)
	}
	spans := cacheSpans(sr)
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for _, s := range spans {
		if s.Status().Code != codes.Error || (str(s, "scalekit.cache.keys") == "1" && str(s, "scalekit.cache.tier") != "none") ||
			(str(s, "scalekit.cache.keys") == "2" && str(s, "scalekit.cache.keys.loader") != "0") {
			t.Fatalf("span %s: status %v attributes %v", s.Name(), s.Status(), s.Attributes())
		}
	}
}

// cancelWhen calls cancel once ch is closed.
func cancelWhen(ch <-chan struct{}, cancel context.CancelFunc) {
	<-ch
	cancel()
}
