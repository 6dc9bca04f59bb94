package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/internal/logx"
)

// KeyFunc derives the rate-limit key of a request. An error answers 400
// with its message. The middleware passes every key through BoundKey, so a
// key longer than MaxKeyLen bytes is held as a fixed-size hash.
type KeyFunc func(r *http.Request) (string, error)

// MaxKeyLen is the longest key, in bytes, that BoundKey (and so the
// middleware and the Header keyer) passes through unchanged.
const MaxKeyLen = 256

// hashedKeyPrefix starts every key BoundKey hashes. A short key that already
// starts with it is hashed too, so no client can choose a short key equal to
// the hash of someone else's long one.
const hashedKeyPrefix = "sha256:"

// BoundKey bounds the memory one key can take in a Limiter: a key of at most
// MaxKeyLen bytes is returned as is, a longer one (or one starting with
// "sha256:") as "sha256:" and the hex SHA-256 of the key, 71 bytes. Distinct
// keys stay distinct (but for a SHA-256 collision): there is no truncation
// and so no silent sharing of a bucket. Applying it twice is as safe as
// once: it only adds one more hash to prefixed keys.
func BoundKey(key string) string {
	if len(key) <= MaxKeyLen && !strings.HasPrefix(key, hashedKeyPrefix) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return hashedKeyPrefix + hex.EncodeToString(sum[:])
}

// ClientIPOptions configures NewClientIP. The zero value keys by the
// connection's peer address, IPv6 clients by their /64.
type ClientIPOptions struct {
	// TrustedProxies are the proxies whose forwarding header is believed.
	// Default: none, and the forwarding header is ignored, so clients
	// cannot spoof it.
	TrustedProxies []netip.Prefix
	// Header is the forwarding header the trusted proxies maintain:
	// "X-Forwarded-For" or "Forwarded" (RFC 7239), case-insensitive. Only
	// that one is read: a proxy that maintains one header passes the other
	// through as the client sent it, so reading both would let a client
	// spoof its address. Default: "X-Forwarded-For".
	Header string
	// IPv6Prefix is the prefix length IPv6 clients are keyed by, 1 to 128.
	// One site usually gets a whole /64 and can rotate through its 2^64
	// addresses, so keying by /128 would let it pass any limit (and, past
	// LocalOptions.MaxKeys, evict other clients' state). Keys look like
	// "2001:db8:1:2::/64"; with 128, like "2001:db8::1". Default: 64.
	IPv6Prefix int
	// IPv4Prefix is the prefix length IPv4 clients are keyed by, 1 to 32.
	// Keys look like "192.0.2.1" with 32, like "192.0.2.0/24" otherwise.
	// Default: 32.
	IPv4Prefix int
}

// ClientIP keys requests by client address (see NewClientIP) with the
// given trusted proxies, the X-Forwarded-For header, IPv4 addresses whole
// and IPv6 addresses by their /64.
func ClientIP(trusted ...netip.Prefix) KeyFunc {
	c := &clientIP{trusted: slices.Clone(trusted), v6: 64, v4: 32}
	return c.key
}

