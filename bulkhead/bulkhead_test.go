package bulkhead_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/priority"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

func mustNew(t testing.TB, o bulkhead.Options) *bulkhead.Bulkhead {
	t.Helper()
	b, err := bulkhead.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		o    bulkhead.Options
		want string
	}{
		{bulkhead.Options{MaxConcurrent: -1}, "Options.MaxConcurrent must be >= 1"},
		{bulkhead.Options{MaxWaiting: -1}, "Options.MaxWaiting must be >= 0"},
		{bulkhead.Options{MaxWait: -time.Second}, "Options.MaxWait must be > 0"},
	} {
		if _, err := bulkhead.New(tc.o); !errors.Is(err, bulkhead.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want ErrInvalid naming %q", tc.o, err, tc.want)
		}
	}
	s := mustNew(t, bulkhead.Options{}).Stats()
	if s.MaxConcurrent != 10 || s.MaxWaiting != 10 {
		t.Errorf("defaults: %+v", s)
	}
	if s := mustNew(t, bulkhead.Options{MaxWaiting: 5, NoQueue: true}).Stats(); s.MaxWaiting != 0 {
		t.Errorf("NoQueue: MaxWaiting %d", s.MaxWaiting)
	}
}

// held takes n slots and returns their release funcs.
func held(t *testing.T, b *bulkhead.Bulkhead, n int) []func() {
	var out []func()
	for range n {
		r, err := b.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// start runs b.Do in a goroutine, the call returning at once; the result
// arrives on the channel.
func start(b *bulkhead.Bulkhead, ctx context.Context, ran *atomic.Int32) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ch <- b.Do(ctx, func(context.Context) error { ran.Add(1); return nil })
	}()
	synctest.Wait() // it runs, or waits in the queue
	return ch
}

func TestQueueAndMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, bulkhead.Options{MaxConcurrent: 2, MaxWaiting: 1, MaxWait: time.Second})
		rel := held(t, b, 2)
		var ran atomic.Int32
		third := start(b, context.Background(), &ran)
		if err := b.Do(context.Background(), func(context.Context) error { return nil }); err != bulkhead.ErrQueueFull {
			t.Fatalf("fourth call: %v, want ErrQueueFull at once", err)
		}
		if s := b.Stats(); s.InFlight != 2 || s.Waiting != 1 {
			t.Fatalf("Stats %+v, want 2 in flight, 1 waiting", s)
		}
		rel[0]()
		rel[0]() // twice: harmless
		if err := <-third; err != nil || ran.Load() != 1 {
			t.Fatalf("the waiting call: %v (ran %d), want it run when a slot freed", err, ran.Load())
		}
		// MaxWait: a call waits exactly 1s, then ErrMaxWait.
		rel2, _ := b.Acquire(context.Background())
		t0 := time.Now()
		err := b.Do(context.Background(), func(context.Context) error { return nil })
		if !errors.Is(err, bulkhead.ErrMaxWait) || !errors.Is(err, bulkhead.ErrRejected) || time.Since(t0) != time.Second {
			t.Fatalf("after %v: %v, want ErrMaxWait after 1s", time.Since(t0), err)
		}
		// The ctx ends while waiting: its error, nothing run.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := b.Do(ctx, func(context.Context) error { t.Error("ran"); return nil }); err != context.DeadlineExceeded {
			t.Fatalf("ctx ended while waiting: %v", err)
		}
		rel[1]()
		rel2()
		s := b.Stats()
		want := bulkhead.Stats{MaxConcurrent: 2, MaxWaiting: 1, Admitted: 4, Waited: 1, QueueFull: 1, MaxWait: 1, Cancelled: 1,
			Rejected: priority.Counts{Default: 2}}
		if s != want {
			t.Fatalf("Stats = %+v\nwant    %+v", s, want)
		}
	})
}

