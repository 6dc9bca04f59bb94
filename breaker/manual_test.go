package breaker

import (
	"context"
	"errors"
	"github.com/scalekit-go/scalekit/internal/testlog"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

// logBuf is a concurrency-safe log sink.
type logBuf = testlog.Buffer

// seq returns a rand source that yields vs in turn.
func seq(vs ...float64) func() float64 {
	var i atomic.Int64
	return func() float64 { return vs[int(i.Add(1)-1)%len(vs)] }
}

// Open-timeout jitter: each open time is drawn from [t(1-j), t(1+j)) with
// the injected random source, after MaxOpenTimeout's cap.
func TestOpenTimeoutJitter(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 1, OpenTimeout: 10 * time.Second, OpenTimeoutJitter: 0.2, rand: seq(0, 0.5, 0.75), Clock: clk})
	run(b, 1, fail)
	for i, want := range []time.Duration{8 * time.Second, 10 * time.Second, 11 * time.Second} {
		if d := b.Stats().OpenUntil.Sub(clk.Now()); d != want {
			t.Fatalf("trip %d: open for %v, want %v", i, d, want)
		}
		clk.Add(want)
		run(b, 1, fail) // the probe fails: reopen
	}
	// A fleet tripped by the same outage at the same instant: each breaker
	// with its own source probes at its own time.
	at := map[time.Time]bool{}
	for i := range 20 {
		r := rand.New(rand.NewPCG(uint64(i), 15))
		fb := newB(t, Options{ConsecutiveFailures: 1, OpenTimeout: 10 * time.Second, OpenTimeoutJitter: 0.2, rand: r.Float64, Clock: clk})
		run(fb, 1, fail)
		u := fb.Stats().OpenUntil
		if d := u.Sub(clk.Now()); d < 8*time.Second || d >= 12*time.Second {
			t.Fatalf("breaker %d open for %v, outside [8s, 12s)", i, d)
		}
		at[u] = true
	}
	if len(at) < 18 {
		t.Fatalf("20 breakers probe at only %d distinct instants", len(at))
	}
	for _, j := range []float64{-0.1, 1, 2} {
		if _, err := New(Options{OpenTimeoutJitter: j}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Options.OpenTimeoutJitter") {
			t.Errorf("OpenTimeoutJitter %v: %v", j, err)
		}
	}
}

// resilience4j's CircuitBreaker has, beside CLOSED, OPEN and HALF_OPEN,
// special states set by hand: FORCED_OPEN (always deny access), DISABLED
// (always allow access) and METRICS_ONLY (always allow access, but record
// metrics and events); the only way out of them is a state transition or a
// reset. Here: ForceOpen, ForceClosed, MetricsOnly and Reset.
func TestForceOpen(t *testing.T) {
	clk := testclock.New()
	var logs logBuf
	events := make(chan string, 10)
	b := newB(t, Options{Name: "pay", Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnStateChange: func(_ string, from, to State) { events <- from.String() + "->" + to.String() }})
	b.ForceOpen()
	b.ForceOpen() // already forced open: no second transition
	called := 0
	for range 2 {
		err := b.Do(context.Background(), func(context.Context) error { called++; return nil })
		if !errors.Is(err, ErrForcedOpen) || !errors.Is(err, ErrOpen) {
			t.Fatalf("forced open: %v, want ErrForcedOpen (an ErrOpen)", err)
		}
		clk.Add(time.Hour) // no timeout ends it
	}
	if called != 0 {
		t.Fatalf("fn called %d times while forced open", called)
	}
	if st := b.Stats(); st.State != ForcedOpen || st.Transitions != 1 || st.Rejected != 2 || !st.OpenUntil.IsZero() {
		t.Fatalf("stats %+v", st)
	}
	if ev := <-events; ev != "closed->forced-open" {
		t.Fatalf("OnStateChange got %q", ev)
	}
	if !strings.Contains(logs.String(), "to=forced-open") {
		t.Fatalf("transition not logged: %s", logs.String())
	}
	b.Reset()
	if err := b.Do(context.Background(), ok); err != nil || b.State() != Closed {
		t.Fatalf("after Reset: %v, %v", err, b.State())
	}
	if ev := <-events; ev != "forced-open->closed" {
		t.Fatalf("OnStateChange got %q", ev)
	}
}

