package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scalekit-go/scalekit/clock"
)

// maxRetryAfterValue bounds what ParseRetryAfter returns, so no value can
// overflow a time.Duration.
const maxRetryAfterValue = 365 * 24 * time.Hour

// ParseRetryAfter parses the value of a Retry-After header (RFC 9110
// 10.2.3), delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015
// 07:28:00 GMT"), into a wait from now. A date in the past gives 0; waits
// are capped at a year. It reports false for an empty, negative or
// malformed value.
func ParseRetryAfter(value string, now time.Time) (time.Duration, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if value[0] >= '0' && value[0] <= '9' {
		secs, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
				return maxRetryAfterValue, true
			}
			return 0, false
		}
		if secs > uint64(maxRetryAfterValue/time.Second) {
			return maxRetryAfterValue, true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	return min(maxRetryAfterValue, max(0, t.Sub(now))), true
}

// Transport is an http.RoundTripper that retries requests with a Retrier.
// Use it as an http.Client's Transport; the zero value works (the default
// Retrier over http.DefaultTransport).
//
// It retries responses 429, 502, 503 and 504, waiting at least their
// Retry-After, and connection errors: refused or
// reset connections, unexpected EOFs, timeouts (anything that is a
// *net.OpError or a net.Error timing out). Other errors (bad URL, TLS
// verification, ...) are returned at once.
//
// It retries only requests that are safe to send again: an idempotent
// method (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), or any method with an
// Idempotency-Key header or with RetryNonIdempotent set; and a body that
// can be replayed (none, or GetBody set, as http.NewRequest does for
// bytes and strings readers). Other requests make one round trip.
//
// A Retry-After is honoured up to the Retrier's Options.MaxRetryAfter
// (default 30s), the cap Do applies to an AfterError: a longer one
// ends the retries with that response, at once.
//
// Responses it discards are drained (up to 64 KiB, so the connection can
// be reused) and closed. When it gives up on a retryable status (attempts,
// budget, deadline, a Retry-After over MaxRetryAfter), it returns the last
// response and no error, as the base transport would; when it gives up on
// a connection error, it returns the *ExhaustedError; if the request's ctx
// ends, its error.
type Transport struct {
	// Base makes the round trips. Default: http.DefaultTransport.
	Base http.RoundTripper
	// Retrier decides attempts, backoff and budget; its Clock reads
	// Retry-After dates. Default: nil, the default Retrier (3 attempts).
	Retrier *Retrier
	// RetryNonIdempotent retries every method, POST and PATCH included.
	// Default: false (only idempotent methods and Idempotency-Key).
	RetryNonIdempotent bool
	// MaxRetryAfter, when set, replaces the Retrier's Options.MaxRetryAfter
	// for this Transport: a Retry-After longer than it ends the retries
	// with that response. Must be >= 0. Default: 0, the Retrier's (whose
	// default is 30s, as this field's was).
	//
	// Deprecated: set Options.MaxRetryAfter on the Retrier, the one cap
	// for Do and Transport alike. This field still works as described.
	MaxRetryAfter time.Duration
}

var _ http.RoundTripper = (*Transport)(nil)

// statusError is the error of an attempt answered with a retryable status.
type statusError struct{ code int }

func (e *statusError) Error() string {
	return "retry: server answered " + strconv.Itoa(e.code) + " " + http.StatusText(e.code)
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func idempotentMethod(m string) bool {
	switch m {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// connError reports whether err means the request may not have reached
// the server or the connection broke: worth another attempt.
func connError(err error) bool {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// drain discards what is left of a response so its connection can be
// reused, and closes it.
func drain(resp *http.Response) {
	if resp == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if t.MaxRetryAfter < 0 {
		if req.Body != nil {
			_ = req.Body.Close() // a RoundTripper always closes the body
		}
		return nil, fmt.Errorf("%w: Transport.MaxRetryAfter must be >= 0 (0: the Retrier's Options.MaxRetryAfter), got %v", ErrInvalid, t.MaxRetryAfter)
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if !(idempotentMethod(req.Method) || t.RetryNonIdempotent || req.Header.Get("Idempotency-Key") != "") ||
		(hasBody && req.GetBody == nil) {
		return base.RoundTrip(req)
	}
	r := t.Retrier
	if r == nil {
		r = defaultRetrier()
	}
	var last *http.Response
	first := true
	err := r.Do(req.Context(), func(ctx context.Context) error {
		drain(last) // a retry: the previous answer is not needed
		last = nil
		out := req
		if !first || r.o.Budget != nil { // Do may have given a new ctx
			out = req.WithContext(ctx) // a shallow copy: req stays as it was
		}
		if !first && hasBody {
			body, err := req.GetBody()
			if err != nil {
				return Permanent(err)
			}
			out.Body = body
		}
		first = false
		resp, err := base.RoundTrip(out)
		if err != nil {
			if connError(err) {
				return err
			}
			return Permanent(err)
		}
		last = resp
		if !retryableStatus(resp.StatusCode) {
			return nil
		}
		se := &statusError{resp.StatusCode}
		if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), clock.Now(r.o.Clock)); ok {
			// Do gives up on one over the cap (ReasonRetryAfter).
			if t.MaxRetryAfter > 0 {
				return &cappedRetryAfter{&AfterError{Err: se, After: ra}, t.MaxRetryAfter}
			}
			return &AfterError{Err: se, After: ra}
		}
		return se
	})
	if err == nil {
		return last, nil
	}
	if se := (*statusError)(nil); last != nil && errors.As(err, &se) && req.Context().Err() == nil {
		return last, nil // gave up on a retryable status: the server's answer
	}
	drain(last)
	return nil, err
}
