package ratelimit

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/dunglas/httpsfv"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

// The fields are read as draft-ietf-httpapi-ratelimit-headers-10 defines
// them, with an RFC 9651 structured-field parser:
//
//   - RateLimit-Policy is a List of Items whose value MUST be a String, with
//     q (REQUIRED, a non-negative Integer: the quota) and w (a non-zero
//     Integer of seconds: "Sub-second precision is not supported").
//   - RateLimit is a List of Items naming the policy, with r (REQUIRED, the
//     remaining quota units) and t (OPTIONAL, "the number of seconds until
//     additional quota associated with the quota policy is made
//     available").
//   - "If a response contains both the Retry-After and the RateLimit header
//     fields, the Retry-After field value SHOULD NOT reference a point in
//     time earlier than the reset parameter."

// sfPolicy is one parsed RateLimit-Policy item.
type sfPolicy struct {
	name string
	q, w int64
}

// sfLimit is one parsed RateLimit item; hasT is false when t is absent.
type sfLimit struct {
	name string
	r, t int64
	hasT bool
}

// parseList parses a header as an RFC 9651 List of Items whose values are
// Strings, failing the test on anything else.
func parseList(t testing.TB, field string, values []string) []httpsfv.Item {
	t.Helper()
	l, err := httpsfv.UnmarshalList(values)
	if err != nil {
		t.Fatalf("%s %q is not an RFC 9651 List: %v", field, values, err)
	}
	var out []httpsfv.Item
	for _, m := range l {
		it, ok := m.(httpsfv.Item)
		if !ok {
			t.Fatalf("%s %q: member %v is not an Item", field, values, m)
		}
		if _, ok := it.Value.(string); !ok {
			t.Fatalf("%s %q: item value %#v is not a String (draft-10 section 3)", field, values, it.Value)
		}
		out = append(out, it)
	}
	return out
}

func intParam(t testing.TB, field string, it httpsfv.Item, name string, required bool) (int64, bool) {
	t.Helper()
	v, ok := it.Params.Get(name)
	if !ok {
		if required {
			t.Fatalf("%s item %v has no %s parameter", field, it.Value, name)
		}
		return 0, false
	}
	n, ok := v.(int64)
	if !ok || n < 0 {
		t.Fatalf("%s item %v: %s = %#v, want a non-negative Integer", field, it.Value, name, v)
	}
	return n, true
}

func parsePolicyField(t testing.TB, h http.Header) []sfPolicy {
	t.Helper()
	var out []sfPolicy
	for _, it := range parseList(t, "RateLimit-Policy", h.Values("RateLimit-Policy")) {
		q, _ := intParam(t, "RateLimit-Policy", it, "q", true)
		w, _ := intParam(t, "RateLimit-Policy", it, "w", true)
		if w == 0 {
			t.Fatalf("RateLimit-Policy %v: w=0, the draft wants a non-zero window", it.Value)
		}
		out = append(out, sfPolicy{name: it.Value.(string), q: q, w: w})
	}
	return out
}

func parseLimitField(t testing.TB, h http.Header) sfLimit {
	t.Helper()
	items := parseList(t, "RateLimit", h.Values("RateLimit"))
	if len(items) != 1 {
		t.Fatalf("RateLimit %q: %d items, want 1", h.Values("RateLimit"), len(items))
	}
	r, _ := intParam(t, "RateLimit", items[0], "r", true)
	tt, hasT := intParam(t, "RateLimit", items[0], "t", false)
	return sfLimit{name: items[0].Value.(string), r: r, t: tt, hasT: hasT}
}

func retryAfter(t testing.TB, h http.Header) int64 {
	t.Helper()
	n, err := strconv.ParseInt(h.Get("Retry-After"), 10, 64)
	if err != nil || n < 0 {
		t.Fatalf("Retry-After %q is not delay-seconds", h.Get("Retry-After"))
	}
	return n
}

