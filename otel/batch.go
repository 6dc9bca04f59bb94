package scalekitotel

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/batch"
)

// The batch attribute keys.
const (
	// BatchName is the name given to Tracer.Batch.
	BatchName = attribute.Key("scalekit.batch.name")
	// BatchKeys is how many keys a fetch got.
	BatchKeys = attribute.Key("scalekit.batch.keys")
	// BatchCallers is how many distinct spans asked for them (the links).
	BatchCallers = attribute.Key("scalekit.batch.callers")
)

// Batch returns a batch.Tracer (batch.Options.Tracer) for the loader
// named name: each fetch is a span "batch fetch <name>", linked to the
// span of every caller whose key it fetches (each span once), child of
// the first caller's span, with the number of keys, callers, keys not
// found and keys failed; a failed fetch records its error.
func (t *Tracer) Batch(name string) batch.Tracer {
	return &batchTracer{t.scoped(BatchName.String(name), "batch fetch "+name)}
}

type batchTracer struct{ scope }

func (b *batchTracer) TraceFetchStart(ctx context.Context, d batch.TraceFetchStartData) context.Context {
	links := make([]trace.Link, 0, len(d.Callers))
	seen := make(map[trace.SpanID]bool, len(d.Callers))
	for _, c := range d.Callers {
		sc := trace.SpanContextFromContext(c)
		if !sc.IsValid() || seen[sc.SpanID()] {
			continue
		}
		seen[sc.SpanID()] = true
		links = append(links, trace.Link{SpanContext: sc})
	}
	ctx, _ = b.t.tracer.Start(ctx, b.spanName, trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(b.name, BatchKeys.Int(d.Keys), BatchCallers.Int(len(links))))
	return ctx
}

func (b *batchTracer) TraceFetchEnd(ctx context.Context, d batch.TraceFetchEndData) {
	span := trace.SpanFromContext(ctx)
	defer span.End()
	span.SetAttributes(attribute.Int("scalekit.batch.not_found", d.NotFound), attribute.Int("scalekit.batch.failed", d.Failed))
	if d.Err != nil {
		span.RecordError(d.Err)
		span.SetStatus(codes.Error, d.Err.Error())
	}
}
