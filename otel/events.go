package scalekitotel

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
)

// The names of the span events the package adds.
const (
	// EventRetry is added to the caller's span before each retry
	// (OnRetry).
	EventRetry = "scalekit.retry"
	// EventRateLimitDenied is added to the caller's span when a Limiter
	// wrapped by Tracer.Limiter denies.
	EventRateLimitDenied = "scalekit.ratelimit.denied"
	// EventBreakerStateChange is the event of the span OnStateChange
	// makes.
	EventBreakerStateChange = "scalekit.breaker.state_change"
)

// OnRetry is a retry.Options.OnRetry hook: it adds an event
// EventRetry to the span in ctx (the retried call's caller's) with the
// attempt that failed, its error and the wait before the next one
// (seconds). Without a recording span it does nothing.
func (t *Tracer) OnRetry(ctx context.Context, ev retry.Event) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attribute.Int("scalekit.retry.attempt", ev.Attempt), attribute.Float64("scalekit.retry.wait", ev.Wait.Seconds())}
	if ev.Err != nil {
		attrs = append(attrs, attribute.String("exception.message", ev.Err.Error()))
	}
	span.AddEvent(EventRetry, trace.WithAttributes(attrs...))
}

// OnStateChange is a breaker.Options.OnStateChange hook. A breaker
// changes state on a goroutine of its own, outside any caller's span,
// so each change is a span of its own, "breaker <name>" (no parent),
// holding one event EventBreakerStateChange with the breaker's name and
// the states from and to: a trace search for the breaker's name lists
// its changes.
func (t *Tracer) OnStateChange(name string, from, to breaker.State) {
	attrs := trace.WithAttributes(attribute.String("scalekit.breaker.name", name),
		attribute.String("scalekit.breaker.from", from.String()), attribute.String("scalekit.breaker.to", to.String()))
	_, span := t.tracer.Start(context.Background(), "breaker "+name, trace.WithNewRoot(), attrs)
	span.AddEvent(EventBreakerStateChange, attrs)
	span.End()
}

// Limiter returns l with its denials recorded: each AllowN that denies
// adds an event EventRateLimitDenied to the span in its ctx (the
// request's, behind ratelimit's HTTP middleware; the fetch's, behind a
// queue's Limiter) with name, n, the binding limit's name and the RetryAfter
// (seconds); an error is recorded on the span too. The key is left out
// (client addresses are personal data). Decisions and errors are l's,
// unchanged. Only AllowN is wrapped: optional methods of l are not seen
// through the wrapper.
func (t *Tracer) Limiter(name string, l ratelimit.Limiter) ratelimit.Limiter {
	return &tracedLimiter{l: l, name: attribute.String("scalekit.ratelimit.name", name)}
}

type tracedLimiter struct {
	l    ratelimit.Limiter
	name attribute.KeyValue
}

func (tl *tracedLimiter) AllowN(ctx context.Context, key string, n int) (ratelimit.Decision, error) {
	d, err := tl.l.AllowN(ctx, key, n)
	if err == nil && d.Allowed {
		return d, nil
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return d, err
	}
	if err != nil {
		span.RecordError(err, trace.WithAttributes(tl.name))
		return d, err
	}
	span.AddEvent(EventRateLimitDenied, trace.WithAttributes(tl.name, attribute.Int("scalekit.ratelimit.n", n),
		attribute.String("scalekit.ratelimit.limit", d.Limit.Name),
		attribute.Float64("scalekit.ratelimit.retry_after", d.RetryAfter.Seconds())))
	return d, err
}