// NewClientIP returns a KeyFunc keying requests by client address, or an
// error naming the option to fix.
//
// The client is the host of r.RemoteAddr, or, when the connection comes
// from a trusted proxy, found by walking the forwarding header's hops from
// the right (the hop the trusted proxy appended) to the left: the first hop
// that is not itself a trusted proxy is the client. A hop that is not an
// address (garbage, or in Forwarded an "unknown" or obfuscated "_x" node, or
// an element without for=) ends the walk: what is to its left was written
// by a party nobody vouches for, so the last trusted hop is the key. When
// every hop is trusted, the leftmost is the key. Several header lines count
// as one list, in order. Forwarded values may be quoted, and IPv6 nodes are
// bracketed with an optional port ("[2001:db8::1]:4711"). Zones are dropped
// and IPv4-mapped IPv6 addresses are keyed as IPv4, so every key is short.
func NewClientIP(opts ClientIPOptions) (KeyFunc, error) {
	if opts.IPv6Prefix == 0 {
		opts.IPv6Prefix = 64
	}
	if opts.IPv4Prefix == 0 {
		opts.IPv4Prefix = 32
	}
	var forwarded bool
	switch {
	case opts.Header == "" || strings.EqualFold(opts.Header, "X-Forwarded-For"):
	case strings.EqualFold(opts.Header, "Forwarded"):
		forwarded = true
	default:
		return nil, fmt.Errorf("%w: ClientIPOptions.Header must be \"X-Forwarded-For\" or \"Forwarded\", got %q", ErrInvalid, opts.Header)
	}
	if opts.IPv6Prefix < 1 || opts.IPv6Prefix > 128 {
		return nil, fmt.Errorf("%w: ClientIPOptions.IPv6Prefix must be 1..128, got %d", ErrInvalid, opts.IPv6Prefix)
	}
	if opts.IPv4Prefix < 1 || opts.IPv4Prefix > 32 {
		return nil, fmt.Errorf("%w: ClientIPOptions.IPv4Prefix must be 1..32, got %d", ErrInvalid, opts.IPv4Prefix)
	}
	c := &clientIP{trusted: slices.Clone(opts.TrustedProxies), forwarded: forwarded, v6: opts.IPv6Prefix, v4: opts.IPv4Prefix}
	return c.key, nil
}

type clientIP struct {
	trusted   []netip.Prefix
	forwarded bool
	v6, v4    int
}

func (c *clientIP) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// format is the key of address a: whole at a full-length prefix, else the
// masked prefix.
func (c *clientIP) format(a netip.Addr) string {
	bitsLen := c.v4
	if a.Is6() {
		bitsLen = c.v6
	}
	if bitsLen == a.BitLen() {
		return a.String()
	}
	p, _ := a.Prefix(bitsLen) // cannot fail: a has no zone, bitsLen is in range
	return p.String()
}

func (c *clientIP) key(r *http.Request) (string, error) {
	peer, err := parseHost(r.RemoteAddr)
	if err != nil {
		return "", fmt.Errorf("ratelimit: cannot parse the client address %q: %w", BoundKey(r.RemoteAddr), err)
	}
	if !c.isTrusted(peer) {
		return c.format(peer), nil
	}
	client := peer
	walk := func(hop netip.Addr, ok bool) bool {
		if !ok {
			return false // stop at garbage: keep the last good hop
		}
		client = hop
		return c.isTrusted(hop)
	}
	if c.forwarded {
		forwardedHops(r.Header.Values("Forwarded"), walk)
	} else {
		xffHops(r.Header.Values("X-Forwarded-For"), walk)
	}
	return c.format(client), nil
}

