package scalekitotel_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	scalekitotel "github.com/scalekit-go/scalekit/otel"
)

// recorder is a real SDK TracerProvider recording every ended span.
func recorder(t testing.TB) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, sr
}

// newTracer is a Tracer over tp.
func newTracer(t testing.TB, o scalekitotel.Options) *scalekitotel.Tracer {
	t.Helper()
	tr, err := scalekitotel.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// attr returns the value of key in s's attributes and whether it is set.
func attr(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// named returns the ended spans called name.
func named(sr *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// attributeKey is attribute.Key, for keys written as strings in tables.
func attributeKey(s string) attribute.Key { return attribute.Key(s) }
