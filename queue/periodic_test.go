package queue_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/queue"
)

// skewed is the bubble's clock shifted by d: an instance whose clock is
// off.
func skewed(d time.Duration) clock.Clock {
	return clock.Func(func() time.Time { return time.Now().Add(d) })
}

// TestSchedulerFleet runs three Schedulers on their own timers (Start), on
// clocks 250ms apart, with Workers consuming the jobs, in a synctest
// bubble; one instance is restarted mid-period. Over 10 ticks the
// handler runs exactly 10 times, once per tick.
func TestSchedulerFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"cron": {}}})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		runs := map[string]int{}
		if err := queue.Handle(w, "refresh", func(ctx context.Context, j *queue.Job[string]) error {
			mu.Lock()
			runs[j.ID]++
			mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := w.Start(ctx); err != nil {
			t.Fatal(err)
		}
		sc := queue.Schedule{Name: "refresh", Every: time.Minute, Queue: "cron", Kind: "refresh", Args: "view"}
		start := func(skew time.Duration, missed queue.MissedPolicy) *queue.Scheduler {
			t.Helper()
			sc := sc
			sc.Missed = missed
			s, err := queue.NewScheduler(queue.SchedulerOptions{Backend: b, Clock: skewed(skew), Schedules: []queue.Schedule{sc}})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(ctx); err != nil {
				t.Fatal(err)
			}
			return s
		}
		time.Sleep(30 * time.Second) // mid-period
		first := time.Now()
		insts := []*queue.Scheduler{start(-250*time.Millisecond, queue.MissedSkip), start(0, queue.MissedSkip), start(250*time.Millisecond, queue.MissedSkip)}
		time.Sleep(4*time.Minute + 10*time.Second) // 4:40 after the start
		if err := insts[1].Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		var stats queue.SchedulerStats
		stats.Emitted, stats.Duplicates = insts[1].Stats().Emitted, insts[1].Stats().Duplicates
		time.Sleep(10 * time.Second)
		insts[1] = start(0, queue.MissedRunOnce) // restarted at 4:50: the tick at 4:00 is found, not run again
		time.Sleep(time.Until(first.Add(10*time.Minute + 15*time.Second)))
		for _, s := range insts {
			if err := s.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			stats.Emitted += st.Emitted
			stats.Duplicates += st.Duplicates
			if st.Failed != 0 || st.Overlapped != 0 {
				t.Errorf("instance stats %+v", st)
			}
		}
		synctest.Wait()
		if err := w.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if len(runs) != 10 {
			t.Fatalf("%d ticks ran, want 10: %v", len(runs), runs)
		}
		for id, n := range runs {
			if n != 1 {
				t.Fatalf("tick %s ran %d times", id, n)
			}
		}
		// each of 10 ticks: 3 instances saw it, one enqueued it; the
		// restarted instance also saw the tick before its restart.
		if stats.Emitted != 10 || stats.Duplicates != 21 {
			t.Fatalf("stats: %d emitted, %d duplicates; want 10 and 21", stats.Emitted, stats.Duplicates)
		}
	})
}

