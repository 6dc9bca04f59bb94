package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/ratelimitx"
	"github.com/scalekit-go/scalekit/internal/testclock"
)

func TestConcurrencyLimit(t *testing.T) {
	c, err := NewConcurrency(ConcurrencyOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r1, err1 := c.Acquire(ctx, "k")
	r2, err2 := c.Acquire(ctx, "k")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := c.Acquire(ctx, "k"); !errors.Is(err, ErrLimited) {
		t.Fatalf("third holder: %v, want ErrLimited", err)
	}
	if r, err := c.Acquire(ctx, "other"); err != nil {
		t.Fatalf("other key: %v", err)
	} else {
		r()
	}
	r1()
	r1() // a second release must not free another holder's slot
	if got := c.InFlight("k"); got != 1 {
		t.Fatalf("in flight after double release = %d, want 1", got)
	}
	r3, err := c.Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	r2()
	r3()
	if got := c.InFlight("k"); got != 0 {
		t.Fatalf("in flight = %d, want 0", got)
	}
	if _, err := NewConcurrency(ConcurrencyOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero limit: %v", err)
	}
	if _, err := c.Acquire(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
}

func TestConcurrencyHammer(t *testing.T) {
	c, _ := NewConcurrency(ConcurrencyOptions{Limit: 5})
	var in, peak atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				release, err := c.Acquire(context.Background(), "k")
				if err != nil {
					continue
				}
				n := in.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				in.Add(-1)
				release()
			}
		}()
	}
	wg.Wait()
	if peak.Load() > 5 || c.InFlight("k") != 0 {
		t.Fatalf("peak %d (limit 5), left in flight %d", peak.Load(), c.InFlight("k"))
	}
}

