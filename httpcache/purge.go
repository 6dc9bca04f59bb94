package httpcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/retry"
)

// Purger removes every cached response tagged with any of keys from an
// edge cache. Purge returns nil only once the cache has accepted the
// purge of every key.
type Purger interface {
	Purge(ctx context.Context, keys []string) error
}

// ErrPurge is wrapped by every error of a purge the edge cache did not
// accept (a *PurgeError when it answered).
var ErrPurge = errors.New("httpcache: purge failed")

// PurgeError is a purge request the edge cache answered with a status
// other than 2xx. It Is ErrPurge.
type PurgeError struct {
	// Status is the response's status code.
	Status int
	// Body is the start of the response's body (at most 512 bytes).
	Body string
}

// Error reports the status and body.
func (e *PurgeError) Error() string {
	return fmt.Sprintf("httpcache: purge failed: %d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
}

// Is reports whether target is ErrPurge.
func (e *PurgeError) Is(target error) bool { return target == ErrPurge }

// HTTPPurgerOptions configures NewHTTPPurger. URL is required.
type HTTPPurgerOptions struct {
	// URL receives the purge requests (http or https): Fastly's
	// https://api.fastly.com/service/<id>/purge, a Varnish's address.
	// Required.
	URL string
	// Method is the purge request's method, a token: "POST" or "PURGE".
	// Default: "POST".
	Method string
	// KeysHeader is the request field carrying the keys, joined with
	// Separator (Fastly: "Surrogate-Key"; Varnish with the VCL of
	// scalekittest.Varnish: "xkey-purge"). Not with BodyField.
	// Default: "Surrogate-Key" unless BodyField is set.
	KeysHeader string
	// Separator joins the keys in KeysHeader: " " or ",". Default: " ".
	Separator string
	// BodyField, when set, sends the keys as a JSON body {BodyField:
	// [keys]} instead of a field (Cloudflare: "tags"). Default: "".
	BodyField string
	// Header is added to every purge request (an API token). Default: none.
	Header http.Header
	// MaxKeysPerRequest splits a purge of more keys into several
	// requests, each retried on its own; in [1, 10000]. Default: 256.
	MaxKeysPerRequest int
	// Client makes the requests. Default: an http.Client with no timeout
	// of its own (Timeout bounds each attempt).
	Client *http.Client
	// Timeout bounds each attempt. Default: 5s.
	Timeout time.Duration
	// Breaker stops purge requests while the edge cache keeps failing, so
	// callers fail at once instead of waiting out timeouts. A 4xx other
	// than 408 and 429 (a misconfiguration) does not count against it.
	// Default: opens after 5 consecutive failures, for 1s growing to 30s.
	Breaker *breaker.Breaker
	// Retrier retries failed attempts (5xx, 408, 429 with its Retry-After,
	// connection errors; never other 4xx). Default: 3 attempts, backoff
	// from 100ms, paid for by a retry budget (retry.Budget, 10% of
	// attempts plus 1 per second), so an edge outage does not triple the
	// purge traffic.
	Retrier *retry.Retrier
	// Clock replaces the system clock for Retry-After dates (see package
	// clock); nil is the real time.
	Clock clock.Clock
	// Logger receives failed purges at Warn. Default: discard.
	Logger *slog.Logger
}

func (o HTTPPurgerOptions) withDefaults() (HTTPPurgerOptions, error) {
	u, err := url.Parse(o.URL)
	if o.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, fmt.Errorf("%w: HTTPPurgerOptions.URL must be an http(s) URL, got %q", ErrInvalid, o.URL)
	}
	if o.Method == "" {
		o.Method = http.MethodPost
	}
	if !isTokenField(o.Method) {
		return o, fmt.Errorf("%w: HTTPPurgerOptions.Method %q is not a method token", ErrInvalid, o.Method)
	}
	if o.BodyField != "" && o.KeysHeader != "" {
		return o, fmt.Errorf("%w: HTTPPurgerOptions.KeysHeader and BodyField are exclusive", ErrInvalid)
	}
	if o.BodyField == "" && o.KeysHeader == "" {
		o.KeysHeader = "Surrogate-Key"
	}
	if o.KeysHeader != "" && !isTokenField(o.KeysHeader) {
		return o, fmt.Errorf("%w: HTTPPurgerOptions.KeysHeader %q is not a field name", ErrInvalid, o.KeysHeader)
	}
	if o.Separator, err = separator("HTTPPurgerOptions.Separator", o.Separator, " "); err != nil {
		return o, err
	}
	if o.MaxKeysPerRequest == 0 {
		o.MaxKeysPerRequest = 256
	}
	if o.MaxKeysPerRequest < 1 || o.MaxKeysPerRequest > 10000 {
		return o, fmt.Errorf("%w: HTTPPurgerOptions.MaxKeysPerRequest must be in [1, 10000], got %d", ErrInvalid, o.MaxKeysPerRequest)
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Timeout < 0 {
		return o, fmt.Errorf("%w: HTTPPurgerOptions.Timeout must be > 0, got %v", ErrInvalid, o.Timeout)
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Logger == nil {
		o.Logger = logx.Discard
	}
	if o.Breaker == nil {
		if o.Breaker, err = breaker.New(breaker.Options{Name: "httpcache-purge", ConsecutiveFailures: 5, OpenTimeout: time.Second,
			OpenTimeoutMultiplier: 2, MaxOpenTimeout: 30 * time.Second, Clock: o.Clock, Logger: o.Logger}); err != nil {
			return o, err
		}
	}
	if o.Retrier == nil {
		budget, err := retry.NewBudget(retry.BudgetOptions{Ratio: 0.1, MinRetriesPerSecond: 1, Clock: o.Clock})
		if err != nil {
			return o, err
		}
		if o.Retrier, err = retry.New(retry.Options{Budget: budget, Clock: o.Clock, Logger: o.Logger}); err != nil {
			return o, err
		}
	}
	return o, nil
}

// isClientError: a 4xx that retrying cannot fix (not 408 or 429).
func isClientError(err error) bool {
	var pe *PurgeError
	return errors.As(err, &pe) && pe.Status >= 400 && pe.Status < 500 && pe.Status != 408 && pe.Status != 429
}

// HTTPPurger purges keys with HTTP requests to an edge cache's purge
// endpoint, through a breaker and a retry budget. It is safe for
// concurrent use.
type HTTPPurger struct {
	o  HTTPPurgerOptions
	st struct{ purges, keys, requests, failures atomic.Uint64 }
}

var _ Purger = (*HTTPPurger)(nil)

// NewHTTPPurger returns an HTTPPurger, or an error naming the bad option.
func NewHTTPPurger(o HTTPPurgerOptions) (*HTTPPurger, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	o.Header = o.Header.Clone()
	return &HTTPPurger{o: o}, nil
}

// PurgerStats counts what an HTTPPurger did.
type PurgerStats struct {
	// Purges is the Purge calls; Keys the keys they asked to purge.
	Purges, Keys uint64
	// Requests is the HTTP attempts made (retries included).
	Requests uint64
	// Failures is the Purge calls that returned an error.
	Failures uint64
}

// Stats returns a snapshot of the counters.
func (p *HTTPPurger) Stats() PurgerStats {
	return PurgerStats{Purges: p.st.purges.Load(), Keys: p.st.keys.Load(), Requests: p.st.requests.Load(), Failures: p.st.failures.Load()}
}

// Purge sends keys, MaxKeysPerRequest per request, each request retried
// by the Retrier through the Breaker. It returns nil when every request
// was accepted (2xx); otherwise the first error, which wraps ErrPurge
// (or breaker.ErrOpen, retry.ErrExhausted, the ctx's error). No keys is
// a no-op; an invalid key is an ErrInvalid error and nothing is sent.
func (p *HTTPPurger) Purge(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	for _, k := range keys {
		if err := validKey(k); err != nil {
			return err
		}
	}
	p.st.purges.Add(1)
	p.st.keys.Add(uint64(len(keys)))
	for len(keys) > 0 {
		n := min(len(keys), p.o.MaxKeysPerRequest)
		batch := keys[:n]
		keys = keys[n:]
		err := p.o.Retrier.Do(ctx, func(ctx context.Context) error {
			// A 4xx (a misconfiguration, not an outage) is a healthy
			// answer to the breaker, whatever its options, and is not retried.
			var clientErr error
			err := p.o.Breaker.Do(ctx, func(ctx context.Context) error {
				err := p.attempt(ctx, batch)
				if isClientError(err) {
					clientErr, err = err, nil
				}
				return err
			})
			if clientErr != nil {
				return retry.Permanent(clientErr)
			}
			return err
		})
		if err != nil {
			p.st.failures.Add(1)
			p.o.Logger.WarnContext(ctx, "httpcache: purge failed", slog.String("url", p.o.URL), slog.Int("keys", len(batch)), slog.Any("error", err))
			if !errors.Is(err, ErrPurge) && !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w: %w", ErrPurge, err)
			}
			return err
		}
	}
	return nil
}

// attempt makes one purge request.
func (p *HTTPPurger) attempt(ctx context.Context, keys []string) error {
	p.st.requests.Add(1)
	ctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	defer cancel()
	var body io.Reader
	if p.o.BodyField != "" {
		b, err := json.Marshal(map[string][]string{p.o.BodyField: keys})
		if err != nil {
			return retry.Permanent(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, p.o.Method, p.o.URL, body)
	if err != nil {
		return retry.Permanent(err)
	}
	for k, v := range p.o.Header {
		req.Header[k] = v
	}
	if p.o.BodyField != "" {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set(p.o.KeysHeader, strings.Join(keys, p.o.Separator))
	}
	resp, err := p.o.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	pe := &PurgeError{Status: resp.StatusCode, Body: strings.TrimSpace(string(snippet))}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		if d, ok := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), clock.Now(p.o.Clock)); ok {
			return &retry.AfterError{Err: pe, After: d}
		}
		return pe
	}
	return pe
}