// A cron schedule is read in SchedulerOptions.Location: 09:00 in New York
// is 14:00 UTC in January. RunDue drives the scheduler with a manual clock.
func TestSchedulerLocation(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tz database:", err)
	}
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 5, 13, 0, 0, 0, time.UTC))
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{Clock: clk})
	s, err := queue.NewScheduler(queue.SchedulerOptions{Backend: b, Clock: clk, Location: ny,
		Schedules: []queue.Schedule{{Name: "morning", Cron: "0 9 * * MON-FRI", Queue: "q", Kind: "report"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if next := s.Stats().Schedules[0].Next; !next.Equal(time.Date(2026, 1, 5, 14, 0, 0, 0, time.UTC)) {
		t.Fatalf("next tick %s, want 09:00 New York time", next)
	}
	clk.Add(59 * time.Minute)
	s.RunDue(ctx)
	if c, _ := b.Counts(ctx, "q"); c.Pending != 0 {
		t.Fatal("enqueued before 09:00")
	}
	clk.Add(time.Minute)
	if err := s.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _ := b.Counts(ctx, "q"); c.Pending != 1 {
		t.Fatalf("counts %+v at 09:00, want the job", c)
	}
}

// failing fails Enqueue while down is set.
type failing struct {
	queue.Backend
	down atomic.Bool
}

var errDown = errors.New("backend down")

func (f *failing) Enqueue(ctx context.Context, m *queue.Message) error {
	if f.down.Load() {
		return errDown
	}
	return f.Backend.Enqueue(ctx, m)
}

// A tick whose enqueue fails is retried with a growing pause and lands
// once the backend is back, if that is within MaxCatchUp; a later tick
// passes the one that could not land.
func TestSchedulerBackendDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := &failing{Backend: queue.NewMemoryBackend(queue.MemoryBackendOptions{})}
		s, err := queue.NewScheduler(queue.SchedulerOptions{Backend: b, MaxCatchUp: 30 * time.Second,
			Schedules: []queue.Schedule{{Name: "s", Every: time.Minute, Queue: "q", Kind: "k"}}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		time.Sleep(30 * time.Second) // mid-period
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		b.down.Store(true)
		time.Sleep(40 * time.Second) // 1:10: the tick at 1:00 failed for 10s
		b.down.Store(false)
		time.Sleep(10 * time.Second)
		if st := s.Stats(); st.Emitted != 1 || st.Failed == 0 {
			t.Fatalf("stats %+v, want the tick landed after failures", st)
		}
		b.down.Store(true)
		time.Sleep(time.Minute + 50*time.Second) // 3:10: the tick at 2:00 is past MaxCatchUp, the one at 3:00 fails
		b.down.Store(false)
		time.Sleep(10 * time.Second)
		st := s.Stats()
		// Missed: the tick at 0:00, before the start, that nobody enqueued,
		// and the one at 2:00.
		if st.Emitted != 2 || st.Missed != 2 {
			t.Fatalf("stats %+v, want the 2:00 tick missed and the 3:00 one landed", st)
		}
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx); !errors.Is(err, queue.ErrClosed) {
			t.Fatalf("Start after Shutdown: %v", err)
		}
		if err := s.RunDue(ctx); !errors.Is(err, queue.ErrClosed) {
			t.Fatalf("RunDue after Shutdown: %v", err)
		}
	})
}

// TestSchedulerLifecycle: Shutdown and Close before Start, twice, and a
// second Start.
func TestSchedulerLifecycle(t *testing.T) {
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	s, err := queue.NewScheduler(queue.SchedulerOptions{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, _ := queue.NewScheduler(queue.SchedulerOptions{Backend: b})
	if err := s2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(context.Background()); !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("second Start: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSchedulerHammer registers and removes schedules from many
// goroutines while the scheduler ticks every few milliseconds and others
// read Stats and call RunDue: no race, no panic, nothing left running.
func TestSchedulerHammer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		s, err := queue.NewScheduler(queue.SchedulerOptions{Backend: b})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 200 {
					name := fmt.Sprintf("s%d", rand.IntN(6))
					if rand.IntN(2) == 0 {
						sc := queue.Schedule{Name: name, Every: time.Duration(1+rand.IntN(5)) * time.Millisecond, Queue: "q", Kind: "k",
							Overlap: queue.OverlapPolicy(rand.IntN(2)), Missed: queue.MissedPolicy(rand.IntN(2))}
						if g == 0 {
							sc.Every, sc.Cron = 0, "* * * * *"
						}
						if err := s.Register(sc); err != nil && !errors.Is(err, queue.ErrInvalid) {
							t.Error(err)
						}
					} else {
						s.Remove(name)
					}
					switch i % 10 {
					case 0:
						s.Stats()
					case 5:
						if err := s.RunDue(ctx); err != nil {
							t.Error(err)
						}
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
		wg.Wait()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		st := s.Stats()
		if st.Emitted == 0 || st.Failed != 0 {
			t.Fatalf("stats %+v, want ticks enqueued and none failed", st)
		}
	})
}

// The scheduler middleware runs around each tick's enqueue, as a Client's
// does: its metadata reaches the job; a refusal or a changed id is a
// failed enqueue (retried), never a job stored under another id.
func TestSchedulerMiddleware(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		var refuse, rename atomic.Bool
		var seen atomic.Int32
		tenant := func(next queue.EnqueueFunc) queue.EnqueueFunc {
			return func(ctx context.Context, m *queue.Message) error {
				seen.Add(1)
				if refuse.Load() {
					return errors.New("refused")
				}
				if rename.Load() {
					m.ID += "-renamed"
				}
				m.Metadata = map[string]string{"tenant": "acme"}
				return next(ctx, m)
			}
		}
		s, err := queue.NewScheduler(queue.SchedulerOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{tenant},
			Schedules: []queue.Schedule{{Name: "s", Every: time.Minute, Queue: "q", Kind: "k"}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RunDue(ctx); err != nil { // joins the schedule at 0:00
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // 1:00, a tick
		if err := s.RunDue(ctx); err != nil {
			t.Fatal(err)
		}
		id := "periodic:s:" + fmt.Sprint(time.Now().UnixMilli())
		m, err := b.Job(ctx, "q", id)
		if err != nil || m.Metadata["tenant"] != "acme" {
			t.Fatalf("tick job %s: %+v %v, want the middleware's metadata", id, m, err)
		}
		for _, c := range []struct {
			name string
			flag *atomic.Bool
		}{{"refused", &refuse}, {"renamed", &rename}} {
			c.flag.Store(true)
			time.Sleep(time.Minute)
			if err := s.RunDue(ctx); err == nil {
				t.Fatalf("%s tick: RunDue succeeded", c.name)
			}
			id := "periodic:s:" + fmt.Sprint(time.Now().UnixMilli())
			if _, err := b.Job(ctx, "q", id); !errors.Is(err, queue.ErrNotFound) {
				t.Fatalf("%s tick stored: %v", c.name, err)
			}
			if _, err := b.Job(ctx, "q", id+"-renamed"); !errors.Is(err, queue.ErrNotFound) {
				t.Fatalf("%s tick stored under another id: %v", c.name, err)
			}
			c.flag.Store(false)
		}
		if st := s.Stats(); st.Emitted != 1 || st.Failed != 2 || st.Duplicates != 0 {
			t.Fatalf("stats %+v, want 1 emitted and 2 failed", st)
		}
		if _, err := queue.NewScheduler(queue.SchedulerOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{nil}}); !errors.Is(err, queue.ErrInvalid) {
			t.Fatalf("nil middleware: %v", err)
		}
	})
}
