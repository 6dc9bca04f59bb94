package queuetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/queue"
)

// fleet is several Schedulers (instances of one service) over one
// backend, each reading the suite's clock shifted by its own skew.
type fleet struct {
	t     *testing.T
	b     queue.Backend
	clk   *testclock.Clock
	q     string
	insts []*queue.Scheduler
	skews []time.Duration
	gone  queue.SchedulerStats // the counters of the instances stopped
}

func newFleet(t *testing.T, f Factory, skews ...time.Duration) *fleet {
	e := setup(t, f)
	fl := &fleet{t: t, b: e.b, clk: e.clk, q: e.q}
	for _, s := range skews {
		fl.insts = append(fl.insts, nil)
		fl.skews = append(fl.skews, s)
	}
	return fl
}

// start (re)starts instance i with sc: a new Scheduler, as after a
// restart of its process.
func (fl *fleet) start(i int, sc ...queue.Schedule) {
	fl.t.Helper()
	fl.stop(i)
	skew := fl.skews[i]
	s, err := queue.NewScheduler(queue.SchedulerOptions{Backend: fl.b, Schedules: sc,
		Clock: clock.Func(func() time.Time { return fl.clk.Now().Add(skew) })})
	if err != nil {
		fl.t.Fatal(err)
	}
	fl.insts[i] = s
}

// stop stops instance i, keeping its counters.
func (fl *fleet) stop(i int) {
	if s := fl.insts[i]; s != nil {
		st := s.Stats()
		fl.gone.Emitted += st.Emitted
		fl.gone.Duplicates += st.Duplicates
		fl.gone.Overlapped += st.Overlapped
		fl.gone.Missed += st.Missed
		fl.gone.Failed += st.Failed
		if err := s.Close(); err != nil {
			fl.t.Fatal(err)
		}
		fl.insts[i] = nil
	}
}

// pass runs every live instance's RunDue at once.
func (fl *fleet) pass() {
	fl.t.Helper()
	var wg sync.WaitGroup
	for _, s := range fl.insts {
		if s != nil {
			wg.Go(func() {
				if err := s.RunDue(context.Background()); err != nil {
					fl.t.Errorf("RunDue: %v", err)
				}
			})
		}
	}
	wg.Wait()
}

// stats sums the counters of every instance, stopped ones included.
func (fl *fleet) stats() queue.SchedulerStats {
	sum := fl.gone
	for _, s := range fl.insts {
		if s != nil {
			st := s.Stats()
			sum.Emitted += st.Emitted
			sum.Duplicates += st.Duplicates
			sum.Overlapped += st.Overlapped
			sum.Missed += st.Missed
			sum.Failed += st.Failed
		}
	}
	return sum
}

// runJobs leases every due job, completes it unless keep says not to, and
// returns the ids leased.
func (fl *fleet) runJobs(keep func(*queue.Lease) bool) []string {
	fl.t.Helper()
	var ids []string
	for {
		ls, err := fl.b.Fetch(context.Background(), queue.FetchRequest{Queue: fl.q, Max: 10, Lease: time.Hour, Order: order})
		if err != nil {
			fl.t.Fatalf("Fetch: %v", err)
		}
		if len(ls) == 0 {
			return ids
		}
		for _, l := range ls {
			ids = append(ids, l.Msg.ID)
			if keep != nil && keep(l) {
				continue
			}
			if err := fl.b.Complete(context.Background(), l, nil); err != nil {
				fl.t.Fatalf("Complete: %v", err)
			}
		}
	}
}

// advance moves the clock to at in steps of 100ms, running every
// instance's pass at each step and the due jobs every second.
func (fl *fleet) advance(at time.Time, keep func(*queue.Lease) bool) []string {
	fl.t.Helper()
	var ids []string
	for i := 0; fl.clk.Now().Before(at); i++ {
		fl.clk.Add(100 * time.Millisecond)
		fl.pass()
		if i%10 == 9 {
			ids = append(ids, fl.runJobs(keep)...)
		}
	}
	return append(ids, fl.runJobs(keep)...)
}

// tickIDs are the job ids of sc's ticks at the minutes from..to of day.
func tickIDs(name string, day time.Time, from, to int) []string {
	var ids []string
	for m := from; m <= to; m++ {
		ids = append(ids, fmt.Sprintf("periodic:%s:%d", name, day.Add(time.Duration(m)*time.Minute).UnixMilli()))
	}
	return ids
}

