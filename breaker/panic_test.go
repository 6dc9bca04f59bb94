package breaker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

// mustPanic runs f and returns what it panicked with; it fails the test if
// f returned normally.
func mustPanic(t *testing.T, f func()) (v any) {
	t.Helper()
	defer func() { v = recover() }()
	f()
	t.Fatal("the panic did not reach the caller")
	return nil
}

// gobreaker's documented behaviour (v2, CircuitBreaker.Execute): "If a
// panic occurs in the request, CircuitBreaker handles it as an error and
// causes the same panic again." Before the fix a panicking probe kept its
// half-open slot for ever: every later call got ErrTooManyProbes, an hour of
// simulated time later still.
func TestPanicInProbeFreesSlotAndCountsAsFailure(t *testing.T) {
	for _, how := range []string{"Do", "DoValue"} {
		t.Run(how, func(t *testing.T) {
			clk := testclock.New()
			b := newB(t, Options{ConsecutiveFailures: 1, OpenTimeout: time.Second, Clock: clk})
			run(b, 1, fail)
			clk.Add(time.Second)
			boom := func(ctx context.Context) error { panic("probe blew up") }
			got := mustPanic(t, func() {
				if how == "Do" {
					b.Do(context.Background(), boom)
				} else {
					DoValue(context.Background(), b, func(ctx context.Context) (int, error) { return 0, boom(ctx) })
				}
			})
			if got != "probe blew up" {
				t.Fatalf("panic value %v, want the original", got)
			}
			// The panicking probe failed: the breaker reopened.
			if st := b.Stats(); st.State != Open || st.Failures != 2 {
				t.Fatalf("after a panicking probe: %+v, want open with 2 failures", st)
			}
			clk.Add(time.Hour)
			if err := b.Do(context.Background(), ok); err != nil {
				t.Fatalf("next probe an hour later: %v (the panicking probe still holds its slot)", err)
			}
			if b.State() != Closed {
				t.Fatalf("state %v after a successful probe", b.State())
			}
		})
	}
}

// In closed state a panic counts as a failure like an error does
// (gobreaker: "handles it as an error").
func TestPanicInClosedCountsAsFailure(t *testing.T) {
	b := newB(t, Options{ConsecutiveFailures: 3})
	for i := 0; i < 3; i++ {
		mustPanic(t, func() { b.Do(context.Background(), func(context.Context) error { panic(i) }) })
	}
	if st := b.Stats(); st.State != Open || st.Failures != 3 {
		t.Fatalf("after 3 panics: %+v, want open with 3 failures", st)
	}
	// A panic counts as a failure whatever IsFailure says about errors.
	b2 := newB(t, Options{ConsecutiveFailures: 1, IsFailure: func(error) bool { return false }})
	mustPanic(t, func() {
		DoValue(context.Background(), b2, func(context.Context) (int, error) { panic(errors.New("x")) })
	})
	if b2.State() != Open {
		t.Fatalf("a panic with IsFailure always false left the breaker %v", b2.State())
	}
}
