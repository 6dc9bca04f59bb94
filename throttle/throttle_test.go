package throttle

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/priority"
)

var errBusy = errors.New("503")

func newT(t testing.TB, o Options) *Throttler {
	t.Helper()
	th, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

func fail(context.Context) error { return errBusy }
func ok(context.Context) error   { return nil }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{K: 0.5}, "Options.K must be in [1, 100]"},
		{Options{K: math.NaN()}, "Options.K must be in [1, 100]"},
		{Options{Window: time.Millisecond}, "Options.Window must be >= 10ms"},
	} {
		if _, err := New(tc.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want ErrInvalid naming %q", tc.o, err, tc.want)
		}
	}
}

// TestFormula: the refusal probability is max(0, (requests − K·accepts) /
// (requests + 1)) over the window, with the random draw fixed.
func TestFormula(t *testing.T) {
	clk := testclock.New()
	draw := 0.5
	th := newT(t, Options{Clock: clk, rand: func() float64 { return draw }})
	ctx := context.Background()
	for range 10 {
		if err := th.Do(ctx, ok); err != nil {
			t.Fatal(err)
		}
	}
	if p := th.Probability(priority.Default); p != 0 {
		t.Fatalf("all accepted: p = %v, want 0", p)
	}
	// 10 requests, 10 accepts; 20 failures more: 30 requests, 10 accepts,
	// p = (30-20)/31 once they are in. Draws of 0.99 let every one through.
	draw = 0.99
	for range 20 {
		if err := th.Do(ctx, fail); err != errBusy {
			t.Fatalf("got %v", err)
		}
	}
	if p := th.Probability(priority.Default); !near(p, 10.0/31) {
		t.Fatalf("p = %v, want 10/31", p)
	}
	// A draw below p refuses locally, without calling.
	draw = 0.3
	if err := th.Do(ctx, func(context.Context) error { t.Fatal("called"); return nil }); err != ErrThrottled {
		t.Fatalf("draw 0.3 under p 0.32: %v, want ErrThrottled", err)
	}
	// The refused call is a request too: 31 requests, 10 accepts.
	if s := th.Stats(); s.Requests != 31 || s.Accepts != 10 || !near(s.Probability, 11.0/32) || s.Throttled.Default != 1 || s.Rejected != 20 || s.Calls != 31 {
		t.Fatalf("Stats = %+v", s)
	}
	// Priority: sheddable K=1, critical K=4.
	if p := th.Probability(priority.Sheddable); !near(p, 21.0/32) {
		t.Errorf("sheddable p = %v, want 21/32", p)
	}
	if p := th.Probability(priority.Critical); p != 0 {
		t.Errorf("critical p = %v, want 0 (31 < 4*10)", p)
	}
	draw = 0.5
	if err := th.Do(priority.With(ctx, priority.Critical), ok); err != nil {
		t.Errorf("critical call: %v", err)
	}
	if err := th.Do(priority.With(ctx, priority.Sheddable), ok); err != ErrThrottled {
		t.Errorf("sheddable call with draw 0.5 under p 0.66: %v", err)
	}
	// The window slides: after Window, nothing is counted.
	clk.Add(2 * time.Minute)
	if s := th.Stats(); s.Requests != 0 || s.Probability != 0 {
		t.Fatalf("a window later: %+v", s)
	}
}

// TestWindowSlides: buckets leave the window one tenth at a time.
func TestWindowSlides(t *testing.T) {
	clk := testclock.New()
	th := newT(t, Options{Window: 10 * time.Second, Clock: clk, rand: func() float64 { return 0.999 }})
	ctx := context.Background()
	for range 5 {
		_ = th.Do(ctx, fail)
		clk.Add(time.Second)
	}
	// Requests at 0s..4s; now 5s: all 5 counted.
	if s := th.Stats(); s.Requests != 5 {
		t.Fatalf("requests %d, want 5", s.Requests)
	}
	clk.Add(5 * time.Second) // 10s: the window is (0s, 10s]: the 0s bucket has left
	if s := th.Stats(); s.Requests != 4 {
		t.Fatalf("at 10s: requests %d, want 4", s.Requests)
	}
	clk.Add(5 * time.Second) // 15s: all gone
	if s := th.Stats(); s.Requests != 0 {
		t.Fatalf("at 15s: requests %d, want 0", s.Requests)
	}
}

