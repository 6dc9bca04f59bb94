package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

// middleware is NewHTTP(o)'s Middleware, for tests that build one
// middleware from options and wrap several handlers with it.
func middleware(o HTTPOptions) (func(http.Handler) http.Handler, error) {
	m, err := NewHTTP(o)
	if err != nil {
		return nil, err
	}
	return m.Middleware, nil
}

func serve(h http.Handler, remote string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/x", nil)
	r.RemoteAddr = remote
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestMiddlewareHeadersAnd429(t *testing.T) {
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Name: "api", Rate: 2, Burst: 2}, {Name: "hour", Rate: 100, Period: time.Hour}}, Clock: clk})
	mw, err := middleware(HTTPOptions{Limiter: l})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(okHandler)
	w := serve(h, "10.0.0.1:1234", nil)
	if w.Code != 200 || w.Body.String() != "ok" {
		t.Fatalf("first: %d %q", w.Code, w.Body)
	}
	if got := w.Header().Get("RateLimit-Policy"); got != `"api";q=2;w=1, "hour";q=100;w=3600` {
		t.Fatalf("RateLimit-Policy = %q", got)
	}
	if got := w.Header().Get("RateLimit"); got != `"api";r=1;t=1` {
		t.Fatalf("RateLimit = %q", got)
	}
	serve(h, "10.0.0.1:1234", nil)
	w = serve(h, "10.0.0.1:9999", nil) // same client, another port
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("third: %d, want 429", w.Code)
	}
	if w.Header().Get("Retry-After") != "1" || w.Header().Get("RateLimit") != `"api";r=0;t=1` {
		t.Fatalf("429 headers: %v", w.Header())
	}
	if w := serve(h, "10.0.0.2:1", nil); w.Code != 200 {
		t.Fatalf("another client: %d", w.Code)
	}
	clk.Add(500 * time.Millisecond)
	if w := serve(h, "10.0.0.1:1", nil); w.Code != 200 {
		t.Fatalf("after retry-after: %d", w.Code)
	}
	if st := mw2stats(t, l); st.Allowed != 4 || st.Denied != 1 {
		t.Fatalf("limiter stats %+v", st)
	}
}

func mw2stats(t *testing.T, l *Local) LocalStats { t.Helper(); return l.Stats() }

func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		remote, xff string
		trusted     []netip.Prefix
		want        string
	}{
		{"1.2.3.4:5", "", nil, "1.2.3.4"},
		{"1.2.3.4:5", "9.9.9.9", nil, "1.2.3.4"},                         // untrusted peer: XFF ignored
		{"10.1.1.1:5", "9.9.9.9", proxies, "9.9.9.9"},                    // trusted proxy
		{"10.1.1.1:5", "6.6.6.6, 9.9.9.9, 10.2.2.2", proxies, "9.9.9.9"}, // spoofed left part ignored
		{"10.1.1.1:5", "10.3.3.3, 10.2.2.2", proxies, "10.3.3.3"},        // all trusted: leftmost
		{"10.1.1.1:5", "garbage, 9.9.9.9", proxies, "9.9.9.9"},
		{"10.1.1.1:5", "", proxies, "10.1.1.1"},
		{"[::ffff:1.2.3.4]:80", "", nil, "1.2.3.4"},
		// Keyed by /64 since issue 15 item 12 (the /128 key, "2001:db8::1",
		// is still asserted with IPv6Prefix: 128 below).
		{"[2001:db8::1]:80", "", nil, "2001:db8::/64"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		got, err := ClientIP(c.trusted...)(r)
		if err != nil || got != c.want {
			t.Errorf("ClientIP(%s, XFF %q) = %q, %v; want %q", c.remote, c.xff, got, err, c.want)
		}
	}
	exact, err := NewClientIP(ClientIPOptions{IPv6Prefix: 128})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "[2001:db8::1]:80"
	if got, err := exact(r); err != nil || got != "2001:db8::1" {
		t.Errorf("ClientIP /128 of [2001:db8::1]:80 = %q, %v; want %q", got, err, "2001:db8::1")
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "nonsense"
	if _, err := ClientIP()(r); err == nil {
		t.Fatal("bad RemoteAddr: no error")
	}
}

func TestMiddlewareBadKeyAndErrors(t *testing.T) {
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 1}}})
	mw, _ := middleware(HTTPOptions{Limiter: l, Key: Header("X-API-Key")})
	w := serve(mw(okHandler), "1.1.1.1:1", nil)
	if w.Code != 400 || !contains(w.Body.String(), "X-API-Key header is required") {
		t.Fatalf("missing key: %d %q", w.Code, w.Body)
	}
	if w := serve(mw(okHandler), "1.1.1.1:1", map[string]string{"X-API-Key": "k"}); w.Code != 200 {
		t.Fatalf("with key: %d", w.Code)
	}

	broken := failingLimiter{errors.New("backend down")}
	open, _ := middleware(HTTPOptions{Limiter: broken})
	if w := serve(open(okHandler), "1.1.1.1:1", nil); w.Code != 200 {
		t.Fatalf("fail-open default: %d", w.Code)
	}
	closed, _ := middleware(HTTPOptions{Limiter: broken, DenyOnError: true})
	if w := serve(closed(okHandler), "1.1.1.1:1", nil); w.Code != 503 {
		t.Fatalf("DenyOnError: %d", w.Code)
	}
	if _, err := middleware(HTTPOptions{}); !errors.Is(err, ErrInvalid) || !contains(err.Error(), "HTTPOptions.Limiter is required") {
		t.Fatalf("no limiter: %v", err)
	}
}

type failingLimiter struct{ err error }

func (f failingLimiter) AllowN(context.Context, string, int) (Decision, error) {
	return Decision{}, f.err
}

func TestSFString(t *testing.T) {
	if got := sfString(`a"b\c` + "\n"); got != `"a\"b\\c?"` {
		t.Fatalf("sfString = %s", got)
	}
}