func TestAdaptiveAIMD(t *testing.T) {
	clk := testclock.New()
	a, err := NewAdaptive(AdaptiveOptions{Initial: 10, Min: 2, Max: 12, TargetLatency: 100 * time.Millisecond, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	// Fill to the limit: the 11th is shed.
	var releases []func(bool)
	for i := 0; i < 10; i++ {
		d, err := a.Acquire()
		if err != nil {
			t.Fatalf("call %d shed: %v", i, err)
		}
		releases = append(releases, d)
	}
	if _, err := a.Acquire(); !errors.Is(err, ErrLimited) {
		t.Fatalf("11th call: %v, want shed", err)
	}
	// Fast successes under demand (at least half the limit in flight when
	// they start) raise the limit by about one per limit's worth.
	for _, d := range releases {
		d(false)
	}
	for i := 0; i < 30; i++ {
		var batch []func(bool)
		for j := 0; j < 10; j++ { // the limit is 10 to 12: none is shed
			d, _ := a.Acquire()
			batch = append(batch, d)
		}
		for _, d := range batch {
			d(false)
		}
	}
	if got := a.Limit(); got != 12 {
		t.Fatalf("limit after many fast calls = %d, want the Max 12", got)
	}
	// A burst of slow calls is one cut, not many.
	var slow []func(bool)
	for i := 0; i < 5; i++ {
		d, _ := a.Acquire()
		slow = append(slow, d)
	}
	clk.Add(150 * time.Millisecond)
	for _, d := range slow {
		d(false)
	}
	if got := a.Limit(); got != 10 { // 12 * 0.9 = 10.8
		t.Fatalf("limit after a burst of slow calls = %d, want 10", got)
	}
	// Repeated overload drives it to Min and no lower.
	for i := 0; i < 50; i++ {
		d, _ := a.Acquire()
		clk.Add(100 * time.Millisecond)
		d(true)
	}
	if got := a.Limit(); got != 2 {
		t.Fatalf("limit under sustained overload = %d, want Min 2", got)
	}
	if st := a.Stats(); st.Cuts < 2 || st.Shed != 1 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// runWave admits up to n calls at once (the rest are shed), lets lat pass
// on clk and finishes them all; it returns how many were shed.
func runWave(a *Adaptive, clk *testclock.Clock, n int, lat time.Duration) (shed int) {
	var releases []func(bool)
	for range n {
		d, err := a.Acquire()
		if err != nil {
			shed++
			continue
		}
		releases = append(releases, d)
	}
	clk.Add(lat)
	for _, d := range releases {
		d(false)
	}
	return shed
}

// TestAdaptiveTracksDemand: Netflix concurrency-limits' AIMDLimit raises
// the limit only "if (inflight * 2 >= currentLimit)" (the in-flight count
// when the call started). Before the fix every fast call raised it, so
// healthy traffic of one call at a time drifted the limit from 20 to its
// Max of 1000, and a sudden overload of 500 concurrent calls was all
// admitted. Now the limit stays where it is at low concurrency, rises with
// demand (to between the demand and twice it), and falls when latency
// climbs.
func TestAdaptiveTracksDemand(t *testing.T) {
	clk := testclock.New()
	a, err := NewAdaptive(AdaptiveOptions{Initial: 20, Min: 1, Max: 1000, TargetLatency: 100 * time.Millisecond, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	// Healthy traffic, one or two calls in flight, for 200,000 calls.
	for range 100_000 {
		runWave(a, clk, 2, time.Millisecond)
	}
	if got := a.Limit(); got != 20 {
		t.Fatalf("limit after 200,000 fast calls at concurrency 2 = %d, want still 20 (no drift to Max)", got)
	}
	// A sudden overload: all but the limit's worth is shed at once.
	if shed := runWave(a, clk, 500, time.Millisecond); shed != 480 {
		t.Fatalf("a burst of 500 concurrent calls: %d shed, want 480", shed)
	}
	// Demand rises to 60 concurrent fast calls: the limit follows it up,
	// and no further than twice the demand.
	for range 200 {
		runWave(a, clk, 60, time.Millisecond)
	}
	if got := a.Limit(); got < 60 || got > 121 {
		t.Fatalf("limit under a demand of 60 = %d, want 60..121", got)
	}
	if shed := runWave(a, clk, 60, time.Millisecond); shed != 0 {
		t.Fatalf("demand 60 still shed %d calls", shed)
	}
	high := a.Limit()
	t.Logf("limit: 20 at low concurrency, %d under a demand of 60", high)
	// Demand stays at 60 but latency climbs over the target: the limit
	// falls, one cut per TargetLatency.
	for range 10 {
		runWave(a, clk, 60, 150*time.Millisecond)
	}
	if got := a.Limit(); got >= high*2/3 {
		t.Fatalf("limit after 10 slow waves = %d, want well under %d", got, high)
	}
	// Demand drops to 4 (with fast calls again): the limit does not climb
	// back up to the old level.
	low := a.Limit()
	t.Logf("limit: %d after latency climbed", low)
	for range 10_000 {
		runWave(a, clk, 4, time.Millisecond)
	}
	if got := a.Limit(); got > max(low, 9) {
		t.Fatalf("limit after fast calls at demand 4 = %d, want at most max(%d, 9)", got, low)
	}
}

// TestAdaptiveHammer: many goroutines acquiring and finishing at once never
// hold more calls than the limit allows, and leave the counts consistent.
func TestAdaptiveHammer(t *testing.T) {
	a, err := NewAdaptive(AdaptiveOptions{Initial: 8, Min: 2, Max: 16, TargetLatency: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var held, peak atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				release, err := a.Acquire()
				if err != nil {
					continue
				}
				n := held.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				held.Add(-1)
				release((g+i)%50 == 0) // some overload signals
			}
		}()
	}
	wg.Wait()
	st := a.Stats()
	if peak.Load() > 16 || st.InFlight != 0 || st.Limit < 2 || st.Limit > 16 || st.Admitted+st.Shed != 16*2000 {
		t.Fatalf("peak %d, stats %+v", peak.Load(), st)
	}
}

func TestAdaptiveMiddleware(t *testing.T) {
	a, _ := NewAdaptive(AdaptiveOptions{Initial: 1, Max: 1})
	unblock := make(chan struct{})
	entered := make(chan struct{})
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-unblock
	}))
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	<-entered
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	close(unblock)
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("over the limit: %d %v, want 503 with Retry-After", w.Code, w.Header())
	}
}