// VarnishPurgerOptions configures NewVarnishPurger. URL is required.
type VarnishPurgerOptions struct {
	// URL is the Varnish's address (http://127.0.0.1:6081/). Required.
	URL string
	// Soft marks the objects stale instead of removing them
	// (xkey.softpurge): Varnish may still serve them within their grace
	// (stale-while-revalidate) while it refetches. Default: false, a hard
	// purge (xkey.purge).
	Soft bool
	// Header, Client, Timeout, MaxKeysPerRequest, Breaker, Retrier,
	// Clock and Logger are HTTPPurgerOptions'.
	Header            http.Header
	Client            *http.Client
	Timeout           time.Duration
	MaxKeysPerRequest int
	Breaker           *breaker.Breaker
	Retrier           *retry.Retrier
	Clock             clock.Clock
	Logger            *slog.Logger
}

// NewVarnishPurger returns a purger for a Varnish with the xkey module
// (Debian's varnish-modules) whose VCL purges the keys of a PURGE
// request's xkey-purge field (xkey-softpurge when Soft), as VarnishVCL's
// does: an HTTPPurger with Method PURGE and KeysHeader xkey-purge.
func NewVarnishPurger(o VarnishPurgerOptions) (*HTTPPurger, error) {
	h := "xkey-purge"
	if o.Soft {
		h = "xkey-softpurge"
	}
	return NewHTTPPurger(HTTPPurgerOptions{URL: o.URL, Method: "PURGE", KeysHeader: h, Separator: " ", Header: o.Header,
		Client: o.Client, Timeout: o.Timeout, MaxKeysPerRequest: o.MaxKeysPerRequest, Breaker: o.Breaker, Retrier: o.Retrier,
		Clock: o.Clock, Logger: o.Logger})
}
