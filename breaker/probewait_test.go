package breaker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

// resilience4j added maxWaitDurationInHalfOpenState for this (issue #935,
// "Circuit breaker stuck in HALF_OPEN state"); its doc: "Configures a
// maximum wait duration which controls the longest amount of time a
// CircuitBreaker could stay in Half Open state, before it switches to
// open." Here an unfinished probe past HalfOpenMaxWait (default 60s)
// counts as a failed probe and frees its slot, so a probe from Acquire
// whose release is never called cannot hold the only slot for ever.
func TestUnfinishedProbeExpires(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 1, Clock: clk})
	run(b, 1, fail)
	clk.Add(5 * time.Second)
	release, err := b.Acquire() // the probe; its caller forgets release
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(60*time.Second - time.Nanosecond)
	if err := b.Do(context.Background(), ok); !errors.Is(err, ErrTooManyProbes) {
		t.Fatalf("before HalfOpenMaxWait: %v, want ErrTooManyProbes", err)
	}
	clk.Add(time.Nanosecond)
	// The stale probe fails: the breaker reopens, so this call is refused.
	if err := b.Do(context.Background(), ok); !errors.Is(err, ErrOpen) || errors.Is(err, ErrTooManyProbes) {
		t.Fatalf("at HalfOpenMaxWait: %v, want ErrOpen (the expired probe reopened the breaker)", err)
	}
	if st := b.Stats(); st.State != Open || st.Failures != 2 {
		t.Fatalf("after the probe expired: %+v, want open with 2 failures", st)
	}
	clk.Add(5 * time.Second)
	if err := b.Do(context.Background(), ok); err != nil || b.State() != Closed {
		t.Fatalf("next probe: %v, state %v", err, b.State())
	}
	// The expired probe's late outcome is not counted a second time.
	before := b.Stats()
	release(errBoom)
	if after := b.Stats(); after.Failures != before.Failures || after.State != Closed {
		t.Fatalf("late release of an expired probe counted: before %+v after %+v", before, after)
	}
}

func TestHalfOpenMaxWaitOption(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 1, OpenTimeout: time.Second, HalfOpenProbes: 2, HalfOpenSuccesses: 1, HalfOpenMaxWait: 3 * time.Second, Clock: clk})
	run(b, 1, fail)
	clk.Add(time.Second)
	if _, err := b.Acquire(); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	if _, err := b.Acquire(); err != nil {
		t.Fatal(err)
	}
	if err := b.Do(context.Background(), ok); !errors.Is(err, ErrTooManyProbes) {
		t.Fatalf("both slots held: %v", err)
	}
	clk.Add(2 * time.Second) // the first probe is 3s old, the second 2s
	if err := b.Do(context.Background(), ok); !errors.Is(err, ErrOpen) {
		t.Fatalf("first probe expired: %v, want ErrOpen", err)
	}
	if st := b.Stats(); st.ProbeTimeouts != 1 || st.State != Open {
		t.Fatalf("stats %+v, want 1 probe timeout, open", st)
	}
	clk.Add(time.Second) // open time after a failed probe: 1s (multiplier 1); the second probe is now 3s old
	if err := b.Do(context.Background(), ok); err != nil {
		t.Fatalf("probe after the reopen: %v", err)
	}
	if st := b.Stats(); st.ProbeTimeouts != 2 || st.State != Closed {
		t.Fatalf("stats %+v, want 2 probe timeouts, closed", st)
	}
	if _, err := New(Options{HalfOpenMaxWait: -time.Second}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative HalfOpenMaxWait: %v", err)
	}
}

// Many goroutines probe, some abandoning their probes (Acquire without release)
// and some panicking: the breaker never wedges, and every call is counted
// once, but an abandoned one only when it expired as a probe.
func TestHammerAbandonedProbes(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 2, HalfOpenProbes: 3, OpenTimeout: time.Millisecond, HalfOpenMaxWait: 5 * time.Millisecond, Clock: clk})
	var calls, abandoned atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				calls.Add(1)
				switch (g + i) % 5 {
				case 0:
					if _, err := b.Acquire(); err == nil {
						abandoned.Add(1) // counted only if it expires as a probe
					}
				case 1:
					func() {
						defer func() { recover() }()
						b.Do(context.Background(), func(context.Context) error { panic("x") })
					}()
				case 2:
					b.Do(context.Background(), fail)
				default:
					b.Do(context.Background(), ok)
				}
				if i%20 == 0 {
					clk.Add(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	// Every call that finished counts once (by its own outcome, or by its
	// expiry if the clock passed HalfOpenMaxWait while it ran); an
	// abandoned one counts once if it expired, else not at all.
	st := b.Stats()
	got, finished := int64(st.Successes+st.Failures+st.Ignored+st.Rejected), calls.Load()-abandoned.Load()
	if got < finished || got > finished+int64(st.ProbeTimeouts) {
		t.Fatalf("outcomes %d, want %d..%d (calls %d, abandoned %d, expired %d): %+v",
			got, finished, finished+int64(st.ProbeTimeouts), calls.Load(), abandoned.Load(), st.ProbeTimeouts, st)
	}
	// Not wedged: once time passes, probes get through and close it.
	for i := 0; i < 100 && b.State() != Closed; i++ {
		clk.Add(10 * time.Millisecond)
		b.Do(context.Background(), ok)
	}
	if b.State() != Closed {
		t.Fatalf("breaker wedged: %+v", b.Stats())
	}
	t.Logf("hammer: %+v", st)
}