// Calling release a second time gives nothing back twice and measures
// nothing again: the in-flight count and the limit move once.
func TestAdaptiveReleaseTwice(t *testing.T) {
	clk := testclock.New()
	a, err := NewAdaptive(AdaptiveOptions{Initial: 4, Min: 1, Max: 8, TargetLatency: 100 * time.Millisecond, Backoff: 0.5, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	held, _ := a.Acquire()
	release, err := a.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	release(true) // overload: the limit is cut once, 4 -> 2
	clk.Add(time.Second)
	release(true) // no second cut, no second decrement
	if st := a.Stats(); st.InFlight != 1 || st.Limit != 2 || st.Cuts != 1 {
		t.Fatalf("after releasing twice: %+v, want InFlight 1, Limit 2, Cuts 1", st)
	}
	held(false)
	held(false)
	if st := a.Stats(); st.InFlight != 0 {
		t.Fatalf("in flight after the last release: %d", st.InFlight)
	}
}

func TestAdaptiveOptionsErrors(t *testing.T) {
	for _, o := range []AdaptiveOptions{
		{Min: -1}, {Min: 5, Max: 3}, {Initial: 2000}, {Backoff: 1.5}, {TargetLatency: -1},
	} {
		if _, err := NewAdaptive(o); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewAdaptive(%+v) = %v, want ErrInvalid", o, err)
		}
	}
	if _, err := NewAdaptive(AdaptiveOptions{}); err != nil {
		t.Fatalf("zero options: %v", err)
	}
}

// A refusal's RetryAfter is the expected wait for a slot: the mean hold
// over the holders (at least 1ms), or the hint before any hold was timed.
func TestConcurrencyRetryAfter(t *testing.T) {
	clk := testclock.New()
	c, err := NewConcurrency(ConcurrencyOptions{Limit: 4, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	retry := func() time.Duration {
		t.Helper()
		var rs []func()
		for i := 0; i < 4; i++ {
			r, err := c.Acquire(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		_, err := c.Acquire(ctx, "k")
		var le *LimitedError
		if !errors.As(err, &le) {
			t.Fatalf("5th of 4: %v", err)
		}
		clk.Add(time.Second) // the 4 holds are 1s each
		for _, r := range rs {
			r()
		}
		return le.Decision.RetryAfter
	}
	if got := retry(); got != ratelimitx.ConcurrencyRetryHint {
		t.Fatalf("nothing timed yet: RetryAfter %v, want %v", got, ratelimitx.ConcurrencyRetryHint)
	}
	if got := retry(); got != 250*time.Millisecond {
		t.Fatalf("holds of 1s, 4 holders: RetryAfter %v, want 250ms", got)
	}
	for _, c := range []struct {
		mean    time.Duration
		holders int
		want    time.Duration
	}{
		{0, 3, ratelimitx.ConcurrencyRetryHint},
		{time.Second, 0, ratelimitx.ConcurrencyRetryHint},
		{time.Microsecond, 1, time.Millisecond},
		{3 * time.Second, 2, 1500 * time.Millisecond},
	} {
		if got := ratelimitx.ConcurrencyRetryAfter(c.mean, c.holders); got != c.want {
			t.Errorf("ConcurrencyRetryAfter(%v, %d) = %v, want %v", c.mean, c.holders, got, c.want)
		}
	}
	if got := ratelimitx.NextMeanHold(ratelimitx.NextMeanHold(0, 40*time.Millisecond), 80*time.Millisecond); got != 45*time.Millisecond {
		t.Errorf("mean of holds 40ms then 80ms = %v, want 45ms", got)
	}
}