// xffHops calls yield with each X-Forwarded-For hop, rightmost first, until
// it returns false.
func xffHops(lines []string, yield func(netip.Addr, bool) bool) {
	for i := len(lines) - 1; i >= 0; i-- {
		parts := strings.Split(lines[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := parseHost(strings.TrimSpace(parts[j]))
			if !yield(a, err == nil) {
				return
			}
		}
	}
}

// forwardedHops calls yield with the for= node of each Forwarded element,
// rightmost first, until it returns false. A line that does not parse is
// one bad hop.
func forwardedHops(lines []string, yield func(netip.Addr, bool) bool) {
	for i := len(lines) - 1; i >= 0; i-- {
		fors, err := forwardedFor(lines[i])
		if err != nil {
			yield(netip.Addr{}, false)
			return
		}
		for j := len(fors) - 1; j >= 0; j-- {
			a, ok := parseNode(fors[j])
			if !yield(a, ok) {
				return
			}
		}
	}
}

// forwardedFor parses one Forwarded field line (RFC 7239 section 4:
// elements separated by commas, pairs by semicolons, values tokens or
// quoted strings) and returns each element's for= value, "" when it has
// none. Empty list elements are skipped.
func forwardedFor(v string) ([]string, error) {
	var out []string
	i := 0
	skipOWS := func() {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
	}
	for {
		skipOWS()
		if i == len(v) {
			return out, nil
		}
		if v[i] == ',' { // empty element
			i++
			continue
		}
		var forVal string
		for { // the pairs of one element
			skipOWS()
			start := i
			for i < len(v) && isTchar(v[i]) {
				i++
			}
			name := v[start:i]
			if name == "" || i == len(v) || v[i] != '=' {
				return nil, errors.New("ratelimit: malformed Forwarded pair")
			}
			i++
			var val string
			if i < len(v) && v[i] == '"' {
				var b strings.Builder
				i++
				for {
					if i == len(v) {
						return nil, errors.New("ratelimit: unterminated quoted string in Forwarded")
					}
					ch := v[i]
					i++
					if ch == '"' {
						break
					}
					if ch == '\\' {
						if i == len(v) {
							return nil, errors.New("ratelimit: unterminated quoted string in Forwarded")
						}
						ch = v[i]
						i++
					}
					b.WriteByte(ch)
				}
				val = b.String()
			} else {
				start := i
				for i < len(v) && isTchar(v[i]) {
					i++
				}
				val = v[start:i]
			}
			if strings.EqualFold(name, "for") {
				forVal = val
			}
			skipOWS()
			if i == len(v) {
				return append(out, forVal), nil
			}
			if v[i] == ';' {
				i++
				continue
			}
			if v[i] == ',' {
				i++
				break
			}
			return nil, errors.New("ratelimit: malformed Forwarded element")
		}
		out = append(out, forVal)
	}
}

// isTchar reports whether c is an RFC 9110 token character.
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// parseNode parses an RFC 7239 node: an IPv4 address or a bracketed IPv6
// address, each with an optional port. "unknown", obfuscated identifiers
// ("_hidden") and anything else are not addresses.
func parseNode(s string) (netip.Addr, bool) {
	if s == "" || s[0] == '_' || strings.EqualFold(s, "unknown") {
		return netip.Addr{}, false
	}
	host, port := s, ""
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host, port = s[1:end], s[end+1:]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || !validNodePort(port) {
			return netip.Addr{}, false
		}
		return a.Unmap().WithZone(""), true
	}
	if a, err := netip.ParseAddr(s); err == nil { // a bare address (a bare IPv6 is tolerated)
		return a.Unmap().WithZone(""), true
	}
	if k := strings.LastIndexByte(s, ':'); k >= 0 {
		host, port = s[:k], s[k:]
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() || !validNodePort(port) {
		return netip.Addr{}, false
	}
	return a, true
}

// validNodePort reports whether p is empty or ":" and a port number or an
// obfuscated port ("_" and letters, digits, ".", "_", "-").
func validNodePort(p string) bool {
	if p == "" {
		return true
	}
	if len(p) < 2 || p[0] != ':' {
		return false
	}
	p = p[1:]
	if p[0] == '_' {
		for i := 1; i < len(p); i++ {
			c := p[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		return true
	}
	n, err := strconv.ParseUint(p, 10, 16)
	return err == nil && len(p) <= 5 && n <= 65535
}

func parseHost(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return a.Unmap().WithZone(""), err
}

// Header keys requests by the value of a header (an API key, a tenant id),
// bounded by BoundKey. A request without it gets 400.
func Header(name string) KeyFunc {
	return func(r *http.Request) (string, error) {
		if v := r.Header.Get(name); v != "" {
			return BoundKey(v), nil
		}
		return "", fmt.Errorf("ratelimit: the %s header is required", name)
	}
}

// MiddlewareOptions configures Middleware. Only Limiter is required.
type MiddlewareOptions struct {
	// Limiter decides; required.
	Limiter Limiter
	// Key derives each request's key; whatever it returns goes through
	// BoundKey. Default: ClientIP() with no trusted proxies (IPv6 clients
	// keyed by /64).
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
		key = BoundKey(key)
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
