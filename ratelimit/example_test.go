package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"time"

	"github.com/scalekit-go/scalekit/ratelimit"
)

func ExampleLocal() {
	// 2 events per second, bursts of 3, AND 100 per hour.
	lim, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{
		{Name: "sec", Rate: 2, Burst: 3},
		{Name: "hour", Rate: 100, Period: time.Hour},
	}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		d, _ := lim.Allow(ctx, "user-42")
		fmt.Printf("allowed=%v remaining=%d limit=%s\n", d.Allowed, d.Remaining, d.Limit.Name)
	}
	// Output:
	// allowed=true remaining=2 limit=sec
	// allowed=true remaining=1 limit=sec
	// allowed=true remaining=0 limit=sec
	// allowed=false remaining=0 limit=sec
}

func ExampleNewLocal_badOptions() {
	_, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 10, Burst: -1}}})
	fmt.Println(errors.Is(err, ratelimit.ErrInvalid))
	fmt.Println(err)
	// Output:
	// true
	// ratelimit: invalid argument: Limits[0].Burst must be >= 1, got -1
}

func ExampleHTTP_Middleware() {
	lim, _ := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Name: "api", Rate: 1, Burst: 1}}})
	mw, _ := ratelimit.NewHTTP(ratelimit.HTTPOptions{Limiter: lim})
	h := mw.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))

	for i := 0; i < 2; i++ {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.1:4000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Printf("%d RateLimit: %s Retry-After: %q\n", w.Code, w.Header().Get("RateLimit"), w.Header().Get("Retry-After"))
	}
	// Output:
	// 200 RateLimit: "api";r=0;t=1 Retry-After: ""
	// 429 RateLimit: "api";r=0;t=1 Retry-After: "1"
}

func ExampleWait() {
	lim, _ := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 1, Period: time.Minute}}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	lim.Allow(ctx, "job")
	// The next slot is a minute away: Wait fails at once instead of sleeping.
	_, err := ratelimit.Wait(ctx, lim, "job", 1)
	fmt.Println(errors.Is(err, ratelimit.ErrLimited))
	// Output: true
}

func ExampleConcurrency() {
	c, _ := ratelimit.NewConcurrency(ratelimit.ConcurrencyOptions{Limit: 1})
	release, _ := c.Acquire(context.Background(), "report")
	_, err := c.Acquire(context.Background(), "report")
	fmt.Println(errors.Is(err, ratelimit.ErrLimited))
	release()
	_, err = c.Acquire(context.Background(), "report")
	fmt.Println(err)
	// Output:
	// true
	// <nil>
}

func ExampleNewClientIP() {
	// Behind a load balancer in 10.0.0.0/8 that maintains RFC 7239 Forwarded.
	key, err := ratelimit.NewClientIP(ratelimit.ClientIPOptions{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Header:         "Forwarded",
	})
	if err != nil {
		panic(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.5:34567"
	// The left element is what the client claimed; the load balancer appended the right one.
	r.Header.Set("Forwarded", `for=203.0.113.9, for="[2001:db8:1:2::77]:4711"`)
	k, _ := key(r)
	fmt.Println(k) // IPv6 clients are keyed by their /64
	// Output: 2001:db8:1:2::/64
}

func ExamplePolicyHeader() {
	h, _ := ratelimit.PolicyHeader(ratelimit.Policy{
		{Name: "client", Rate: 2000, Burst: 4000},
		{Name: "fast", Rate: 5, Period: 100 * time.Millisecond},
	})
	fmt.Println(h)
	// Output: "client";q=4000;w=2, "fast";q=50;w=1
}

// A handler that decides itself (a cost known only after parsing the
// request, say) sends the same headers the middleware would.
func ExampleSetHeaders() {
	lim, _ := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Name: "export", Rate: 10, Period: time.Minute}}})
	policy, _ := ratelimit.PolicyHeader(lim.Policy())
	export := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := lim.AllowN(r.Context(), "tenant-7", 4) // this export costs 4
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ratelimit.SetHeaders(w.Header(), policy, d)
		if !d.Allowed {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "exported")
	})
	for i := 0; i < 3; i++ {
		w := httptest.NewRecorder()
		export.ServeHTTP(w, httptest.NewRequest("POST", "/export", nil))
		fmt.Printf("%d RateLimit: %s Retry-After: %q\n", w.Code, w.Header().Get("RateLimit"), w.Header().Get("Retry-After"))
	}
	// Output:
	// 200 RateLimit: "export";r=6;t=6 Retry-After: ""
	// 200 RateLimit: "export";r=2;t=6 Retry-After: ""
	// 429 RateLimit: "export";r=2;t=6 Retry-After: "12"
}
