package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseRetryAfter parses a Retry-After header value, delta-seconds or an
// HTTP-date, into a wait from now. A date in the past is 0. It reports
// false for an empty or malformed value.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(365*24*time.Hour/time.Second) {
			secs = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(0, t.Sub(now)), true
}

// Transport is an http.RoundTripper that retries with Retrier: on 429,
// 502, 503 and 504 responses (waiting at least their Retry-After, capped at
// MaxRetryAfter) and on connection errors. It never retries a request whose
// method is not idempotent (POST, PATCH, ...) unless it carries an
// Idempotency-Key header or RetryNonIdempotent is set, nor one whose body
// cannot be replayed (no GetBody). Discarded responses are drained and
// closed.
type Transport struct {
	// Base does the round trips. Default: http.DefaultTransport.
	Base http.RoundTripper
	// Retrier decides attempts, backoff and budget; required.
	Retrier *Retrier
	// RetryNonIdempotent retries every method. Default: false.
	RetryNonIdempotent bool
	// MaxRetryAfter caps a server's Retry-After; a longer one gives up
	// with the response. Default: 30s.
	MaxRetryAfter time.Duration
}

var idempotent = map[string]bool{"GET": true, "HEAD": true, "OPTIONS": true, "TRACE": true, "PUT": true, "DELETE": true}

type retryableStatus struct{ resp *http.Response }

func (e *retryableStatus) Error() string { return "retry: server answered " + e.resp.Status }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.Retrier == nil {
		return nil, fmt.Errorf("%w: Transport.Retrier is required", ErrInvalid)
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	maxRA := t.MaxRetryAfter
	if maxRA == 0 {
		maxRA = 30 * time.Second
	}
	canRetry := (idempotent[req.Method] || t.RetryNonIdempotent || req.Header.Get("Idempotency-Key") != "") &&
		(req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
	if !canRetry {
		return base.RoundTrip(req)
	}
	var last *http.Response
	err := t.Retrier.Do(req.Context(), func(ctx context.Context) error {
		if last != nil { // a retry: discard the previous answer, replay the body
			io.Copy(io.Discard, io.LimitReader(last.Body, 64<<10))
			last.Body.Close()
			last = nil
		}
		r := req.Clone(ctx)
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return Permanent(err)
			}
			r.Body = body
		}
		resp, err := base.RoundTrip(r)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			return err // connection errors are retryable
		}
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			last = resp
			if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				if ra > maxRA {
					return Permanent(&retryableStatus{resp})
				}
				return &RetryAfterError{Err: &retryableStatus{resp}, After: ra}
			}
			return &retryableStatus{resp}
		}
		last = resp
		return nil
	})
	var rs *retryableStatus
	if err != nil && errors.As(err, &rs) && last != nil {
		return last, nil // gave up: hand over the server's last answer
	}
	if err != nil {
		if last != nil {
			last.Body.Close()
		}
		return nil, err
	}
	return last, nil
}
