package retry

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/pause"
)

// ErrRateLimited is matched by the *RateLimitedError a Pacer returns for
// a request it did not send because the server said its quota is spent.
var ErrRateLimited = errors.New("retry: server quota spent, request not sent")

// RateLimitedError is a request a Pacer held back: the server's quota for
// Host is spent for RetryAfter more. It matches ErrRateLimited.
type RateLimitedError struct {
	Host       string
	RetryAfter time.Duration
}

// Error names the host and the wait.
func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("retry: %s's quota is spent for %v; request not sent", e.Host, e.RetryAfter)
}

// Is reports whether target is ErrRateLimited.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// Pacer is an http.RoundTripper that reads what servers say of their rate
// limits and holds requests back instead of sending them into a 429. Per
// host (the request URL's), it reads from every response:
//
//   - Retry-After (on 429 and 503): no request before it passes;
//   - RateLimit (draft-ietf-httpapi-ratelimit-headers-10: a list of
//     "policy";r=<remaining>;t=<seconds>): a policy with r=0 means none
//     before t seconds; otherwise at most the smallest r more requests
//     before the t of that policy.
//
// RateLimit-Policy announces quotas, not what is left, and is not needed.
// A request to a host whose quota is spent waits for it, at most MaxWait
// and never past its ctx deadline, or is not sent: RoundTrip returns a
// *RateLimitedError (errors.Is ErrRateLimited) at once. Put it under a
// Transport (Transport{Base: &Pacer{}}) so retries are paced too: its
// refusals are not retried. The zero value works; it is safe for
// concurrent use.
type Pacer struct {
	// Base makes the round trips. Default: http.DefaultTransport.
	Base http.RoundTripper
	// MaxWait is the longest a request waits for the host's quota before
	// it is refused. Must be >= 0. Default: 0, refused at once.
	MaxWait time.Duration
	// Clock replaces the system clock (see package clock); nil is the real
	// time. It dates what the headers say; waits use the runtime's timers.
	Clock clock.Clock

	mu    sync.Mutex
	hosts map[string]*quota

	sent, waited, refused atomic.Uint64
}

// quota is what a host said of its limits.
type quota struct {
	until     time.Time // no request before it (r=0, Retry-After)
	remaining int64     // requests left before reset; -1: unknown
	reset     time.Time // when remaining stops applying
}

var _ http.RoundTripper = (*Pacer)(nil)

// PacerStats is a snapshot of a Pacer's counters.
type PacerStats struct {
	// Sent counts requests sent; Waited those that waited for quota
	// first; Refused those not sent (*RateLimitedError).
	Sent, Waited, Refused uint64
}

// Stats returns a snapshot.
func (p *Pacer) Stats() PacerStats {
	return PacerStats{Sent: p.sent.Load(), Waited: p.waited.Load(), Refused: p.refused.Load()}
}

// admit takes one request's place in host's quota, or returns how long
// until there is one.
func (p *Pacer) admit(host string, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.hosts[host]
	if q == nil {
		return 0
	}
	if now.Before(q.until) {
		return q.until.Sub(now)
	}
	if q.remaining >= 0 && now.Before(q.reset) {
		if q.remaining == 0 {
			return q.reset.Sub(now)
		}
		q.remaining--
	}
	return 0
}

// RoundTrip implements http.RoundTripper.
func (p *Pacer) RoundTrip(req *http.Request) (*http.Response, error) {
	base := p.Base
	if base == nil {
		base = http.DefaultTransport
	}
	fail := func(err error) (*http.Response, error) {
		if req.Body != nil {
			_ = req.Body.Close() // a RoundTripper always closes the body
		}
		return nil, err
	}
	if p.MaxWait < 0 {
		return fail(fmt.Errorf("%w: Pacer.MaxWait must be >= 0 (0: refuse at once), got %v", ErrInvalid, p.MaxWait))
	}
	host := req.URL.Host
	ctx := req.Context()
	for waited := false; ; waited = true {
		wait := p.admit(host, clock.Now(p.Clock))
		if wait <= 0 {
			if waited {
				p.waited.Add(1)
			}
			break
		}
		dl, hasDL := ctx.Deadline()
		if wait > p.MaxWait || hasDL && time.Until(dl) < wait {
			p.refused.Add(1)
			return fail(&RateLimitedError{Host: host, RetryAfter: wait})
		}
		if !pause.For(ctx.Done(), wait) {
			return fail(ctxError(ctx))
		}
	}
	p.sent.Add(1)
	resp, err := base.RoundTrip(req)
	if err == nil {
		p.learn(host, resp, clock.Now(p.Clock))
	}
	return resp, err
}

// learn records what resp says of host's limits.
func (p *Pacer) learn(host string, resp *http.Response, now time.Time) {
	var until time.Time
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			until = now.Add(ra)
		}
	}
	remaining, reset := int64(-1), time.Time{}
	for _, v := range resp.Header.Values("RateLimit") {
		for _, it := range parseRateLimit(v) {
			if it.r < 0 || it.t < 0 {
				continue
			}
			at := now.Add(time.Duration(it.t) * time.Second)
			if it.r == 0 {
				if at.After(until) {
					until = at
				}
				continue
			}
			if remaining < 0 || it.r < remaining {
				remaining, reset = it.r, at
			}
		}
	}
	if until.IsZero() && remaining < 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hosts == nil {
		p.hosts = map[string]*quota{}
	}
	q := p.hosts[host]
	if q == nil {
		if len(p.hosts) >= maxPacerHosts {
			clear(p.hosts) // bounded memory: forget what every host said
		}
		q = &quota{}
		p.hosts[host] = q
	}
	if until.After(q.until) {
		q.until = until
	}
	if remaining >= 0 {
		q.remaining, q.reset = remaining, reset
	}
}

// maxPacerHosts bounds the hosts a Pacer remembers.
const maxPacerHosts = 10000

// rateLimitItem is one item of a RateLimit field: r and t, -1 when
// absent or malformed.
type rateLimitItem struct{ r, t int64 }

// parseRateLimit reads a RateLimit field value, an RFC 9651 List of
// Items (a string or token, the policy name) with parameters, keeping the
// r and t parameters. It is lenient: a malformed item is skipped.
func parseRateLimit(v string) []rateLimitItem {
	var out []rateLimitItem
	for _, member := range splitOutsideQuotes(v, ',') {
		params := splitOutsideQuotes(member, ';')
		if len(params) == 0 || strings.TrimSpace(params[0]) == "" {
			continue
		}
		it := rateLimitItem{r: -1, t: -1}
		for _, kv := range params[1:] {
			k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
			if err != nil || n < 0 || n > 999_999_999_999_999 {
				continue
			}
			switch k {
			case "r":
				it.r = n
			case "t":
				it.t = n
			}
		}
		if it.t < 0 { // no t: "more quota" time unknown, the item cannot date a wait
			it.t = 0
			if it.r == 0 {
				it.r = -1
			}
		}
		out = append(out, it)
	}
	return out
}

// splitOutsideQuotes splits s at sep, except inside a quoted string
// (with backslash escapes).
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