// runPeriodic is the periodic-job part of Run: Schedulers enqueue each
// tick once on the backend, whatever their number, clock skew, restarts
// and policies.
func runPeriodic(t *testing.T, f Factory) {
	minute := func(q string, o queue.Schedule) queue.Schedule {
		o.Every, o.Queue, o.Kind, o.Args = time.Minute, q, "tick", map[string]int{"v": 1}
		return o
	}
	t.Run("PeriodicExactlyOnce", func(t *testing.T) {
		// 3 instances whose clocks disagree by up to 600ms, one restarted
		// mid-period with MissedRunOnce and one with MissedSkip: 10
		// ticks, 10 jobs, each tick's job once.
		fl := newFleet(t, f, -300*time.Millisecond, 0, 300*time.Millisecond)
		day := fl.clk.Now()
		sc := minute(fl.q, queue.Schedule{Name: "every-minute"})
		fl.clk.Add(30 * time.Second) // mid-period: the tick at 00:00 is before every start
		for i := range 3 {
			fl.start(i, sc)
		}
		ids := fl.advance(day.Add(5*time.Minute+30*time.Second), nil)
		once := sc
		once.Missed = queue.MissedRunOnce
		fl.start(0, once) // restarted: the tick at 00:05 was enqueued, not again
		ids = append(ids, fl.advance(day.Add(7*time.Minute+45*time.Second), nil)...)
		fl.start(1, sc)
		ids = append(ids, fl.advance(day.Add(10*time.Minute+30*time.Second), nil)...)
		if want := tickIDs("every-minute", day, 1, 10); fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Fatalf("jobs run %v,\nwant each tick once: %v", ids, want)
		}
		st := fl.stats()
		// Missed: the tick at 00:00, which no instance enqueued, counted by
		// each of the three at its first start.
		if st.Emitted < 10 || st.Missed != 3 || st.Failed != 0 || st.Overlapped != 0 {
			t.Fatalf("fleet stats %+v, want >= 10 emitted (10 unless two instances raced), 3 missed, nothing failed", st)
		}
		m, err := fl.b.Job(context.Background(), fl.q, ids[0])
		if err != nil || !m.RunAt.Equal(day.Add(time.Minute)) || m.Kind != "tick" || string(m.Payload) != `{"v":1}` {
			t.Fatalf("the first tick's job %+v %v, want due at its tick with the schedule's kind and args", m, err)
		}
	})
	t.Run("PeriodicMissedTicks", func(t *testing.T) {
		// Every instance is down over the ticks at 00:03, 00:04, 00:05.
		fl := newFleet(t, f, 0, 200*time.Millisecond, -200*time.Millisecond)
		day := fl.clk.Now()
		skip := minute(fl.q, queue.Schedule{Name: "skip"})
		once := minute(fl.q, queue.Schedule{Name: "once", Missed: queue.MissedRunOnce})
		fl.clk.Add(30 * time.Second)
		fl.start(0, skip, once)
		ids := fl.advance(day.Add(2*time.Minute+30*time.Second), nil)
		fl.stop(0)
		fl.clk.Add(3 * time.Minute) // 00:05:30
		fl.start(1, skip, once)
		fl.start(2, skip, once)
		ids = append(ids, fl.advance(day.Add(6*time.Minute+30*time.Second), nil)...)
		want := tickIDs("once", day, 0, 0) // MissedRunOnce at the first start: the tick at 00:00 nobody enqueued
		for _, m := range []int{1, 2} {
			want = append(want, tickIDs("once", day, m, m)[0], tickIDs("skip", day, m, m)[0])
		}
		want = append(want, tickIDs("once", day, 5, 5)[0]) // run once, by one instance
		want = append(want, tickIDs("once", day, 6, 6)[0], tickIDs("skip", day, 6, 6)[0])
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Fatalf("jobs run %v,\nwant %v", ids, want)
		}
		if st := fl.stats(); st.Missed < 1 || st.Failed != 0 {
			t.Fatalf("stats %+v, want the skipped tick counted missed", st)
		}
	})
	t.Run("PeriodicOverlapSkip", func(t *testing.T) {
		fl := newFleet(t, f, 0, 300*time.Millisecond)
		day := fl.clk.Now()
		sc := minute(fl.q, queue.Schedule{Name: "long", Overlap: queue.OverlapSkip})
		fl.clk.Add(30 * time.Second)
		fl.start(0, sc)
		fl.start(1, sc)
		var running *queue.Lease
		keep := func(l *queue.Lease) bool { // the first run lasts until 00:03:30
			if running == nil {
				running = l
				return true
			}
			return false
		}
		ids := fl.advance(day.Add(3*time.Minute+30*time.Second), keep)
		if err := fl.b.Complete(context.Background(), running, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, fl.advance(day.Add(5*time.Minute+30*time.Second), keep)...)
		want := append(tickIDs("long", day, 1, 1), tickIDs("long", day, 4, 5)...)
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Fatalf("jobs run %v,\nwant the ticks at 00:02 and 00:03 skipped while the first ran: %v", ids, want)
		}
		if st := fl.stats(); st.Overlapped < 2 || st.Failed != 0 {
			t.Fatalf("stats %+v, want the two ticks counted as overlapped", st)
		}
	})
}
