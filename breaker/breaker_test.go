package breaker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

var errBoom = errors.New("boom")

func ok(context.Context) error   { return nil }
func fail(context.Context) error { return errBoom }

func newB(t testing.TB, o Options) *Breaker {
	t.Helper()
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func run(b *Breaker, n int, fn func(context.Context) error) (rejected int) {
	for i := 0; i < n; i++ {
		if err := b.Do(context.Background(), fn); errors.Is(err, ErrOpen) {
			rejected++
		}
	}
	return
}

func TestConsecutiveTripProbeAndClose(t *testing.T) {
	clk := testclock.New()
	var changes []string
	var mu sync.Mutex
	done := make(chan struct{}, 10)
	b := newB(t, Options{Name: "db", Clock: clk, OnStateChange: func(name string, from, to State) {
		mu.Lock()
		changes = append(changes, name+":"+from.String()+"->"+to.String())
		mu.Unlock()
		done <- struct{}{}
	}})
	run(b, 4, fail)
	run(b, 1, ok) // a success resets the run
	run(b, 4, fail)
	if b.State() != Closed {
		t.Fatal("tripped before 5 consecutive failures")
	}
	run(b, 1, fail)
	if b.State() != Open {
		t.Fatalf("state %v after 5 consecutive failures", b.State())
	}
	calls := 0
	if err := b.Do(context.Background(), func(context.Context) error { calls++; return nil }); !errors.Is(err, ErrOpen) || calls != 0 {
		t.Fatalf("open breaker: err %v, fn called %d times", err, calls)
	}
	clk.Add(5 * time.Second) // OpenTimeout: the next call probes
	if err := b.Do(context.Background(), ok); err != nil || b.State() != Closed {
		t.Fatalf("probe: %v, state %v", err, b.State())
	}
	for i := 0; i < 3; i++ {
		<-done
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(changes, ",") != "db:closed->open,db:open->half-open,db:half-open->closed" {
		t.Fatalf("transitions %v", changes)
	}
	if st := b.Stats(); st.Transitions != 3 || st.Rejected != 1 || st.Failures != 9 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFailedProbeReopensWithGrowingTimeout(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 1, OpenTimeout: time.Second, OpenTimeoutMultiplier: 2, MaxOpenTimeout: 5 * time.Second, Clock: clk})
	run(b, 1, fail)
	for i, want := range []time.Duration{2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		prevWait := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second}[i]
		clk.Add(prevWait - time.Millisecond)
		if run(b, 1, ok) != 1 {
			t.Fatalf("trip %d: admitted before the open timeout %v", i, prevWait)
		}
		clk.Add(time.Millisecond)
		run(b, 1, fail) // the probe fails: reopen, longer
		if b.State() != Open {
			t.Fatalf("trip %d: a failed probe left the breaker %v", i, b.State())
		}
		if d := b.Stats().OpenUntil.Sub(clk.Now()); d != want {
			t.Fatalf("trip %d: open for %v, want %v", i, d, want)
		}
	}
	// Closing resets the growth.
	clk.Add(5 * time.Second)
	run(b, 1, ok)
	run(b, 1, fail)
	if d := b.Stats().OpenUntil.Sub(clk.Now()); d != time.Second {
		t.Fatalf("after closing, open for %v, want the base 1s", d)
	}
}

func TestProbeLimit(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 1, HalfOpenProbes: 2, HalfOpenSuccesses: 2, Clock: clk})
	run(b, 1, fail)
	clk.Add(5 * time.Second)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Do(context.Background(), func(context.Context) error { started <- struct{}{}; <-release; return nil })
		}()
	}
	<-started
	<-started
	err := b.Do(context.Background(), ok)
	if !errors.Is(err, ErrTooManyProbes) || !errors.Is(err, ErrOpen) {
		t.Fatalf("third probe: %v, want ErrTooManyProbes (an ErrOpen)", err)
	}
	close(release)
	wg.Wait()
	if b.State() != Closed {
		t.Fatalf("after 2 successful probes: %v", b.State())
	}
}

