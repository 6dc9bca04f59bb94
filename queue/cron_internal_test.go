package queue

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCronNext(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		expr, from string
		want       []string
	}{
		{"* * * * *", "2026-01-01 00:00", []string{"2026-01-01 00:01", "2026-01-01 00:02"}},
		{"*/15 * * * *", "2026-01-01 00:07", []string{"2026-01-01 00:15", "2026-01-01 00:30", "2026-01-01 00:45", "2026-01-01 01:00"}},
		{"5,10 9-10 * * *", "2026-01-01 10:10", []string{"2026-01-02 09:05", "2026-01-02 09:10", "2026-01-02 10:05"}},
		{"0 0 1 * *", "2026-01-15 12:00", []string{"2026-02-01 00:00", "2026-03-01 00:00"}},
		{"@daily", "2026-01-01 00:00", []string{"2026-01-02 00:00", "2026-01-03 00:00"}},
		{"@hourly", "2026-01-01 00:59", []string{"2026-01-01 01:00"}},
		{"@weekly", "2026-01-01 00:00", []string{"2026-01-04 00:00"}}, // 2026-01-04 is a Sunday
		{"0 12 * * MON-FRI", "2026-01-02 13:00", []string{"2026-01-05 12:00", "2026-01-06 12:00"}},
		{"0 0 * * 7", "2026-01-01 00:00", []string{"2026-01-04 00:00"}},                        // 7 is Sunday
		{"0 0 13 * FRI", "2026-02-01 00:00", []string{"2026-02-06 00:00", "2026-02-13 00:00"}}, // either day field
		{"0 0 29 FEB *", "2026-01-01 00:00", []string{"2028-02-29 00:00"}},
		{"30 1/6 * * *", "2026-01-01 00:00", []string{"2026-01-01 01:30", "2026-01-01 07:30"}},
		{"0 0 1 JAN,jul *", "2026-02-01 00:00", []string{"2026-07-01 00:00", "2027-01-01 00:00"}},
		{"59 23 31 12 *", "2026-12-31 23:59", []string{"2027-12-31 23:59"}},
	} {
		spec, err := parseCron(c.expr)
		if err != nil {
			t.Fatalf("parseCron(%q): %v", c.expr, err)
		}
		at := utc(c.from)
		for _, w := range c.want {
			at = spec.next(at, time.UTC)
			if !at.Equal(utc(w)) {
				t.Fatalf("%q from %s: got %s, want %s", c.expr, c.from, at, w)
			}
		}
	}
}

// TestCronNextDST: in New York, 2026-03-08 02:00 jumps to 03:00 and
// 2026-11-01 02:00 falls back to 01:00. A skipped wall time runs at the
// shifted instant, a repeated one once, and ticks only move forward.
func TestCronNextDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tz database:", err)
	}
	at := func(d string, h, m int) time.Time {
		day, _ := time.ParseInLocation("2006-01-02", d, ny)
		return time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, ny)
	}
	daily, _ := parseCron("30 2 * * *")
	got := daily.next(at("2026-03-07", 3, 0), ny)
	if want := at("2026-03-08", 3, 30); !got.Equal(want) {
		t.Fatalf("02:30 on the spring-forward day: %s, want %s", got, want)
	}
	if n := daily.next(got, ny); !n.Equal(at("2026-03-09", 2, 30)) {
		t.Fatalf("after it: %s", n)
	}
	half, _ := parseCron("30 * * * *")
	var ticks []time.Time
	for t0 := at("2026-11-01", 0, 0); len(ticks) < 4; {
		t0 = half.next(t0, ny)
		ticks = append(ticks, t0)
	}
	// 00:30 EDT, 01:30 EDT (the first of two), 02:30 EST, 03:30 EST
	for i := 1; i < len(ticks); i++ {
		if !ticks[i].After(ticks[i-1]) {
			t.Fatalf("ticks go backwards: %v", ticks)
		}
	}
	if d := ticks[2].Sub(ticks[1]); d != 2*time.Hour {
		t.Fatalf("01:30 ran twice or not at all around the fall-back: %v", ticks)
	}
	// from inside the repeated hour (01:40 EST), the next is 02:00 EST
	every, _ := parseCron("*/20 * * * *")
	second := at("2026-11-01", 1, 40).Add(time.Hour) // 01:40 EST
	if n := every.next(second, ny); !n.Equal(at("2026-11-01", 2, 0)) || !n.After(second) {
		t.Fatalf("from 01:40 EST: %s, want 02:00 EST", n)
	}
}

