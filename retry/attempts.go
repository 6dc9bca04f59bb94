package retry

import (
	"context"
	"net/http"
	"strconv"
)

// AttemptHeader is the request header Transport sets on a retry: the
// attempt's number, from 2 ("X-Retry-Attempt: 2"). A first attempt
// carries none. Middleware reads it on the server side.
const AttemptHeader = "X-Retry-Attempt"

// retriedKey marks a ctx whose work serves a request that is itself a
// retry.
type retriedKey struct{}

// WithRetried returns a ctx marking its work as serving a request that is
// itself a retry: a Retrier's Do under it makes one attempt and returns its
// error as is, so that a stack of services retries at one layer only (the
// client's) instead of multiplying attempts at every layer, as gRPC's
// retry pushback does across hops. Middleware sets it from AttemptHeader.
func WithRetried(ctx context.Context) context.Context {
	return context.WithValue(ctx, retriedKey{}, struct{}{})
}

// IsRetried reports whether ctx was marked by WithRetried.
func IsRetried(ctx context.Context) bool { return ctx.Value(retriedKey{}) != nil }

// Middleware marks the ctx of a request whose AttemptHeader says it is a
// retry (an attempt number of 2 or more) with WithRetried, so the
// handler's own retry loops (a Retrier's Do, a Transport's round trips)
// do not retry under it: the client that retried is the one layer that
// retries. Requests without the header, or with a malformed one, pass as
// they are.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get(AttemptHeader); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n >= 2 {
				r = r.WithContext(WithRetried(r.Context()))
			}
		}
		next.ServeHTTP(w, r)
	})
}