func TestCountWindowRateTrip(t *testing.T) {
	b := newB(t, Options{NoConsecutive: true, FailureRateThreshold: 0.5, WindowSize: 10, MinimumCalls: 10})
	run(b, 6, ok)
	run(b, 4, fail) // 4/10
	if b.State() != Closed {
		t.Fatal("tripped at 40%")
	}
	run(b, 1, fail) // window: the oldest ok replaced: 5/10
	if b.State() != Open {
		t.Fatalf("state %v at 50%% failures; window %+v", b.State(), b.Stats())
	}
	// MinimumCalls: 3 failures of 3 calls do not trip.
	b2 := newB(t, Options{NoConsecutive: true, FailureRateThreshold: 0.5, WindowSize: 10, MinimumCalls: 5})
	run(b2, 3, fail)
	if b2.State() != Closed {
		t.Fatal("tripped below MinimumCalls")
	}
}

func TestTimeWindowAgesOut(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{NoConsecutive: true, FailureRateThreshold: 0.5, WindowDuration: 10 * time.Second, MinimumCalls: 4, Clock: clk})
	run(b, 3, fail)
	clk.Add(11 * time.Second) // those failures leave the window
	run(b, 3, ok)
	run(b, 1, fail)
	if b.State() != Closed {
		t.Fatalf("old failures still counted: %+v", b.Stats())
	}
	run(b, 2, fail) // 3 of 6 in the window
	if b.State() != Open {
		t.Fatalf("state %v with 3 failures of 6 recent calls", b.State())
	}
}

func TestSlowCalls(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{NoConsecutive: true, SlowCallThreshold: 100 * time.Millisecond, SlowCallRateThreshold: 0.5, WindowSize: 4, MinimumCalls: 4, Clock: clk})
	slow := func(context.Context) error { clk.Add(200 * time.Millisecond); return nil }
	run(b, 2, ok)
	run(b, 1, slow)
	if b.State() != Closed {
		t.Fatal("tripped early")
	}
	run(b, 1, slow) // 2 slow of 4, though none failed
	if b.State() != Open || b.Stats().Slow != 2 {
		t.Fatalf("slow calls: %+v", b.Stats())
	}
}

func TestClassification(t *testing.T) {
	notFound := errors.New("not found")
	b := newB(t, Options{ConsecutiveFailures: 2, Ignore: func(err error) bool { return errors.Is(err, notFound) }})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := 0; i < 5; i++ {
		b.Do(ctx, func(ctx context.Context) error { return ctx.Err() }) // the caller gave up
		b.Do(context.Background(), func(context.Context) error { return notFound })
		b.Do(context.Background(), func(context.Context) error { return fmt.Errorf("inner: %w", ErrOpen) })
	}
	if b.State() != Closed || b.Stats().Ignored != 15 {
		t.Fatalf("ignored errors tripped it: %+v", b.Stats())
	}
	// A deadline the dependency blew is a failure.
	b.Do(context.Background(), func(context.Context) error { return context.DeadlineExceeded })
	b.Do(context.Background(), func(context.Context) error { return context.DeadlineExceeded })
	if b.State() != Open {
		t.Fatal("deadline errors did not count")
	}
	nested := newB(t, Options{ConsecutiveFailures: 1, CountNestedOpen: true})
	nested.Do(context.Background(), func(context.Context) error { return ErrOpen })
	if nested.State() != Open {
		t.Fatal("CountNestedOpen ignored")
	}
	onlyServer := newB(t, Options{ConsecutiveFailures: 1, IsFailure: func(err error) bool { return !errors.Is(err, notFound) }})
	onlyServer.Do(context.Background(), func(context.Context) error { return notFound })
	if onlyServer.State() != Closed {
		t.Fatal("IsFailure ignored")
	}
}

func TestStaleGenerationIgnored(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 1, Clock: clk})
	release, err := b.Acquire() // starts while closed
	if err != nil {
		t.Fatal(err)
	}
	run(b, 1, fail) // trips
	clk.Add(5 * time.Second)
	run(b, 1, ok)    // probe closes it: a new generation
	release(errBoom) // the old call's failure must not trip the new closed state
	release(errBoom) // twice: harmless
	if b.State() != Closed {
		t.Fatal("a result from before the trip tripped the breaker again")
	}
}