// TestRateLimitHeadersAgree is the example service's limit (2000/s, burst
// 4000 per client): the policy announces a quota covering the burst, so r
// never exceeds q, and a 429's t agrees with its Retry-After. Before the
// fix the service sent r=3999 under q=2000;w=1, and Retry-After: 1 with
// t=2 (t was the time until the bucket is full).
func TestRateLimitHeadersAgree(t *testing.T) {
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Name: "client", Rate: 2000, Burst: 4000}}, Clock: clk})
	mw, err := middleware(HTTPOptions{Limiter: l})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(okHandler)
	for i := 1; i <= 4001; i++ {
		w := serve(h, "192.0.2.1:1", nil)
		pol := parsePolicyField(t, w.Header())
		if len(pol) != 1 || pol[0] != (sfPolicy{"client", 4000, 2}) {
			t.Fatalf("request %d: RateLimit-Policy %q, want \"client\";q=4000;w=2", i, w.Header().Get("RateLimit-Policy"))
		}
		rl := parseLimitField(t, w.Header())
		if rl.name != "client" || rl.r > pol[0].q {
			t.Fatalf("request %d: RateLimit %q: r above the quota %d", i, w.Header().Get("RateLimit"), pol[0].q)
		}
		if i <= 4000 {
			if w.Code != 200 || rl.r != int64(4000-i) || !rl.hasT || rl.t != 1 {
				// one more event every 0.5ms: t is 1s rounded up
				t.Fatalf("request %d: %d, RateLimit %q, want 200 r=%d;t=1", i, w.Code, w.Header().Get("RateLimit"), 4000-i)
			}
			continue
		}
		if w.Code != http.StatusTooManyRequests || rl.r != 0 || !rl.hasT {
			t.Fatalf("request %d: %d, RateLimit %q, want 429 r=0 with t", i, w.Code, w.Header().Get("RateLimit"))
		}
		if ra := retryAfter(t, w.Header()); ra < rl.t || ra != 1 || rl.t != 1 {
			t.Fatalf("429: Retry-After %d with t=%d, want both 1 (the draft: Retry-After not earlier than t)", ra, rl.t)
		}
	}
	// Idle: the bucket fills again and t, meaningless then, is left out.
	clk.Add(3 * time.Second)
	w := serve(h, "192.0.2.2:1", nil)
	if rl := parseLimitField(t, w.Header()); rl.r != 3999 || !rl.hasT {
		t.Fatalf("a new client: RateLimit %q", w.Header().Get("RateLimit"))
	}
	var hdr http.Header = http.Header{}
	SetHeaders(hdr, "", Decision{Allowed: true, Limit: Limit{Name: "client", Rate: 2000, Period: time.Second, Burst: 4000}, Remaining: 4000})
	if got := hdr.Get("RateLimit"); got != `"client";r=4000` {
		t.Fatalf("full bucket: RateLimit %q, want no t", got)
	}
}

// TestLimitQuota pins how each Limit is announced: q/w is exactly the rate,
// q covers the burst, w is a whole number of seconds (sub-second periods
// included: 5 per 100ms was announced as q=5;w=1, ten times too slow).
func TestLimitQuota(t *testing.T) {
	for _, c := range []struct {
		l    Limit
		q, w int64
	}{
		{Limit{Rate: 2000, Burst: 4000}, 4000, 2},
		{Limit{Rate: 2000, Burst: 3000}, 4000, 2},
		{Limit{Rate: 2, Burst: 2}, 2, 1},
		{Limit{Rate: 5, Period: 100 * time.Millisecond, Burst: 5}, 50, 1},
		{Limit{Rate: 5, Period: 100 * time.Millisecond, Burst: 120}, 150, 3},
		{Limit{Rate: 100, Period: time.Hour}, 100, 3600},
		{Limit{Rate: 1, Period: 7 * time.Millisecond}, 1000, 7},
		{Limit{Rate: 3, Period: 1500 * time.Millisecond, Burst: 3}, 4, 2},
		{Limit{Rate: 10, Period: time.Minute, Burst: 1}, 1, 6},
		// Not expressible in 15 digits: approximate, still covering the burst.
		{Limit{Rate: 1, Period: 1_000_000*time.Second + 1, Burst: 1}, 2, 1_000_001},
	} {
		q, w := c.l.Quota()
		if q != c.q || w != c.w {
			t.Errorf("%+v.Quota() = q=%d;w=%d, want q=%d;w=%d", c.l, q, w, c.q, c.w)
		}
	}
	h, err := PolicyHeader(Policy{{Name: "fast", Rate: 5, Period: 100 * time.Millisecond}, {Name: "day", Rate: 1000, Period: 24 * time.Hour}})
	if err != nil || h != `"fast";q=50;w=1, "day";q=1000;w=86400` {
		t.Fatalf("PolicyHeader = %q, %v", h, err)
	}
	if _, err := PolicyHeader(Policy{{Rate: 0}}); err == nil {
		t.Fatal("PolicyHeader of a zero rate: no error")
	}
}

