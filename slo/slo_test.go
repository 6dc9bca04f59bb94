package slo

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

func newSLO(t testing.TB, o Options) *SLO {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// record n events at the current time, bad of them bad.
func record(s *SLO, n, bad int) {
	for i := 0; i < n; i++ {
		s.Record(i >= bad)
	}
}

func TestBudgetMath(t *testing.T) {
	clk := testclock.New()
	s := newSLO(t, Options{Name: "api", Target: 0.999, Clock: clk})
	if b := s.Budget(); b.Total != 0 || b.RemainingFraction != 1 {
		t.Fatalf("empty budget %+v", b)
	}
	record(s, 1_000_000, 500)
	b := s.Budget()
	if b.Total != 1_000_000 || b.Consumed != 500 || !near(b.Allowed, 1000) || !near(b.Remaining, 500) || !near(b.RemainingFraction, 0.5) {
		t.Fatalf("budget %+v, want allowed 1000, consumed 500, remaining half", b)
	}
	record(s, 0, 0)
	record(s, 1000, 1000) // 1500 bad of 1,001,000: blown
	if b := s.Budget(); b.RemainingFraction >= 0 {
		t.Fatalf("blown budget %+v, want negative remaining", b)
	}
}

// TestWorkbookBurnRates checks the SRE Workbook's table for a 99.9%/30d
// objective: a 14.4x burn for 1 hour spends 2% of the budget; 6x for 6 hours
// spends 5%; 1x for 3 days spends 10%.
func TestWorkbookBurnRates(t *testing.T) {
	for _, c := range []struct {
		burn        float64
		d           time.Duration
		wantSpentPc float64
	}{
		{14.4, time.Hour, 2}, {6, 6 * time.Hour, 5}, {1, 72 * time.Hour, 10},
	} {
		clk := testclock.New()
		s := newSLO(t, Options{Name: "api", Target: 0.999, Clock: clk})
		// 30 days of 1000 good events an hour, then d at the burn rate.
		for h := 0; h < 720-int(c.d/time.Hour); h++ {
			record(s, 1000, 0)
			clk.Add(time.Hour)
		}
		frac := c.burn * 0.001 * 1000 // bad events per hour, e.g. 14.4
		bad := 0
		for h := 0; h < int(c.d/time.Hour); h++ {
			// spread the fractional errors so the total is exact: 14.4/h -> 72 per 5h
			n := int(math.Round(frac*float64(h+1))) - int(math.Round(frac*float64(h)))
			record(s, 1000, n)
			bad += n
			if h < int(c.d/time.Hour)-1 {
				clk.Add(time.Hour)
			}
		}
		clk.Add(time.Hour - time.Nanosecond) // end of the last hour
		burn := s.BurnRate(c.d)
		if math.Abs(burn-c.burn) > 0.05*c.burn {
			t.Errorf("burn over %v = %.3f, want %.1f", c.d, burn, c.burn)
		}
		spent := 100 * float64(bad) / s.Budget().Allowed
		if math.Abs(spent-c.wantSpentPc) > 0.05*c.wantSpentPc {
			t.Errorf("%.1fx for %v spent %.2f%% of the budget, want %.0f%%", c.burn, c.d, spent, c.wantSpentPc)
		}
	}
}

func TestBurnRateExact(t *testing.T) {
	clk := testclock.New()
	s := newSLO(t, Options{Name: "api", Target: 0.99, Clock: clk})
	record(s, 1000, 30) // 3% errors against 1% allowed: 3x
	if b := s.BurnRate(5 * time.Minute); !near(b, 3) {
		t.Fatalf("burn = %v, want 3", b)
	}
	clk.Add(10 * time.Minute)
	record(s, 1000, 0)
	if b := s.BurnRate(5 * time.Minute); b != 0 {
		t.Fatalf("burn over the last 5m = %v, want 0 (old errors out of the window)", b)
	}
	if b := s.BurnRate(time.Hour); !near(b, 1.5) {
		t.Fatalf("burn over 1h = %v, want 1.5 (30 bad of 2000)", b)
	}
}

func TestWindowRollover(t *testing.T) {
	clk := testclock.New()
	s := newSLO(t, Options{Name: "api", Target: 0.999, Window: 24 * time.Hour, Clock: clk})
	record(s, 100, 10)
	clk.Add(12 * time.Hour)
	record(s, 100, 0)
	if b := s.Budget(); b.Total != 200 || b.Consumed != 10 {
		t.Fatalf("within the window: %+v", b)
	}
	clk.Add(13 * time.Hour) // the first events are now 25h old
	if b := s.Budget(); b.Total != 100 || b.Consumed != 0 {
		t.Fatalf("after rollover: %+v, want only the later 100 good events", b)
	}
	clk.Add(48 * time.Hour)
	if b := s.Budget(); b.Total != 0 {
		t.Fatalf("long after: %+v", b)
	}
	// Events older than the ring holds are dropped, not miscounted.
	s.RecordAt(clk.Now().Add(-30*24*time.Hour), false)
	if b := s.Budget(); b.Total != 0 {
		t.Fatalf("an ancient event was counted: %+v", b)
	}
}

func TestAlertsFireAndResolve(t *testing.T) {
	clk := testclock.New()
	events := make(chan AlertEvent, 10)
	s := newSLO(t, Options{Name: "api", Target: 0.999, Clock: clk, OnAlert: func(e AlertEvent) { events <- e }})
	// Three days of healthy traffic, so only the fast window reacts.
	for m := 0; m < 3*24*60; m++ {
		record(s, 100, 0)
		clk.Add(time.Minute)
	}
	if firing(s.Evaluate()) != "" {
		t.Fatal("alert firing on healthy traffic")
	}
	// A 50% error rate (500x): the fast-burn page fires within minutes.
	for m := 0; m < 3; m++ {
		record(s, 100, 50)
		clk.Add(time.Minute)
	}
	if got := firing(s.Evaluate()); got != "fast-burn" {
		t.Fatalf("firing %q after 3 minutes at 500x, want fast-burn", got)
	}
	ev := <-events
	if !ev.Firing || ev.Rule.Severity != Page || ev.Objective != "api" {
		t.Fatalf("event %+v", ev)
	}
	// Recovery: the short (5m) window clears quickly although the 1h
	// window still shows the burn, so the page resolves.
	for m := 0; m < 6; m++ {
		record(s, 100, 0)
		clk.Add(time.Minute)
	}
	states := s.Evaluate()
	if got := firing(states); got != "" {
		t.Fatalf("still firing %q after recovery", got)
	}
	if states[0].LongBurn < 14.4 {
		t.Fatalf("long window burn %v; the test wants it still high", states[0].LongBurn)
	}
	if ev := <-events; ev.Firing {
		t.Fatalf("resolution event %+v", ev)
	}
}

func firing(states []AlertState) string {
	var names []string
	for _, s := range states {
		if s.Firing {
			names = append(names, s.Rule.Name)
		}
	}
	return strings.Join(names, ",")
}

func TestRecordAllocatesNothing(t *testing.T) {
	s := newSLO(t, Options{Name: "api", Target: 0.999})
	if a := testing.AllocsPerRun(1000, func() { s.Record(true) }); a != 0 {
		t.Fatalf("Record: %v allocs", a)
	}
}

func TestMemoryIndependentOfEvents(t *testing.T) {
	clk := testclock.New()
	s := newSLO(t, Options{Name: "api", Target: 0.999, Clock: clk})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 10_000_000; i++ {
		s.Record(i%1000 != 0)
		if i%10_000 == 0 {
			clk.Add(time.Minute) // spread over the whole window and beyond
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if grew > 64<<10 {
		t.Fatalf("heap grew %d bytes over 10M events", grew)
	}
	t.Logf("10M events: heap grew %d bytes; budget %+v", grew, s.Budget())
}

func TestHammer(t *testing.T) {
	s := newSLO(t, Options{Name: "api", Target: 0.99})
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				s.Record(i%10 != 0)
				if i%100 == 0 {
					s.Evaluate()
				}
			}
		}()
	}
	wg.Wait()
	if b := s.Budget(); b.Total != 64000 || b.Consumed != 6400 {
		t.Fatalf("budget %+v, want 64000 events, 6400 bad", b)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Target: 0.9}, "Options.Name is required"},
		{Options{Name: "x", Target: 1}, "Options.Target must be in (0, 1)"},
		{Options{Name: "x", Target: 0.9, Window: time.Minute}, "Options.Window must be >= 1h"},
		{Options{Name: "x", Target: 0.9, Alerts: []AlertRule{{BurnRate: 2, LongWindow: time.Minute, ShortWindow: time.Hour}}}, "Options.Alerts[0]"},
	} {
		if _, err := New(c.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.o, err, c.want)
		}
	}
}
