package scalekitotel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/internal/poll"
	scalekitotel "github.com/scalekit-go/scalekit/otel"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
)

// events returns the events called name of the ended span called span.
func events(sr *tracetest.SpanRecorder, span, name string) []map[string]string {
	var out []map[string]string
	for _, s := range named(sr, span) {
		for _, e := range s.Events() {
			if e.Name != name {
				continue
			}
			m := map[string]string{}
			for _, kv := range e.Attributes {
				m[string(kv.Key)] = kv.Value.String()
			}
			out = append(out, m)
		}
	}
	return out
}

// Each retry is an event on the caller's span, with its attempt, error
// and wait.
func TestRetryEvents(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	r, err := retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Constant{D: time.Millisecond}, OnRetry: tr.OnRetry})
	check(t, err)
	ctx, s := tp.Tracer("test").Start(context.Background(), "request")
	n := 0
	_ = r.Do(ctx, func(context.Context) error {
		if n++; n < 3 {
			return errors.New("flaky")
		}
		return nil
	})
	s.End()
	evs := events(sr, "request", scalekitotel.EventRetry)
	if len(evs) != 2 || evs[0]["scalekit.retry.attempt"] != "1" || evs[1]["scalekit.retry.attempt"] != "2" ||
		evs[0]["exception.message"] != "flaky" || evs[0]["scalekit.retry.wait"] != "0.001" {
		t.Fatalf("events %v", evs)
	}
}

// A breaker's state changes are spans of their own holding an event.
func TestBreakerStateChangeEvents(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	b, err := breaker.New(breaker.Options{Name: "payments", ConsecutiveFailures: 1, OnStateChange: tr.OnStateChange})
	check(t, err)
	_ = b.Do(context.Background(), func(context.Context) error { return errors.New("down") })
	poll.Until(t, 10*time.Second, "the state change span", func() bool { return len(named(sr, "breaker payments")) == 1 })
	evs := events(sr, "breaker payments", scalekitotel.EventBreakerStateChange)
	if len(evs) != 1 || evs[0]["scalekit.breaker.from"] != "closed" || evs[0]["scalekit.breaker.to"] != "open" || evs[0]["scalekit.breaker.name"] != "payments" {
		t.Fatalf("events %v", evs)
	}
}

// A denial behind the HTTP middleware is an event on the request's
// span; an allowed request adds none.
func TestLimiterDenialEvents(t *testing.T) {
	tp, sr := recorder(t)
	tr := newTracer(t, scalekitotel.Options{TracerProvider: tp})
	local, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Name: "login", Rate: 1, Period: time.Hour}}})
	check(t, err)
	mw, err := ratelimit.NewHTTP(ratelimit.HTTPOptions{Limiter: tr.Limiter("login", local), Key: func(*http.Request) (string, error) { return "k", nil }})
	check(t, err)
	h := mw.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	codes := []int{}
	for range 2 {
		ctx, s := tp.Tracer("test").Start(context.Background(), "request")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/login", nil).WithContext(ctx))
		s.End()
		codes = append(codes, w.Code)
	}
	evs := events(sr, "request", scalekitotel.EventRateLimitDenied)
	if codes[0] != 200 || codes[1] != 429 || len(evs) != 1 || evs[0]["scalekit.ratelimit.name"] != "login" || evs[0]["scalekit.ratelimit.limit"] != "login" {
		t.Fatalf("codes %v events %v", codes, evs)
	}
}