// randomLimit is a valid Limit with a rate from 1 to 5000 (often small) per a period from
// 1ms to 1h (any nanosecond count) and a burst up to 3 times the rate.
func randomLimit(rng *rand.Rand, i int) Limit {
	periods := []time.Duration{time.Millisecond, 100 * time.Millisecond, time.Second, time.Minute, time.Hour}
	p := periods[rng.IntN(len(periods))]
	if rng.IntN(2) == 0 {
		p += time.Duration(rng.Int64N(int64(p)))
	}
	rate := 1 + rng.IntN([]int{10, 100, 5000}[rng.IntN(3)])
	for p/time.Duration(rate) < time.Nanosecond {
		rate /= 2
	}
	return Limit{Name: fmt.Sprintf("l%d", i), Rate: rate, Period: p, Burst: 1 + rng.IntN(3*rate)}
}

// TestLimitQuotaProperty: over random limits, w >= 1, q >= Burst and q/w is
// exactly the limit's rate whenever the pair fits in 15 digits.
func TestLimitQuotaProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		l := randomLimit(rng, 0)
		q, w := l.Quota()
		if w < 1 || q < int64(l.Burst) || q > sfMaxInt || w > sfMaxInt {
			t.Fatalf("%+v: q=%d;w=%d", l, q, w)
		}
		// q * Period == w * Rate * 1s, in big integers.
		lhs := new(big.Int).Mul(big.NewInt(q), big.NewInt(int64(l.Period)))
		rhs := new(big.Int).Mul(big.NewInt(w), big.NewInt(int64(l.Rate)*int64(time.Second)))
		if lhs.Cmp(rhs) != 0 {
			t.Fatalf("%+v: q=%d;w=%d is not the rate %d/%v", l, q, w, l.Rate, l.Period)
		}
	}
}

// decideLimiter is a Limiter over Decide whose state the test can read: it
// decides exactly as Local does.
type decideLimiter struct {
	p    Policy
	tats []int64
	now  func() time.Time
}

func (d *decideLimiter) AllowN(_ context.Context, _ string, n int) (Decision, error) {
	return Decide(d.now().UnixNano(), d.p, d.tats, n), nil
}

func (d *decideLimiter) Policy() Policy { return d.p }

