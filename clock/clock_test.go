package clock_test

import (
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/clock"
)

func TestNowNilIsSystemClock(t *testing.T) {
	before := time.Now()
	got := clock.Now(nil)
	if got.Before(before) || got.After(time.Now()) {
		t.Fatalf("clock.Now(nil) = %v, not between %v and now", got, before)
	}
}

func TestFunc(t *testing.T) {
	at := time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC)
	if got := clock.Now(clock.Func(func() time.Time { return at })); !got.Equal(at) {
		t.Fatalf("got %v, want %v", got, at)
	}
}

func TestManual(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := clock.NewManual(start)
	if !m.Now().Equal(start) {
		t.Fatalf("Now = %v, want %v", m.Now(), start)
	}
	if got := m.Add(time.Hour); !got.Equal(start.Add(time.Hour)) || !m.Now().Equal(got) {
		t.Fatalf("Add returned %v, Now %v; want %v", got, m.Now(), start.Add(time.Hour))
	}
	m.Add(-2 * time.Hour)
	if !m.Now().Equal(start.Add(-time.Hour)) {
		t.Fatalf("backwards: Now = %v", m.Now())
	}
	m.Set(start)
	if !m.Now().Equal(start) {
		t.Fatalf("Set: Now = %v", m.Now())
	}
	var zero clock.Manual
	if zero.Now().UnixNano() != 0 {
		t.Fatalf("zero Manual = %v, want the epoch", zero.Now())
	}
}

func TestManualHammer(t *testing.T) {
	m := clock.NewManual(time.Unix(0, 0))
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				m.Add(time.Nanosecond)
				_ = m.Now()
			}
		}()
	}
	wg.Wait()
	if got := m.Now().UnixNano(); got != 32000 {
		t.Fatalf("after 32,000 concurrent Adds of 1ns: %d", got)
	}
}