// TestPriority: a critical call takes the place of the newest sheddable
// one in a full queue, and freed slots go to the highest class first.
func TestPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, bulkhead.Options{MaxConcurrent: 1, MaxWaiting: 2, MaxWait: time.Hour})
		rel := held(t, b, 1)
		var order []string
		var mu sync.Mutex
		run := func(name string, c priority.Class) <-chan error {
			ch := make(chan error, 1)
			go func() {
				ch <- b.Do(priority.With(context.Background(), c), func(context.Context) error {
					mu.Lock()
					order = append(order, name)
					mu.Unlock()
					return nil
				})
			}()
			synctest.Wait()
			return ch
		}
		s1 := run("s1", priority.Sheddable)
		s2 := run("s2", priority.Sheddable)
		c1 := run("c1", priority.Critical) // queue full: sheds s2, the newest sheddable
		if err := <-s2; err != bulkhead.ErrShed {
			t.Fatalf("s2: %v, want ErrShed", err)
		}
		d1 := run("d1", priority.Default) // room again? no: s1 and c1 wait; sheds s1
		if err := <-s1; err != bulkhead.ErrShed {
			t.Fatalf("s1: %v, want ErrShed", err)
		}
		// A default call finding the queue full of higher classes is refused.
		if err := b.Do(context.Background(), func(context.Context) error { return nil }); err != bulkhead.ErrQueueFull {
			t.Fatalf("default into a queue of critical+default: %v", err)
		}
		rel[0]()
		for _, ch := range []<-chan error{c1, d1} {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}
		if strings.Join(order, ",") != "c1,d1" {
			t.Fatalf("ran in order %v, want critical first", order)
		}
		if s := b.Stats(); s.Shed != 2 || s.Rejected != (priority.Counts{Sheddable: 2, Default: 1}) || s.InFlight != 0 || s.Waiting != 0 {
			t.Fatalf("Stats %+v", s)
		}
	})
}

func TestPanicFreesSlot(t *testing.T) {
	b := mustNew(t, bulkhead.Options{MaxConcurrent: 1, NoQueue: true})
	func() {
		defer func() { _ = recover() }()
		_ = b.Do(context.Background(), func(context.Context) error { panic("boom") })
	}()
	if err := b.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatalf("after a panic: %v, the slot was not freed", err)
	}
	v, err := bulkhead.DoValue(context.Background(), b, func(context.Context) (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Fatalf("DoValue = %v, %v", v, err)
	}
}

// TestHammer: 64 goroutines of mixed classes through a bulkhead of 4; never
// more than 4 run, and every call is counted once.
func TestHammer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, bulkhead.Options{MaxConcurrent: 4, MaxWaiting: 8, MaxWait: 5 * time.Millisecond})
		var running, peak, ok, rejected, cancelled atomic.Int64
		var wg sync.WaitGroup
		for g := range 64 {
			wg.Go(func() {
				for i := range 30 {
					ctx := priority.With(context.Background(), priority.Classes[(g+i)%3])
					var cancel context.CancelFunc = func() {}
					if i%7 == 0 {
						ctx, cancel = context.WithTimeout(ctx, time.Millisecond)
					}
					err := b.Do(ctx, func(context.Context) error {
						n := running.Add(1)
						for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
						}
						time.Sleep(time.Millisecond)
						running.Add(-1)
						return nil
					})
					cancel()
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, bulkhead.ErrRejected):
						rejected.Add(1)
					case errors.Is(err, context.DeadlineExceeded):
						cancelled.Add(1)
					default:
						t.Errorf("unexpected %v", err)
					}
				}
			})
		}
		wg.Wait()
		s := b.Stats()
		if peak.Load() > 4 || peak.Load() < 2 {
			t.Errorf("peak concurrency %d, want 2..4", peak.Load())
		}
		rej := s.QueueFull + s.MaxWait + s.Shed
		if ok.Load()+rejected.Load()+cancelled.Load() != 64*30 || uint64(ok.Load()) != s.Admitted ||
			uint64(rejected.Load()) != rej || rej != s.Rejected.Sheddable+s.Rejected.Default+s.Rejected.Critical ||
			uint64(cancelled.Load()) != s.Cancelled || s.InFlight != 0 || s.Waiting != 0 {
			t.Fatalf("ok %d rejected %d cancelled %d; Stats %+v", ok.Load(), rejected.Load(), cancelled.Load(), s)
		}
		if s.Rejected.Critical > s.Rejected.Sheddable {
			t.Errorf("more critical calls rejected (%d) than sheddable ones (%d)", s.Rejected.Critical, s.Rejected.Sheddable)
		}
		t.Logf("%+v", s)
	})
}

func TestDoAdmittedAtOnceAllocatesNothing(t *testing.T) {
	b := mustNew(t, bulkhead.Options{})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if a := testing.AllocsPerRun(1000, func() { _ = b.Do(ctx, fn) }); a != 0 {
		t.Fatalf("Do allocates %v times", a)
	}
}
