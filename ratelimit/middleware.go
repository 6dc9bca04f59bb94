package ratelimit

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/internal/logx"
)

// KeyFunc derives the rate-limit key of a request. An error answers 400
// with its message.
type KeyFunc func(r *http.Request) (string, error)

// ClientIP keys requests by client address: the host of r.RemoteAddr, or,
// when the connection comes from one of the trusted proxies, the rightmost
// address in X-Forwarded-For that is not itself a trusted proxy. Without
// trusted proxies X-Forwarded-For is ignored, so clients cannot spoof it.
func ClientIP(trusted ...netip.Prefix) KeyFunc {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) (string, error) {
		peer, err := parseHost(r.RemoteAddr)
		if err != nil {
			return "", fmt.Errorf("ratelimit: cannot parse the client address %q: %w", r.RemoteAddr, err)
		}
		if !isTrusted(peer) {
			return peer.String(), nil
		}
		client := peer
		hops := r.Header.Values("X-Forwarded-For")
		for i := len(hops) - 1; i >= 0; i-- {
			parts := strings.Split(hops[i], ",")
			for j := len(parts) - 1; j >= 0; j-- {
				a, err := parseHost(strings.TrimSpace(parts[j]))
				if err != nil {
					return client.String(), nil // stop at garbage: keep the last good hop
				}
				client = a
				if !isTrusted(a) {
					return a.String(), nil
				}
			}
		}
		return client.String(), nil
	}
}

func parseHost(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return a.Unmap(), err
}

// Header keys requests by the value of a header (an API key, a tenant id).
// A request without it gets 400.
func Header(name string) KeyFunc {
	return func(r *http.Request) (string, error) {
		if v := r.Header.Get(name); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("ratelimit: the %s header is required", name)
	}
}

// MiddlewareOptions configures Middleware. Only Limiter is required.
type MiddlewareOptions struct {
	// Limiter decides; required.
	Limiter Limiter
	// Key derives each request's key. Default: ClientIP() with no trusted
	// proxies.
	Key KeyFunc
	// Cost is how many events a request counts for. Default: 1.
	Cost func(*http.Request) int
	// Policy is announced in the RateLimit-Policy header. Default: the
	// Limiter's Policy() when it has that method (Local and ratelimitredis
	// do); with neither, the header is left out.
	Policy Policy
	// DenyOnError answers 503 when the Limiter fails (a backend outage the
	// limiter does not absorb itself). Default: false, the request is served
	// (fail open), logged and counted.
	DenyOnError bool
	// Denied writes the 429 response after the headers are set. Default: a
	// plain-text body saying when to retry.
	Denied http.Handler
	// Logger receives limiter errors. Default: discard.
	Logger *slog.Logger
}

// MiddlewareStats counts what the middleware did.
type MiddlewareStats struct {
	Allowed, Denied, BadKey, Errors uint64
}

// RateLimiter is the HTTP middleware built by NewMiddleware.
type RateLimiter struct {
	o                               MiddlewareOptions
	policyHeader                    string
	allowed, denied, badKey, errors atomic.Uint64
}

// NewMiddleware returns the middleware for opts, or an error naming the
// option to fix. Every response carries the RateLimit header (and
// RateLimit-Policy when a policy is known); a denied request gets 429 with
// Retry-After and the handler is not called.
func NewMiddleware(opts MiddlewareOptions) (*RateLimiter, error) {
	if opts.Limiter == nil {
		return nil, fmt.Errorf("%w: MiddlewareOptions.Limiter is required", ErrInvalid)
	}
	if opts.Key == nil {
		opts.Key = ClientIP()
	}
	if opts.Cost == nil {
		opts.Cost = func(*http.Request) int { return 1 }
	}
	if opts.Policy == nil {
		if pl, ok := opts.Limiter.(interface{ Policy() Policy }); ok {
			opts.Policy = pl.Policy()
		}
	}
	if opts.Policy != nil {
		p, err := opts.Policy.Normalize()
		if err != nil {
			return nil, fmt.Errorf("MiddlewareOptions.Policy: %w", err)
		}
		opts.Policy = p
	}
	if opts.Denied == nil {
		opts.Denied = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, "rate limited: retry after %s seconds\n", w.Header().Get("Retry-After"))
		})
	}
	opts.Logger = logx.Or(opts.Logger)
	m := &RateLimiter{o: opts}
	var parts []string
	for _, l := range opts.Policy {
		parts = append(parts, fmt.Sprintf("%s;q=%d;w=%d", sfString(l.Name), l.Rate, ceilSeconds(l.Period)))
	}
	m.policyHeader = strings.Join(parts, ", ")
	return m, nil
}

// Middleware is NewMiddleware(opts) as a func(http.Handler) http.Handler.
func Middleware(opts MiddlewareOptions) (func(http.Handler) http.Handler, error) {
	m, err := NewMiddleware(opts)
	if err != nil {
		return nil, err
	}
	return m.Handler, nil
}

// Handler wraps next.
func (m *RateLimiter) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := m.o.Key(r)
		if err == nil && key == "" {
			err = errors.New("ratelimit: the request has an empty key")
		}
		if err != nil {
			m.badKey.Add(1)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d, err := m.o.Limiter.AllowN(r.Context(), key, m.o.Cost(r))
		if err != nil {
			m.errors.Add(1)
			m.o.Logger.LogAttrs(r.Context(), slog.LevelWarn, "ratelimit: limiter failed", slog.String("key", key), slog.Any("error", err), slog.Bool("denied", m.o.DenyOnError))
			if errors.Is(err, ErrInvalid) {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if m.o.DenyOnError {
				http.Error(w, "rate limiter unavailable", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		SetHeaders(w.Header(), m.policyHeader, d)
		if !d.Allowed {
			m.denied.Add(1)
			m.o.Denied.ServeHTTP(w, r)
			return
		}
		m.allowed.Add(1)
		next.ServeHTTP(w, r)
	})
}

// Stats returns a snapshot of the middleware's counters.
func (m *RateLimiter) Stats() MiddlewareStats {
	return MiddlewareStats{Allowed: m.allowed.Load(), Denied: m.denied.Load(), BadKey: m.badKey.Load(), Errors: m.errors.Load()}
}

// SetHeaders sets the IETF rate-limit fields (draft-ietf-httpapi-ratelimit-
// headers) for decision d: RateLimit-Policy (when policy is not empty; see
// NewMiddleware), RateLimit `"name";r=<remaining>;t=<seconds to full>`, and
// on a denial Retry-After in whole seconds, rounded up.
func SetHeaders(h http.Header, policy string, d Decision) {
	if policy != "" {
		h.Set("RateLimit-Policy", policy)
	}
	h.Set("RateLimit", sfString(d.Limit.Name)+";r="+strconv.Itoa(d.Remaining)+";t="+strconv.FormatInt(ceilSeconds(d.ResetAfter), 10))
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10))
	}
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}

// sfString quotes s as a structured-field string (RFC 8941): printable
// ASCII with " and \ escaped; other bytes are replaced by '?'.
func sfString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
