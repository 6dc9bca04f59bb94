package timeout_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/timeout"
)

type key struct{}

// TestLazyCtx: the ctx a call gets behaves as context.WithTimeoutCause's,
// whichever of Done, Err, Value or a derived ctx it uses first.
func TestLazyCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := mustNew(t, timeout.Options{Timeout: time.Second, Kind: timeout.Attempt})
		parent := context.WithValue(context.Background(), key{}, "v")

		// Err, Value and Deadline without Done, before and after the deadline.
		var kept context.Context
		err := tm.Do(parent, func(ctx context.Context) error {
			kept = ctx
			if ctx.Err() != nil || context.Cause(ctx) != nil || ctx.Value(key{}) != "v" {
				t.Errorf("live ctx: Err %v, Cause %v, Value %v", ctx.Err(), context.Cause(ctx), ctx.Value(key{}))
			}
			if dl, ok := ctx.Deadline(); !ok || !dl.Equal(time.Now().Add(time.Second)) {
				t.Errorf("Deadline = %v, %v", dl, ok)
			}
			time.Sleep(time.Second)
			if ctx.Err() != context.DeadlineExceeded || context.Cause(ctx) != timeout.ErrAttempt || ctx.Value(key{}) != "v" {
				t.Errorf("at the deadline: Err %v, Cause %v, Value %v", ctx.Err(), context.Cause(ctx), ctx.Value(key{}))
			}
			select {
			case <-ctx.Done():
			default:
				t.Error("Done not closed after the deadline")
			}
			return ctx.Err()
		})
		if !errors.Is(err, timeout.ErrAttempt) {
			t.Fatalf("err %v", err)
		}
		if kept.Err() == nil {
			t.Error("a ctx kept past Do is still live")
		}

		// A ctx derived in the call ends at the deadline with the cause.
		err = tm.Do(parent, func(ctx context.Context) error {
			child, cancel := context.WithCancel(ctx)
			defer cancel()
			<-child.Done()
			if context.Cause(child) != timeout.ErrAttempt {
				t.Errorf("derived ctx: Cause %v", context.Cause(child))
			}
			return child.Err()
		})
		if !errors.Is(err, timeout.ErrAttempt) {
			t.Fatalf("derived: %v", err)
		}

		// A ctx kept by a call that returned at once is cancelled, its
		// real ctx made afterwards included.
		_ = tm.Do(parent, func(ctx context.Context) error { kept = ctx; return nil })
		if kept.Err() != context.Canceled {
			t.Errorf("kept after a quick return: Err %v, want Canceled", kept.Err())
		}
		<-kept.Done()

		// The parent's cancellation reaches Done and Err, before or after
		// Done was asked for.
		for _, early := range []bool{true, false} {
			pctx, pcancel := context.WithCancel(parent)
			err = tm.Do(pctx, func(ctx context.Context) error {
				if early {
					_ = ctx.Done()
				}
				pcancel()
				<-ctx.Done()
				return ctx.Err()
			})
			if err != context.Canceled {
				t.Errorf("parent cancelled (Done asked first: %v): %v", early, err)
			}
		}
	})
}

// TestQuickCallAllocatesOnce: a call that does not ask for Done costs one
// allocation and no timer.
func TestQuickCallAllocatesOnce(t *testing.T) {
	tm := mustNew(t, timeout.Options{Timeout: time.Minute})
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if a := testing.AllocsPerRun(1000, func() { _ = tm.Do(ctx, fn) }); a > 1 {
		t.Fatalf("Do allocates %v times, want 1", a)
	}
}

// TestHugeTimeout: a Timeout of the longest Duration does not overflow
// into a deadline in the past.
func TestHugeTimeout(t *testing.T) {
	tm := mustNew(t, timeout.Options{Timeout: math.MaxInt64})
	err := tm.Do(context.Background(), func(ctx context.Context) error {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) < 100*365*24*time.Hour {
			t.Errorf("Deadline = %v, %v, want centuries away", dl, ok)
		}
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMadeAsTheCallReturns: a ctx whose real ctx is made by another
// goroutine while the call returns ends all the same, whichever wins.
func TestMadeAsTheCallReturns(t *testing.T) {
	tm := mustNew(t, timeout.Options{Timeout: time.Hour})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				done := make(chan (<-chan struct{}))
				var kept context.Context
				_ = tm.Do(context.Background(), func(ctx context.Context) error {
					kept = ctx
					go func() { done <- ctx.Done() }()
					return nil
				})
				select {
				case <-<-done:
				case <-time.After(time.Minute):
					t.Errorf("goroutine %d call %d: a ctx made as its call returned never ended", g, i)
					return
				}
				if kept.Err() != context.Canceled {
					t.Errorf("goroutine %d call %d: Err %v, want Canceled", g, i, kept.Err())
					return
				}
			}
		}()
	}
	wg.Wait()
}
