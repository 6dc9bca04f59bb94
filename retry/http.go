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
	"sync"
	"syscall"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/timeout"
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
	r := t.Retrier
	if r == nil {
		r = defaultRetrier()
	}
	// The timeouts end the ctx of the round trip; their cancel funcs run
	// when the body of the response returned is closed (or at once, for an
	// error or a response discarded).
	parent := req.Context()
	ctx, cancelTotal := parent, context.CancelFunc(nil)
	if r.o.Timeout > 0 {
		ctx, cancelTotal = context.WithTimeoutCause(parent, r.o.Timeout, timeout.ErrTotal)
	}
	var cancelTry context.CancelFunc // the last try's
	cancel := func() {
		if cancelTry != nil {
			cancelTry()
		}
		if cancelTotal != nil {
			cancelTotal()
		}
	}
	// try makes one round trip of out under ctx, with the per-try timeout.
	try := func(ctx context.Context, out *http.Request) (*http.Response, error) {
		if cancelTry != nil {
			cancelTry()
			cancelTry = nil
		}
		tctx := ctx
		if r.o.AttemptTimeout > 0 {
			tctx, cancelTry = context.WithTimeoutCause(ctx, r.o.AttemptTimeout, timeout.ErrAttempt)
		}
		if tctx != out.Context() {
			out = out.WithContext(tctx) // a shallow copy: req stays as it was
		}
		resp, err := base.RoundTrip(out)
		if err != nil && ctx.Err() == nil && context.Cause(tctx) == timeout.ErrAttempt {
			err = &timeout.Error{Kind: timeout.Attempt, Timeout: r.o.AttemptTimeout, Err: err}
		}
		return resp, err
	}
	if !(idempotentMethod(req.Method) || t.RetryNonIdempotent || req.Header.Get("Idempotency-Key") != "") ||
		(hasBody && req.GetBody == nil) {
		resp, err := try(ctx, req) // one round trip, under both timeouts
		return t.finish(r, parent, ctx, resp, err, cancel)
	}
	var last *http.Response
	attempt := 0
	err := r.do(ctx, func(ctx context.Context) error {
		drain(last) // a retry: the previous answer is not needed
		last = nil
		out := req
		attempt++
		if attempt > 1 {
			out = req.WithContext(ctx)
			out.Header = req.Header.Clone() // req is the caller's: not written
			out.Header.Set(AttemptHeader, strconv.Itoa(attempt))
			if hasBody {
				body, err := req.GetBody()
				if err != nil {
					return Permanent(err)
				}
				out.Body = body
			}
		}
		resp, err := try(ctx, out)
		if err != nil {
			if timeout.IsTimeout(err) || connError(err) {
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
	}, nil)
	if err == nil {
		return t.finish(r, parent, ctx, last, nil, cancel)
	}
	if se := (*statusError)(nil); last != nil && errors.As(err, &se) && parent.Err() == nil && ctx.Err() == nil {
		return t.finish(r, parent, ctx, last, nil, cancel) // gave up on a retryable status: the server's answer
	}
	drain(last)
	return t.finish(r, parent, ctx, nil, err, cancel)
}

// finish returns resp, whose body's Close runs cancel (the timeouts'
// cancel funcs), or err, the total timeout's *timeout.Error when it ended
// the round trip (ctx, under parent, being its ctx).
func (t *Transport) finish(r *Retrier, parent, ctx context.Context, resp *http.Response, err error, cancel func()) (*http.Response, error) {
	if err != nil {
		cancel()
		if r.o.Timeout > 0 && parent.Err() == nil && (context.Cause(ctx) == timeout.ErrTotal || totalDeadline(parent, ctx, err)) {
			return nil, &timeout.Error{Kind: timeout.Total, Timeout: r.o.Timeout, Err: err}
		}
		return nil, err
	}
	if r.o.Timeout == 0 && r.o.AttemptTimeout == 0 {
		return resp, nil
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The body is the connection (an io.ReadWriteCloser): it is left as
		// it is, and the timeouts' ctx ends at its deadline.
		return resp, nil
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// totalDeadline reports whether err is a give-up because the next try
// would start after ctx's deadline, the total timeout's rather than
// parent's.
func totalDeadline(parent, ctx context.Context, err error) bool {
	var ee *ExhaustedError
	if !errors.As(err, &ee) || ee.Reason != ReasonDeadline {
		return false
	}
	own, _ := ctx.Deadline()
	pd, ok := parent.Deadline()
	return !ok || own.Before(pd)
}

// cancelBody runs cancel when the body is closed or read to its end: the
// timeouts cover the whole response, as http.Client.Timeout does.
type cancelBody struct {
	io.ReadCloser
	cancel func()
	once   sync.Once
}

func (b *cancelBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.cancel)
	}
	return n, err
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.cancel)
	return err
}