func TestForceClosed(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 1, Clock: clk})
	run(b, 1, fail) // open
	b.ForceClosed()
	if r := run(b, 100, fail); r != 0 {
		t.Fatalf("forced closed rejected %d calls", r)
	}
	if st := b.Stats(); st.State != ForcedClosed || st.Failures != 101 || st.Transitions != 2 {
		t.Fatalf("stats %+v", st)
	}
	b.Reset()
	run(b, 1, fail)
	if b.State() != Open {
		t.Fatalf("after Reset the rules apply again: %v", b.State())
	}
	if ForcedClosed.String() != "forced-closed" || MetricsOnly.String() != "metrics-only" || ForcedOpen.String() != "forced-open" {
		t.Fatal("state names")
	}
}

func TestMetricsOnly(t *testing.T) {
	var logs logBuf
	b := newB(t, Options{ConsecutiveFailures: 3, FailureRateThreshold: 0.5, WindowSize: 10, MinimumCalls: 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	b.MetricsOnly()
	if r := run(b, 3, fail); r != 0 {
		t.Fatalf("metrics-only rejected %d calls", r)
	}
	if st := b.Stats(); st.State != MetricsOnly || st.WouldTrips != 1 || st.Failures != 3 {
		t.Fatalf("3 failures in a row: %+v, want 1 would-trip", st)
	}
	if !strings.Contains(logs.String(), "would trip") {
		t.Fatalf("would-trip not logged: %s", logs.String())
	}
	// The count starts afresh after a would-trip: the window rule now.
	for range 5 {
		run(b, 1, ok)
		run(b, 1, fail)
	}
	if st := b.Stats(); st.State != MetricsOnly || st.WouldTrips != 2 {
		t.Fatalf("5 failures of 10: %+v, want a 2nd would-trip", st)
	}
	b.Reset()
	run(b, 3, fail)
	if b.State() != Open {
		t.Fatalf("after Reset: %v", b.State())
	}
}

type response struct{ status int }

// Result-based failure: a value can be a failure (failsafe-go's HandleIf,
// resilience4j's recordResult predicate): a 503 answered without a
// transport error counts as one.
func TestDoValueJudged(t *testing.T) {
	b := newB(t, Options{ConsecutiveFailures: 2})
	is5xx := func(r *response) bool { return r.status >= 500 }
	call := func(status int) (*response, error) {
		return DoValueJudged(context.Background(), b, func(context.Context) (*response, error) { return &response{status}, nil }, is5xx)
	}
	r, err := call(503)
	if err != nil || r.status != 503 {
		t.Fatalf("DoValueJudged returned %v, %v; want the 503 and a nil error", r, err)
	}
	if st := b.Stats(); st.Failures != 1 || st.ConsecutiveFailures != 1 {
		t.Fatalf("a 503 did not count as a failure: %+v", st)
	}
	call(200)
	call(503)
	if b.State() != Closed {
		t.Fatal("a success did not break the run")
	}
	call(502)
	if b.State() != Open {
		t.Fatalf("2 failing results in a row: %v", b.State())
	}
	if _, err := call(200); !errors.Is(err, ErrOpen) {
		t.Fatalf("open: %v", err)
	}
}

func TestDoValueJudgedAllocatesNothing(t *testing.T) {
	b := newB(t, Options{FailureRateThreshold: 0.5})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 200, nil }
	isFailure := func(v int) bool { return v >= 500 }
	if a := testing.AllocsPerRun(1000, func() { DoValueJudged(ctx, b, fn, isFailure) }); a != 0 {
		t.Fatalf("DoValueJudged closed: %v allocs", a)
	}
}

// Calls from many goroutines while another flips the manual states: every
// call is counted once, and -race sees no conflict.
func TestHammerManualStates(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 3, FailureRateThreshold: 0.5, WindowSize: 20, MinimumCalls: 10, HalfOpenProbes: 2,
		OpenTimeout: time.Millisecond, OpenTimeoutJitter: 0.5, Clock: clk})
	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 4 {
			case 0:
				b.ForceOpen()
			case 1:
				b.MetricsOnly()
			case 2:
				b.ForceClosed()
			case 3:
				b.Reset()
			}
			clk.Add(time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				if (g+i)%3 == 0 {
					b.Do(context.Background(), fail)
				} else {
					b.Do(context.Background(), ok)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-flipped
	st := b.Stats()
	if st.Successes+st.Failures+st.Ignored+st.Rejected != 32*300 {
		t.Fatalf("outcomes do not add up: %+v", st)
	}
	t.Logf("hammer: %+v", st)
}
