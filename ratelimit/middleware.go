package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
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
		// From the right without splitting: the walk usually stops at the
		// first hop, however long the header.
		line := lines[i]
		for {
			j := strings.LastIndexByte(line, ',')
			a, err := parseHost(strings.TrimSpace(line[j+1:]))
			if !yield(a, err == nil) {
				return
			}
			if j < 0 {
				break
			}
			line = line[:j]
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
		if len(p) == 1 {
			return false
		}
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

// HTTPOptions configures NewHTTP. Only Limiter is required.
type HTTPOptions struct {
	// Limiter decides; required.
	Limiter Limiter
	// Key derives each request's key; whatever it returns goes through
	// BoundKey. Default: ClientIP() with no trusted proxies (IPv6 clients
	// keyed by /64).
	Key KeyFunc
	// Cost is how many events a request counts for. Default: 1.
	Cost func(*http.Request) int
	// Policy is announced in the RateLimit-Policy header, each Limit as
	// Limit.Quota gives it. Default: the Limiter's Policy() when it has that
	// method (Local and ratelimitredis do); with neither, the header is left
	// out.
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

// HTTPStats counts what the middleware did.
type HTTPStats struct {
	// Allowed counts requests served; Denied those answered 429.
	Allowed, Denied uint64
	// BadKey counts requests answered 400 for their key; Errors the
	// Limiter's failures (served or answered 503 per DenyOnError).
	BadKey, Errors uint64
}

// HTTP is the rate-limiting HTTP middleware (its Middleware method),
// built by NewHTTP. It is safe for concurrent use.
type HTTP struct {
	o                               HTTPOptions
	policyHeader                    string
	allowed, denied, badKey, errors atomic.Uint64
}

// NewHTTP returns the middleware for opts, or an error naming the option
// to fix. Every response carries the RateLimit header (and
// RateLimit-Policy when a policy is known); a denied request gets 429 with
// Retry-After and the handler is not called.
func NewHTTP(opts HTTPOptions) (*HTTP, error) {
	if opts.Limiter == nil {
		return nil, fmt.Errorf("%w: HTTPOptions.Limiter is required", ErrInvalid)
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
			return nil, fmt.Errorf("HTTPOptions.Policy: %w", err)
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
	m := &HTTP{o: opts}
	if opts.Policy != nil {
		m.policyHeader = policyHeader(opts.Policy)
	}
	return m, nil
}

// Middleware wraps next: each request is keyed (a bad key gets 400),
// decided by the Limiter, and either served or answered 429 by Denied.
func (m *HTTP) Middleware(next http.Handler) http.Handler {
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
func (m *HTTP) Stats() HTTPStats {
	return HTTPStats{Allowed: m.allowed.Load(), Denied: m.denied.Load(), BadKey: m.badKey.Load(), Errors: m.errors.Load()}
}

// PolicyHeader returns the RateLimit-Policy field value announcing p (see
// SetHeaders and Limit.Quota), or an error naming the bad field of p.
func PolicyHeader(p Policy) (string, error) {
	p, err := p.Normalize()
	if err != nil {
		return "", err
	}
	return policyHeader(p), nil
}

// policyHeader is PolicyHeader of a normalized policy.
func policyHeader(p Policy) string {
	parts := make([]string, len(p))
	for i, l := range p {
		q, w := l.Quota()
		parts[i] = sfString(l.Name) + ";q=" + strconv.FormatInt(q, 10) + ";w=" + strconv.FormatInt(w, 10)
	}
	return strings.Join(parts, ", ")
}

// sfMaxInt is the largest Integer of RFC 9651 structured fields.
const sfMaxInt = 999_999_999_999_999

// Quota returns the quota q and window w (whole seconds, >= 1) that
// RateLimit-Policy announces for l (Period and Burst defaulted as in a
// Policy): the smallest window
// in which l's sustained rate adds up to a whole number of events that is
// at least l.Burst. So q/w is exactly l's rate, and the remaining count a
// RateLimit field reports, at most Burst, never exceeds q.
//
// When Burst*Period/Rate is a whole number of seconds, that is q = Burst
// and w = the time the bucket takes to refill from empty: 2000/s with burst
// 4000 is q=4000;w=2, 100/hour is q=100;w=3600. Otherwise the window is the
// next that works: 5 per 100ms with burst 5 is q=50;w=1 (50 per second,
// exactly the rate; the draft has no sub-second windows), 1 per 7ms is
// q=1000;w=7. Should the exact pair not fit in a structured-field Integer
// (15 digits; only absurd periods such as 1h plus 1ns get there), w is the
// refill time rounded up to whole seconds and q is w seconds' worth of
// events rounded up, at least Burst: r <= q still holds, the rate is
// approximate.
func (l Limit) Quota() (q, w int64) {
	if l.Period == 0 {
		l.Period = time.Second
	}
	if l.Burst == 0 {
		l.Burst = l.Rate
	}
	if l.Rate < 1 || l.Period <= 0 || l.Burst < 1 {
		return int64(max(l.Burst, l.Rate, 0)), max(1, ceilSeconds(l.Period))
	}
	// Events per second as a reduced fraction a/b: b seconds hold a events.
	a := new(big.Int).Mul(big.NewInt(int64(l.Rate)), big.NewInt(int64(time.Second)))
	b := big.NewInt(int64(l.Period))
	g := new(big.Int).GCD(nil, nil, a, b)
	a.Quo(a, g)
	b.Quo(b, g)
	// k windows of b seconds: the fewest whose a*k events cover Burst.
	k := new(big.Int).Add(big.NewInt(int64(l.Burst)), a)
	k.Sub(k, big.NewInt(1)).Quo(k, a)
	bq, bw := new(big.Int).Mul(a, k), new(big.Int).Mul(b, k)
	if bq.IsInt64() && bw.IsInt64() && bq.Int64() <= sfMaxInt && bw.Int64() <= sfMaxInt {
		return bq.Int64(), bw.Int64()
	}
	tau := new(big.Int).Mul(big.NewInt(int64(l.Burst)), big.NewInt(int64(l.Period)))
	tau.Quo(tau, big.NewInt(int64(l.Rate))) // ns to refill from empty
	w = ceilBig(tau, big.NewInt(int64(time.Second)))
	w = max(1, min(w, sfMaxInt))
	// q = ceil(w seconds * Rate / Period).
	num := new(big.Int).Mul(big.NewInt(w), big.NewInt(int64(time.Second)))
	num.Mul(num, big.NewInt(int64(l.Rate)))
	q = max(ceilBig(num, big.NewInt(int64(l.Period))), int64(l.Burst))
	return min(q, sfMaxInt), w
}

// ceilBig is ceil(x/y) for x >= 0, y > 0, saturated at MaxInt64.
func ceilBig(x, y *big.Int) int64 {
	z := new(big.Int).Add(x, y)
	z.Sub(z, big.NewInt(1)).Quo(z, y)
	if !z.IsInt64() {
		return math.MaxInt64
	}
	return z.Int64()
}

// SetHeaders sets the IETF rate-limit fields of
// draft-ietf-httpapi-ratelimit-headers-10 for decision d:
//
//   - RateLimit-Policy: policy, when not empty (PolicyHeader makes it; see
//     Limit.Quota for how a Limit is announced).
//   - RateLimit: "<name>";r=<remaining>;t=<seconds>, for the binding limit
//     d.Limit. r is how many events the limit admits now (at most Burst, so
//     at most the announced q). t is, as the draft defines it, the time
//     until more quota is available: until r goes up by one as the bucket
//     refills, in whole seconds rounded up (so a client waiting t seconds
//     finds at least r+1). A full bucket gets no more quota until it is
//     used, so t is then left out, as the draft's examples do for a limit
//     with no reset.
//   - Retry-After, on a denial: the time until the denied request would be
//     admitted, in whole seconds rounded up and at least 1. It is never
//     earlier than t (the draft: Retry-After SHOULD NOT reference a point
//     in time earlier than t); for a one-event request they are equal.
func SetHeaders(h http.Header, policy string, d Decision) {
	if policy != "" {
		h.Set("RateLimit-Policy", policy)
	}
	r := int64(min(max(d.Remaining, 0), sfMaxInt))
	v := sfString(d.Limit.Name) + ";r=" + strconv.FormatInt(r, 10)
	retry := max(1, ceilSeconds(d.RetryAfter))
	if t, ok := nextQuota(d); ok {
		if !d.Allowed {
			t = min(t, retry)
		}
		v += ";t=" + strconv.FormatInt(min(t, sfMaxInt), 10)
	}
	h.Set("RateLimit", v)
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(retry, 10))
	}
}

// nextQuota is the RateLimit t parameter of d in whole seconds, rounded
// up: how long until d.Limit admits one more event than d.Remaining. ok is
// false when the bucket is full.
func nextQuota(d Decision) (t int64, ok bool) {
	l := d.Limit
	if d.ResetAfter <= 0 && (l.Burst < 1 || d.Remaining >= l.Burst) {
		return 0, false // full: no more quota comes until some is used
	}
	next := d.ResetAfter
	if l.Rate >= 1 && l.Period > 0 && l.Burst >= 1 && d.Remaining < l.Burst {
		// The bucket holds Burst - ResetAfter/T events (T the interval); it
		// holds Remaining+1 once ResetAfter is down to (Burst-Remaining-1)*T.
		missing := int64(l.Burst - max(d.Remaining, 0) - 1)
		iv := int64(l.Interval())
		if iv > 0 && missing <= math.MaxInt64/iv {
			next = d.ResetAfter - time.Duration(missing*iv)
		}
	}
	return ceilSeconds(next), true
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second) // integers: no float rounding
	if d%time.Second != 0 {
		s++
	}
	return s
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