// TestRejectedAndCallerCtx: Options.Rejected decides refusals; an error
// after the caller's ctx ended counts as accepted.
func TestRejectedAndCallerCtx(t *testing.T) {
	errNotFound := errors.New("404")
	th := newT(t, Options{Clock: testclock.New(), Rejected: func(err error) bool { return err == errBusy }, rand: func() float64 { return 0.999 }})
	ctx := context.Background()
	_ = th.Do(ctx, func(context.Context) error { return errNotFound })
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = th.Do(cctx, func(ctx context.Context) error { return errBusy })
	_ = th.Do(ctx, fail)
	if s := th.Stats(); s.Requests != 3 || s.Accepts != 2 || s.Rejected != 1 {
		t.Fatalf("Stats = %+v, want 3 requests, 2 accepts, 1 rejected", s)
	}
	v, err := DoValue(ctx, th, func(context.Context) (int, error) { return 3, nil })
	if v != 3 || err != nil {
		t.Fatalf("DoValue = %v, %v", v, err)
	}
}

// TestShedsLoad: against a backend that refuses everything, the backend
// sees a shrinking share of the calls; with half accepted (K = 2), none is
// refused locally.
func TestShedsLoad(t *testing.T) {
	th := newT(t, Options{Clock: testclock.New()}) // the real random source
	ctx := context.Background()
	var sent int
	for range 1000 {
		_ = th.Do(ctx, func(context.Context) error { sent++; return errBusy })
	}
	// p = n/(n+1) after n requests with no accepts: about ln(1000)+1 sent.
	if sent > 100 {
		t.Fatalf("the backend got %d of 1000 calls while refusing all", sent)
	}
	th2 := newT(t, Options{Clock: testclock.New()})
	i := 0
	for range 1000 {
		if err := th2.Do(ctx, func(context.Context) error {
			i++
			if i%2 == 0 {
				return errBusy
			}
			return nil
		}); err == ErrThrottled {
			t.Fatal("refused locally while half the calls were accepted (K = 2)")
		}
	}
}

// TestHammer: 64 goroutines of mixed classes; the counts add up.
func TestHammer(t *testing.T) {
	clk := testclock.New()
	th := newT(t, Options{Clock: clk, Window: time.Second})
	var wg sync.WaitGroup
	var throttled, calls atomic.Uint64
	for g := range 64 {
		wg.Go(func() {
			for i := range 200 {
				ctx := priority.With(context.Background(), priority.Classes[(g+i)%3])
				if i%50 == 0 {
					clk.Add(10 * time.Millisecond)
				}
				err := th.Do(ctx, func(context.Context) error {
					calls.Add(1)
					if (g+i)%4 == 0 {
						return errBusy
					}
					return nil // 3 in 4 accepted: only sheddable calls (K = 1) are refused
				})
				if err == ErrThrottled {
					throttled.Add(1)
				}
			}
		})
	}
	wg.Wait()
	s := th.Stats()
	n := s.Throttled
	if s.Calls != 64*200 || n.Sheddable+n.Default+n.Critical != throttled.Load() || calls.Load()+throttled.Load() != s.Calls {
		t.Fatalf("Stats %+v; throttled %d, called %d", s, throttled.Load(), calls.Load())
	}
	if n.Sheddable <= n.Critical {
		t.Errorf("sheddable refused %d times, critical %d: sheddable should go first", n.Sheddable, n.Critical)
	}
	t.Logf("%+v", s)
}

func TestDoAllocatesNothing(t *testing.T) {
	th := newT(t, Options{})
	ctx := context.Background()
	if a := testing.AllocsPerRun(1000, func() { _ = th.Do(ctx, ok) }); a != 0 {
		t.Fatalf("Do allocates %v times", a)
	}
}