// A release called more than once counts its call once, in closed state
// and for a half-open probe.
func TestReleaseTwiceCountsOnce(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 2, HalfOpenProbes: 2, HalfOpenSuccesses: 2, Clock: clk})
	release, err := b.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	release(errBoom)
	release(errBoom) // a second failure would trip the breaker
	if st := b.Stats(); st.State != Closed || st.Failures != 1 || st.ConsecutiveFailures != 1 {
		t.Fatalf("after one call released twice: %+v, want closed with 1 failure", st)
	}
	run(b, 1, fail) // trips
	clk.Add(5 * time.Second)
	probe, err := b.Acquire()
	if err != nil {
		t.Fatal(err)
	}
	probe(nil)
	probe(nil) // a second success would close the breaker (HalfOpenSuccesses 2)
	if st := b.Stats(); st.State != HalfOpen || st.Successes != 1 {
		t.Fatalf("after one probe released twice: %+v, want half-open with 1 success", st)
	}
}

func TestClosedPathAllocatesNothing(t *testing.T) {
	b := newB(t, Options{FailureRateThreshold: 0.5})
	ctx := context.Background()
	if a := testing.AllocsPerRun(1000, func() { b.Do(ctx, ok) }); a != 0 {
		t.Fatalf("Do closed: %v allocs", a)
	}
	if a := testing.AllocsPerRun(1000, func() { DoValue(ctx, b, func(context.Context) (int, error) { return 1, nil }) }); a != 0 {
		t.Fatalf("DoValue closed: %v allocs", a)
	}
}

func TestHammer(t *testing.T) {
	clk := testclock.New()
	b := newB(t, Options{ConsecutiveFailures: 3, FailureRateThreshold: 0.5, WindowSize: 20, MinimumCalls: 10, HalfOpenProbes: 3, OpenTimeout: time.Millisecond, Clock: clk})
	var inProbe, peak atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				half := b.State() == HalfOpen
				b.Do(context.Background(), func(context.Context) error {
					if half {
						n := inProbe.Add(1)
						for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
						}
						defer inProbe.Add(-1)
					}
					if (g+i)%3 == 0 {
						return errBoom
					}
					return nil
				})
				if i%50 == 0 {
					clk.Add(time.Millisecond)
				}
				if i%100 == 0 {
					b.Stats()
				}
			}
		}()
	}
	wg.Wait()
	st := b.Stats()
	if st.Successes+st.Failures+st.Ignored+st.Rejected != 64*500 {
		t.Fatalf("outcomes do not add up: %+v", st)
	}
	t.Logf("hammer: %+v", st)
}

func TestGroup(t *testing.T) {
	g, err := NewGroup(GroupOptions{Template: Options{ConsecutiveFailures: 1}, MaxBreakers: 3})
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := g.Get("a")
	a2, _ := g.Get("a")
	if a1 != a2 || a1.Name() != "a" {
		t.Fatal("same name, different breakers")
	}
	g.Do(context.Background(), "b", fail) // b opens
	g.Get("c")
	g.Get("d") // full: evicts the least recently used closed one (a), never the open b
	if g.Len() != 3 {
		t.Fatalf("len %d", g.Len())
	}
	if b2, _ := g.Get("b"); b2.State() != Open {
		t.Fatal("the open breaker was evicted")
	}
	g2, _ := NewGroup(GroupOptions{Template: Options{ConsecutiveFailures: 1}, MaxBreakers: 1})
	g2.Do(context.Background(), "x", fail)
	if _, err := g2.Get("y"); !errors.Is(err, ErrGroupFull) {
		t.Fatalf("full of open breakers: %v", err)
	}
	var wg sync.WaitGroup
	g3, _ := NewGroup(GroupOptions{MaxBreakers: 50})
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				g3.Do(context.Background(), fmt.Sprint("host", (i+j)%80), ok)
			}
		}()
	}
	wg.Wait()
	if g3.Len() > 50 {
		t.Fatalf("group grew to %d", g3.Len())
	}
}

func TestOptionErrors(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{ConsecutiveFailures: -1}, "Options.ConsecutiveFailures"},
		{Options{FailureRateThreshold: 1.5}, "Options.FailureRateThreshold must be in (0, 1]"},
		{Options{WindowSize: -3}, "Options.WindowSize"},
		{Options{WindowDuration: time.Millisecond}, "Options.WindowDuration"},
		{Options{OpenTimeoutMultiplier: 0.5}, "Options.OpenTimeoutMultiplier"},
		{Options{OpenTimeout: time.Minute, MaxOpenTimeout: time.Second}, "Options.MaxOpenTimeout"},
		{Options{HalfOpenProbes: -1}, "Options.HalfOpenProbes"},
	} {
		if _, err := New(c.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.o, err, c.want)
		}
	}
}
