package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

// TestClientIPv6KeyedBySlash64: one site holds a whole /64 and can take a
// new address for every request. Keyed by /128 (before the fix) it passed
// a 10-request limit 100 times over; keyed by /64 it is limited like one
// client, while another /64 keeps its own bucket.
func TestClientIPv6KeyedBySlash64(t *testing.T) {
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 10, Burst: 10}}, Clock: testclock.New()})
	mw, err := middleware(HTTPOptions{Limiter: l})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(okHandler)
	var ok int
	for i := range 100 {
		if w := serve(h, fmt.Sprintf("[2001:db8:1:2:%x::1]:443", i+1), nil); w.Code == 200 {
			ok++
		}
	}
	if ok != 10 {
		t.Fatalf("one /64 rotating addresses: %d of 100 admitted, want 10", ok)
	}
	if w := serve(h, "[2001:db8:1:3::1]:443", nil); w.Code != 200 {
		t.Fatalf("another /64: %d", w.Code)
	}
	if st := l.Stats(); st.Keys != 2 {
		t.Fatalf("keys held: %d, want 2 (one per /64)", st.Keys)
	}
}

func TestClientIPPrefixes(t *testing.T) {
	for _, c := range []struct {
		opts   ClientIPOptions
		remote string
		want   string
	}{
		{ClientIPOptions{}, "[2001:db8:1:2:3:4:5:6]:80", "2001:db8:1:2::/64"},
		{ClientIPOptions{}, "[fe80::1%eth0]:80", "fe80::/64"},
		{ClientIPOptions{}, "192.0.2.7:80", "192.0.2.7"},
		{ClientIPOptions{}, "[::ffff:192.0.2.7]:80", "192.0.2.7"},
		{ClientIPOptions{IPv6Prefix: 128}, "[2001:db8::1]:80", "2001:db8::1"},
		{ClientIPOptions{IPv6Prefix: 48}, "[2001:db8:1:2::1]:80", "2001:db8:1::/48"},
		{ClientIPOptions{IPv4Prefix: 24}, "192.0.2.7:80", "192.0.2.0/24"},
	} {
		kf, err := NewClientIP(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if got, err := kf(r); err != nil || got != c.want {
			t.Errorf("NewClientIP(%+v) of %s = %q, %v; want %q", c.opts, c.remote, got, err, c.want)
		}
	}
}

func TestNewClientIPErrors(t *testing.T) {
	for _, c := range []struct {
		opts  ClientIPOptions
		field string
	}{
		{ClientIPOptions{Header: "X-Real-IP"}, "ClientIPOptions.Header"},
		{ClientIPOptions{IPv6Prefix: 129}, "ClientIPOptions.IPv6Prefix"},
		{ClientIPOptions{IPv6Prefix: -1}, "ClientIPOptions.IPv6Prefix"},
		{ClientIPOptions{IPv4Prefix: 33}, "ClientIPOptions.IPv4Prefix"},
	} {
		if _, err := NewClientIP(c.opts); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("NewClientIP(%+v) = %v, want ErrInvalid naming %s", c.opts, err, c.field)
		}
	}
	if _, err := NewClientIP(ClientIPOptions{Header: "forwarded"}); err != nil {
		t.Errorf("Header is case-insensitive: %v", err)
	}
}

