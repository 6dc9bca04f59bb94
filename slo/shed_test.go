package slo

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/priority"
)

func runs(t *testing.T, s *Shedder, c priority.Class) bool {
	t.Helper()
	ran := false
	err := s.Do(priority.With(context.Background(), c), func(context.Context) error { ran = true; return nil })
	if ran != (err == nil) || err != nil && !errors.Is(err, ErrShed) {
		t.Fatalf("%v: ran %v, err %v", c, ran, err)
	}
	return ran
}

// TestShedder: a fast burn sheds sheddable calls; a spent budget default
// ones too; critical calls always run; it all stops when the burn does.
func TestShedder(t *testing.T) {
	clk := testclock.New()
	o, err := New(Options{Name: "api", Target: 0.99, Window: 30 * 24 * time.Hour, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewShedder(ShedderOptions{Objectives: []*SLO{o}, Every: time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for range 100_000 { // a healthy past: a budget of 1,000 bad events
		o.Record(true)
	}
	clk.Add(10 * 24 * time.Hour)
	want := func(level ShedLevel, sheddable, def bool) {
		t.Helper()
		clk.Add(time.Second) // past Every: the next call evaluates
		if got := s.Level(); got != level {
			t.Fatalf("level %v, want %v", got, level)
		}
		if runs(t, s, priority.Sheddable) != sheddable || runs(t, s, priority.Default) != def || !runs(t, s, priority.Critical) {
			t.Fatalf("at level %v: sheddable runs %v (want %v), default %v (want %v), critical must run", level, !sheddable, sheddable, !def, def)
		}
	}
	want(ShedNone, true, true)
	for range 100 { // the last minute all bad: burn rate 100 over 5m and 1h
		o.Record(false)
	}
	want(ShedSheddable, false, true)
	for range 1000 { // the budget spent
		o.Record(false)
	}
	want(ShedDefault, false, false)
	clk.Add(6 * time.Hour) // the fast-burn windows hold no events: alerts stop
	want(ShedNone, true, true)
	if st := s.Stats(); st.Shed != (priority.Counts{Sheddable: 2, Default: 1}) || st.Level != ShedNone {
		t.Fatalf("Stats %+v", st)
	}
}

// TestShedderEvaluatesEvery: between evaluations, the level stays.
func TestShedderEvaluatesEvery(t *testing.T) {
	clk := testclock.New()
	o, _ := New(Options{Name: "api", Target: 0.99, Clock: clk})
	s, _ := NewShedder(ShedderOptions{Objectives: []*SLO{o}, Every: time.Minute, Clock: clk})
	if s.Level() != ShedNone {
		t.Fatal("not none at first")
	}
	for range 100 {
		o.Record(false)
	}
	if s.Level() != ShedNone {
		t.Fatal("re-evaluated before Every passed")
	}
	clk.Add(time.Minute)
	if s.Level() != ShedDefault {
		t.Fatalf("after Every: %v", s.Level())
	}
}

func TestShedderOptions(t *testing.T) {
	o, _ := New(Options{Name: "api", Target: 0.99})
	for _, tc := range []struct {
		o    ShedderOptions
		want string
	}{
		{ShedderOptions{}, "ShedderOptions.Objectives needs at least one"},
		{ShedderOptions{Objectives: []*SLO{nil}}, "ShedderOptions.Objectives[0] is nil"},
		{ShedderOptions{Objectives: []*SLO{o}, Every: -1}, "ShedderOptions.Every must be > 0"},
	} {
		if _, err := NewShedder(tc.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewShedder(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
	if ShedDefault.String() != "default" || ShedLevel(9).String() != "ShedLevel(9)" {
		t.Error("ShedLevel.String")
	}
}

// TestShedderHammer: 64 goroutines calling and recording while the clock
// moves; the counts add up.
func TestShedderHammer(t *testing.T) {
	clk := testclock.New()
	o, _ := New(Options{Name: "api", Target: 0.99, Clock: clk})
	s, _ := NewShedder(ShedderOptions{Objectives: []*SLO{o}, Every: time.Millisecond, Clock: clk})
	var ran, shed atomic.Uint64
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 200 {
				o.Record(g%3 != 0)
				clk.Add(time.Millisecond)
				err := s.Do(priority.With(context.Background(), priority.Classes[(g+i)%3]), func(context.Context) error { ran.Add(1); return nil })
				if err != nil {
					shed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if ran.Load()+shed.Load() != 64*200 || st.Shed.Sheddable+st.Shed.Default+st.Shed.Critical != shed.Load() || st.Shed.Critical != 0 || shed.Load() == 0 {
		t.Fatalf("ran %d shed %d; Stats %+v", ran.Load(), shed.Load(), st)
	}
}