func TestCronErrors(t *testing.T) {
	for _, c := range []struct{ expr, says string }{
		{"", "0 fields"},
		{"* * * *", "4 fields"},
		{"* * * * * *", "6 fields"},
		{"60 * * * *", "minute field"},
		{"* 24 * * *", "allowed: 0-23"},
		{"* * 0 * *", "day of month field"},
		{"* * * 13 *", "JAN-DEC"},
		{"* * * * 8", "SUN-SAT"},
		{"* * * FOO *", "month field"},
		{"*/0 * * * *", "step"},
		{"*/x * * * *", "step"},
		{"5-1 * * * *", "backwards"},
		{"1,,2 * * * *", "empty value"},
		{"0 0 30 2 *", "never matches"},
		{"@every 5m", "fields"},
		{"- * * * *", "not allowed"},
	} {
		_, err := parseCron(c.expr)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("parseCron(%q) = %v, want an error saying %q", c.expr, err, c.says)
		}
	}
}

// FuzzCron: no input panics, and a parsed expression's ticks move forward.
func FuzzCron(f *testing.F) {
	for _, s := range []string{"* * * * *", "*/7 1-5 1,15 JAN-MAR MON", "@daily", "0 0 29 2 *", "1-59/2 * * * 0-7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		c, err := parseCron(expr)
		if err != nil {
			return
		}
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for range 3 {
			n := c.next(from, time.UTC)
			if !n.After(from) {
				t.Fatalf("%q: next(%s) = %s", expr, from, n)
			}
			from = n
		}
	})
}

func TestScheduleErrors(t *testing.T) {
	b := NewMemoryBackend(MemoryBackendOptions{})
	ok := Schedule{Name: "s", Every: time.Minute, Queue: "q", Kind: "k"}
	for _, c := range []struct {
		edit func(*Schedule)
		says string
	}{
		{func(s *Schedule) { s.Name = "" }, "Name must be 1 to 64"},
		{func(s *Schedule) { s.Name = strings.Repeat("x", 65) }, "Name must be 1 to 64"},
		{func(s *Schedule) { s.Name = "a b" }, "Name must be"},
		{func(s *Schedule) { s.Every = 0 }, "set Cron (a cron expression) or Every"},
		{func(s *Schedule) { s.Cron = "* * * * *" }, "not both"},
		{func(s *Schedule) { s.Every = -time.Second }, "Every must be >= 1ms"},
		{func(s *Schedule) { s.Every = time.Microsecond }, "Every must be >= 1ms"},
		{func(s *Schedule) { s.Every, s.Cron = 0, "61 * * * *" }, "Cron: cron expression \"61 * * * *\": minute field"},
		{func(s *Schedule) { s.Queue = "" }, "queue"},
		{func(s *Schedule) { s.Kind = "a b" }, "kind"},
		{func(s *Schedule) { s.Args = func() {} }, "Args cannot be encoded"},
		{func(s *Schedule) { s.Priority = 7 }, "Priority"},
		{func(s *Schedule) { s.MaxAttempts = -1 }, "MaxAttempts"},
		{func(s *Schedule) { s.Timeout = -1 }, "Timeout"},
		{func(s *Schedule) { s.Missed = 5 }, "Missed must be MissedSkip or MissedRunOnce"},
		{func(s *Schedule) { s.Overlap = -1 }, "Overlap must be OverlapAllow or OverlapSkip"},
	} {
		sc := ok
		c.edit(&sc)
		_, err := NewScheduler(SchedulerOptions{Backend: b, Schedules: []Schedule{sc}})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "Schedules[0]") {
			t.Errorf("schedule %+v: %v, want ErrInvalid saying %q", sc, err, c.says)
		}
	}
	if _, err := NewScheduler(SchedulerOptions{}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Backend") {
		t.Errorf("no Backend: %v", err)
	}
	if _, err := NewScheduler(SchedulerOptions{Backend: b, MaxCatchUp: -1}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "MaxCatchUp") {
		t.Errorf("MaxCatchUp -1: %v", err)
	}
	s, err := NewScheduler(SchedulerOptions{Backend: b, Schedules: []Schedule{ok}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register(ok); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("a name registered twice: %v", err)
	}
	if !s.Remove("s") || s.Remove("s") {
		t.Error("Remove did not report whether the schedule was registered")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Register(ok); !errors.Is(err, ErrClosed) {
		t.Errorf("Register after Close: %v, want ErrClosed", err)
	}
}