// TestRateLimitHeadersProperty sends random request sequences (random
// costs, random gaps on a simulated clock) through the middleware under
// random policies of one to three limits, parses every emitted field with
// the RFC 9651 parser and checks what the draft asks:
//
//   - the RateLimit item names an announced policy and r <= its q;
//   - t >= 0, and t is left out exactly when the bucket is full
//     (r == Burst): no more quota is ever "made available" to a full bucket;
//   - t means what the draft says: waiting t seconds, the binding limit
//     admits r+1 events;
//   - on a 429, Retry-After >= t, and waiting Retry-After seconds the same
//     request is admitted.
func TestRateLimitHeadersProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	var checked, denied int
	for round := range 300 {
		var p Policy
		for i := range 1 + rng.IntN(3) {
			p = append(p, randomLimit(rng, i))
		}
		p, err := p.Normalize()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		clk := testclock.New()
		lim := &decideLimiter{p: p, tats: make([]int64, len(p)), now: clk.Now}
		maxCost := min(p.MaxBurst(), 3)
		mw, err := middleware(HTTPOptions{Limiter: lim, Cost: func(r *http.Request) int {
			n, _ := strconv.Atoi(r.Header.Get("X-Cost"))
			return n
		}})
		if err != nil {
			t.Fatal(err)
		}
		h := mw(okHandler)
		minIv := p[0].Interval()
		for _, l := range p {
			minIv = min(minIv, l.Interval())
		}
		for range 200 {
			switch rng.IntN(10) {
			default: // no gap: drain the bucket
			case 1, 2:
				clk.Add(time.Duration(rng.Int64N(int64(minIv) * 3)))
			case 3:
				clk.Add(time.Duration(rng.Int64N(int64(time.Second))))
			case 4:
				clk.Add(time.Duration(rng.Int64N(int64(p[rng.IntN(len(p))].Period))))
			}
			cost := 1 + rng.IntN(maxCost)
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = "192.0.2.1:1"
			req.Header.Set("X-Cost", strconv.Itoa(cost))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			checked++

			pol := parsePolicyField(t, w.Header())
			rl := parseLimitField(t, w.Header())
			var bind Limit
			var q int64 = -1
			for i, pi := range pol {
				if pi.name == rl.name {
					q, bind = pi.q, p[i]
				}
			}
			where := fmt.Sprintf("round %d, policy %q, RateLimit %q, Retry-After %q", round, w.Header().Get("RateLimit-Policy"), w.Header().Get("RateLimit"), w.Header().Get("Retry-After"))
			if q < 0 {
				t.Fatalf("%s: RateLimit names no announced policy", where)
			}
			if rl.r > q {
				t.Fatalf("%s: r > q", where)
			}
			if rl.hasT == (rl.r == int64(bind.Burst)) {
				t.Fatalf("%s: t present %v with r %d and Burst %d: want t exactly when the bucket is not full", where, rl.hasT, rl.r, bind.Burst)
			}
			now := clk.Now().UnixNano()
			bi := 0
			for i := range p {
				if p[i].Name == bind.Name {
					bi = i
				}
			}
			if rl.hasT {
				tats := []int64{lim.tats[bi]}
				if d := Decide(now+rl.t*int64(time.Second), Policy{bind}, tats, int(rl.r)+1); !d.Allowed {
					t.Fatalf("%s: %d events not admitted %ds later (t)", where, rl.r+1, rl.t)
				}
			}
			if w.Code == http.StatusTooManyRequests {
				denied++
				ra := retryAfter(t, w.Header())
				if ra < rl.t {
					t.Fatalf("%s: Retry-After earlier than t", where)
				}
				tats := append([]int64(nil), lim.tats...)
				if d := Decide(now+ra*int64(time.Second), p, tats, cost); !d.Allowed {
					t.Fatalf("%s: the request (cost %d) not admitted Retry-After later", where, cost)
				}
			} else if w.Code != 200 || w.Header().Get("Retry-After") != "" {
				t.Fatalf("%s: status %d", where, w.Code)
			}
		}
	}
	if denied < checked/10 {
		t.Fatalf("only %d of %d requests denied: the sequences do not exercise 429s", denied, checked)
	}
	t.Logf("%d responses checked, %d of them 429", checked, denied)
}

// TestSetHeadersForeignDecisions: decisions from other Limiters (a
// third-party one, ratelimitredis's fail-open and degraded answers) need
// not be GCRA-consistent; the fields still parse, r and t are never
// negative and a 429's Retry-After is never earlier than t.
func TestSetHeadersForeignDecisions(t *testing.T) {
	per := Limit{Name: "x", Rate: 10, Period: time.Second, Burst: 10}
	for i, d := range []Decision{
		{},
		{RetryAfter: time.Second},
		{Allowed: true, Limit: per, Remaining: 9},                             // fail-open: no ResetAfter
		{Limit: per, RetryAfter: time.Second},                                 // degraded denial
		{Limit: per, Remaining: -3, ResetAfter: -time.Second},                 // nonsense
		{Limit: per, ResetAfter: time.Duration(math.MaxInt64), RetryAfter: 1}, // t far beyond Retry-After
		{Limit: Limit{Name: "concurrency", Rate: 5, Burst: 5}, RetryAfter: 20 * time.Second},
		{Limit: Limit{Name: "huge", Rate: 1, Period: time.Duration(math.MaxInt64), Burst: 1 << 40}, Remaining: 1 << 39, ResetAfter: time.Duration(math.MaxInt64)},
	} {
		h := http.Header{}
		SetHeaders(h, "", d)
		rl := parseLimitField(t, h)
		if !d.Allowed {
			if ra := retryAfter(t, h); ra < rl.t || ra < 1 {
				t.Errorf("decision %d %+v: Retry-After %d, t %d", i, d, ra, rl.t)
			}
		}
	}
}
