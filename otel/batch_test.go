package scalekitotel_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/batch"
	scalekitotel "github.com/scalekit-go/scalekit/otel"
)

// Many callers, each in its own span, share one fetch: one span, linked
// to every caller's span, the fetch's own spans its children.
func TestBatchSpanLinksEveryCaller(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	const n = 20
	var fetchSpan trace.SpanContext
	l, err := batch.New(func(ctx context.Context, keys []int) (map[int]int, error) {
		fetchSpan = trace.SpanContextFromContext(ctx)
		out := map[int]int{}
		for _, k := range keys {
			if k != 0 {
				out[k] = k
			}
		}
		return out, nil
	}, batch.Options{Wait: time.Hour, MaxBatch: n, Tracer: tr.Batch("users")})
	check(t, err)
	callers := make([]trace.SpanContext, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, s := tp.Tracer("test").Start(context.Background(), "request")
			defer s.End()
			callers[i] = s.SpanContext()
			_, _ = l.Load(ctx, i) // key 0 is not found; the 20th key fills the batch
		})
	}
	wg.Wait()
	spans := named(sr, "batch fetch users")
	if len(spans) != 1 {
		t.Fatalf("%d fetch spans, want 1", len(spans))
	}
	s := spans[0]
	if s.SpanContext().SpanID() != fetchSpan.SpanID() {
		t.Fatal("the fetch's ctx does not hold the fetch span")
	}
	linked := map[trace.SpanID]bool{}
	for _, lk := range s.Links() {
		linked[lk.SpanContext.SpanID()] = true
	}
	for i, c := range callers {
		if !linked[c.SpanID()] {
			t.Errorf("caller %d's span is not linked", i)
		}
	}
	if len(s.Links()) != n || str(s, "scalekit.batch.keys") != "20" || str(s, "scalekit.batch.callers") != "20" || str(s, "scalekit.batch.not_found") != "1" {
		t.Fatalf("links %d, attributes %v", len(s.Links()), s.Attributes())
	}
}

// One caller asking for many keys is linked once; a failed fetch is an
// error span.
func TestBatchSpanLoadManyAndError(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	l, err := batch.New(func(context.Context, []string) (map[string]int, error) { return nil, errors.New("db down") },
		batch.Options{Tracer: tr.Batch("users")})
	check(t, err)
	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	_, errs := l.LoadMany(ctx, []string{"a", "b", "c"})
	req.End()
	if errs[0] == nil {
		t.Fatal("no error")
	}
	s := named(sr, "batch fetch users")[0]
	if len(s.Links()) != 1 || s.Parent().SpanID() != req.SpanContext().SpanID() || s.Status().Code != codes.Error {
		t.Fatalf("links %v parent %v status %v", s.Links(), s.Parent(), s.Status())
	}
}