// TestClientIPForwarded: RFC 7239 from trusted proxies, with the rule
// X-Forwarded-For follows: walk from the right, skip trusted proxies, the
// first other hop is the client; a hop that is no address ("unknown", an
// obfuscated "_name", garbage) ends the walk at the last trusted hop.
func TestClientIPForwarded(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	kf, err := NewClientIP(ClientIPOptions{TrustedProxies: proxies, Header: "Forwarded", IPv6Prefix: 128})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		remote string
		fwd    []string
		want   string
	}{
		{"10.1.1.1:5", []string{`for=192.0.2.60;proto=http;by=203.0.113.43`}, "192.0.2.60"},
		{"10.1.1.1:5", []string{`For="192.0.2.60:4711"`}, "192.0.2.60"},
		{"10.1.1.1:5", []string{`for="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17"},
		{"10.1.1.1:5", []string{`for="[2001:db8:cafe::17]"`}, "2001:db8:cafe::17"},
		{"10.1.1.1:5", []string{`for="[2001:db8:cafe::17]:_port"`}, "2001:db8:cafe::17"},
		{"10.1.1.1:5", []string{`for="\[2001:db8:cafe::17\]"`}, "2001:db8:cafe::17"}, // quoted-pair
		// Several elements: a client's spoofed element on the left is ignored.
		{"10.1.1.1:5", []string{`for=6.6.6.6, for=198.51.100.17;by=10.2.2.2, for=10.2.2.2`}, "198.51.100.17"},
		// Several lines are one list, in order.
		{"10.1.1.1:5", []string{`for=6.6.6.6`, `for=198.51.100.17`, `for="[2001:db8:ffff::1]"`}, "198.51.100.17"},
		// Every hop trusted: the leftmost.
		{"10.1.1.1:5", []string{`for=10.3.3.3, for=10.2.2.2`}, "10.3.3.3"},
		// Unknown and obfuscated nodes end the walk at the last trusted hop.
		{"10.1.1.1:5", []string{`for=6.6.6.6, for=unknown`}, "10.1.1.1"},
		{"10.1.1.1:5", []string{`for=6.6.6.6, for="_hidden", for=10.2.2.2`}, "10.2.2.2"},
		{"10.1.1.1:5", []string{`for=6.6.6.6, proto=https`}, "10.1.1.1"}, // no for=
		// Malformed: garbage is no address.
		{"10.1.1.1:5", []string{`for="unterminated`}, "10.1.1.1"},
		{"10.1.1.1:5", []string{`for=1.2.3.4 junk`}, "10.1.1.1"},
		{"10.1.1.1:5", []string{`for=[2001:db8::1]`}, "10.1.1.1"}, // brackets must be quoted
		{"10.1.1.1:5", []string{`for="[2001:db8::1]:99999"`}, "10.1.1.1"},
		{"10.1.1.1:5", []string{`for="[2001:db8::1]:_"`}, "10.1.1.1"},
		{"10.1.1.1:5", []string{`for="192.0.2.60:"`}, "10.1.1.1"},
		{"10.1.1.1:5", []string{`for=6.6.6.6`, `garbage`, `for=198.51.100.17`}, "198.51.100.17"},
		// Empty list elements are skipped.
		{"10.1.1.1:5", []string{`for=198.51.100.17, ,`}, "198.51.100.17"},
		// An untrusted peer: the header is ignored.
		{"192.0.2.1:5", []string{`for=198.51.100.17`}, "192.0.2.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.fwd {
			r.Header.Add("Forwarded", v)
		}
		r.Header.Set("X-Forwarded-For", "203.0.113.99") // not the configured header: ignored
		if got, err := kf(r); err != nil || got != c.want {
			t.Errorf("Forwarded %q from %s = %q, %v; want %q", c.fwd, c.remote, got, err, c.want)
		}
	}
	// X-Forwarded-For lines, like Forwarded ones, are one list, in order.
	xff := ClientIP(proxies...)
	for _, c := range []struct {
		lines []string
		want  string
	}{
		{[]string{"6.6.6.6", "198.51.100.17, 10.2.2.2"}, "198.51.100.17"},
		{[]string{"6.6.6.6, 198.51.100.17", "10.2.2.2", "10.3.3.3"}, "198.51.100.17"},
		{[]string{"10.4.4.4", "10.3.3.3"}, "10.4.4.4"},
		{[]string{"6.6.6.6", "garbage, 10.3.3.3"}, "10.3.3.3"},
		{[]string{"6.6.6.6, " + strings.Repeat("7.7.7.7, ", 10000) + "198.51.100.17"}, "198.51.100.17"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.1.1.1:5"
		for _, v := range c.lines {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got, err := xff(r); err != nil || got != c.want {
			t.Errorf("X-Forwarded-For %.60q = %q, %v; want %q", c.lines, got, err, c.want)
		}
	}
	// With the default header, Forwarded is ignored.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.1.1:5"
	r.Header.Set("Forwarded", "for=198.51.100.17")
	if got, _ := ClientIP(proxies...)(r); got != "10.1.1.1" {
		t.Fatalf("X-Forwarded-For mode read Forwarded: %q", got)
	}
}

// recordingLimiter admits everything and records the keys it was asked.
type recordingLimiter struct {
	mu   sync.Mutex
	keys []string
}

func (l *recordingLimiter) AllowN(_ context.Context, key string, n int) (Decision, error) {
	l.mu.Lock()
	l.keys = append(l.keys, key)
	l.mu.Unlock()
	return Decision{Allowed: true, Limit: Limit{Name: "x", Rate: 1, Burst: 1}}, nil
}

// TestKeyLengthBounded: a 10 KB header was a 10 KB limiter key (and a
// custom KeyFunc could return anything). Every key the middleware hands a
// Limiter is now at most MaxKeyLen bytes; long keys are hashed, so two long
// keys sharing a 256-byte prefix still get two buckets, and a short key
// cannot pose as the hash of a long one.
func TestKeyLengthBounded(t *testing.T) {
	rec := &recordingLimiter{}
	long1 := strings.Repeat("k", 10<<10) + "1"
	long2 := strings.Repeat("k", 10<<10) + "2"
	hashed := BoundKey(long1)
	for _, kf := range []KeyFunc{Header("X-API-Key"), func(r *http.Request) (string, error) { return r.Header.Get("X-API-Key"), nil }} {
		mw, err := middleware(HTTPOptions{Limiter: rec, Key: kf})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{long1, long2, "short", hashed} {
			serve(mw(okHandler), "192.0.2.1:1", map[string]string{"X-API-Key": v})
		}
	}
	if len(rec.keys) != 8 {
		t.Fatalf("%d keys seen, want 8", len(rec.keys))
	}
	for i, k := range rec.keys {
		if len(k) > MaxKeyLen {
			t.Fatalf("key %d is %d bytes, over MaxKeyLen %d", i, len(k), MaxKeyLen)
		}
	}
	for _, base := range []int{0, 4} {
		k := rec.keys[base : base+4]
		if k[0] == k[1] || k[0] == k[3] || k[1] == k[3] || k[2] != "short" {
			t.Fatalf("keys %q: long keys must stay distinct, short ones unchanged, a hash-looking key its own", k)
		}
	}
	if BoundKey("short") != "short" || len(hashed) != len(hashedKeyPrefix)+64 || !strings.HasPrefix(hashed, hashedKeyPrefix) {
		t.Fatalf("BoundKey: %q", hashed)
	}
	if k := strings.Repeat("a", MaxKeyLen); BoundKey(k) != k {
		t.Fatal("a key of exactly MaxKeyLen bytes was changed")
	}
	// A forwarded IPv6 address with a 10 KB zone is keyed without it.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Forwarded-For", "fe80::1%"+strings.Repeat("z", 10<<10))
	if got, err := ClientIP(netip.MustParsePrefix("10.0.0.0/8"))(r); err != nil || got != "fe80::/64" {
		t.Fatalf("zoned address: %q, %v", got, err)
	}
}
