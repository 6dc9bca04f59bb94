package breaker

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

// Transitions lists the last TransitionsKept changes, newest first, each
// with its time, the automatic ones (trip, probe, close) and the manual
// ones alike.
func TestTransitions(t *testing.T) {
	clk := testclock.New()
	start := clk.Now()
	b := newB(t, Options{Name: "db", Clock: clk, ConsecutiveFailures: 1, OpenTimeout: time.Second})
	if tr := b.Transitions(); len(tr) != 0 {
		t.Fatalf("a new breaker has transitions %v", tr)
	}
	run(b, 1, fail) // closed -> open
	clk.Add(2 * time.Second)
	run(b, 1, ok) // open -> half-open -> closed
	clk.Add(time.Second)
	b.ForceOpen()
	b.ForceOpen() // no change
	b.Reset()
	want := []Transition{
		{ForcedOpen, Closed, start.Add(3 * time.Second)},
		{Closed, ForcedOpen, start.Add(3 * time.Second)},
		{HalfOpen, Closed, start.Add(2 * time.Second)},
		{Open, HalfOpen, start.Add(2 * time.Second)},
		{Closed, Open, start},
	}
	if got := b.Transitions(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Transitions() =\n%v\nwant\n%v", got, want)
	}
	for i := range 10 {
		clk.Add(time.Second)
		if i%2 == 0 {
			b.MetricsOnly()
		} else {
			b.ForceClosed()
		}
	}
	got := b.Transitions()
	if len(got) != TransitionsKept || b.Stats().Transitions != 15 {
		t.Fatalf("%d transitions kept of %d, want %d", len(got), b.Stats().Transitions, TransitionsKept)
	}
	if got[0].From != MetricsOnly || got[0].To != ForcedClosed || !got[0].At.Equal(clk.Now()) ||
		!got[7].At.Equal(clk.Now().Add(-7*time.Second)) {
		t.Fatalf("newest first, ring wrapped: %v", got)
	}
}

// Transitions read while many goroutines make transitions always form a
// chain (each change starts in the state the one before it ended in),
// newest first; run with -race.
func TestTransitionsHammer(t *testing.T) {
	b := newB(t, Options{Name: "db", ConsecutiveFailures: 1, OpenTimeout: time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			for j := range 500 {
				switch (i + j) % 5 {
				case 0:
					b.ForceOpen()
				case 1:
					b.Reset()
				case 2:
					run(b, 1, fail)
				case 3:
					run(b, 1, ok)
				default:
					b.MetricsOnly()
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 500 {
				tr := b.Transitions()
				for k := 0; k+1 < len(tr); k++ {
					if tr[k].From != tr[k+1].To || tr[k].At.Before(tr[k+1].At) {
						errs <- fmt.Errorf("not a chain, newest first: %v", tr)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if tr := b.Transitions(); len(tr) != TransitionsKept || tr[0].To != b.State() {
		t.Errorf("the newest transition %v does not end in the state %v", tr, b.State())
	}
}
