package retry

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// replica answers after d, or returns early with ctx's error, counting
// cancellations.
func replica(ctx context.Context, d time.Duration, cancelled *atomic.Int32) (string, error) {
	select {
	case <-time.After(d):
		return "answer", nil
	case <-ctx.Done():
		cancelled.Add(1)
		return "", ctx.Err()
	}
}

func TestHedge(t *testing.T) {
	bubble := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
	}
	{
		bubble("a slow first attempt loses to the hedge", func(t *testing.T) {
			var attempts, cancelled atomic.Int32
			start := time.Now()
			v, err := Hedge(context.Background(), 50*ms, 2, nil, func(ctx context.Context) (string, error) {
				d := 20 * ms
				if attempts.Add(1) == 1 {
					d = 500 * ms // the first attempt hits a slow replica
				}
				return replica(ctx, d, &cancelled)
			})
			if err != nil || v != "answer" || time.Since(start) != 70*ms {
				t.Fatalf("%q %v after %v; want the hedge's answer at 50+20ms", v, err, time.Since(start))
			}
			synctest.Wait() // let the loser see its cancellation
			if attempts.Load() != 2 || cancelled.Load() != 1 {
				t.Fatalf("%d attempts, %d cancelled; want 2 and the slow one cancelled", attempts.Load(), cancelled.Load())
			}
		})

		bubble("a fast first attempt fires no hedge", func(t *testing.T) {
			var attempts, cancelled atomic.Int32
			v, err := Hedge(context.Background(), 50*ms, 2, nil, func(ctx context.Context) (string, error) {
				attempts.Add(1)
				return replica(ctx, 10*ms, &cancelled)
			})
			if err != nil || v != "answer" || attempts.Load() != 1 {
				t.Fatalf("%q %v after %d attempts", v, err, attempts.Load())
			}
		})

		bubble("every attempt fails: the last error", func(t *testing.T) {
			var attempts atomic.Int32
			start := time.Now()
			_, err := Hedge(context.Background(), 10*ms, 2, nil, func(ctx context.Context) (int, error) {
				attempts.Add(1)
				return 0, errBoom
			})
			// A failure with nothing else running fires the next at once.
			if !errors.Is(err, errBoom) || attempts.Load() != 3 || time.Since(start) != 0 {
				t.Fatalf("%v after %d attempts in %v", err, attempts.Load(), time.Since(start))
			}
		})

		bubble("a Permanent error returns at once", func(t *testing.T) {
			var attempts atomic.Int32
			_, err := Hedge(context.Background(), 10*ms, 5, nil, func(ctx context.Context) (int, error) {
				attempts.Add(1)
				return 0, Permanent(errBoom)
			})
			if !IsPermanent(err) || attempts.Load() != 1 {
				t.Fatalf("%v after %d attempts", err, attempts.Load())
			}
		})

		bubble("ctx ends first", func(t *testing.T) {
			var cancelled atomic.Int32
			ctx, cancel := context.WithTimeout(context.Background(), 100*ms)
			defer cancel()
			_, err := Hedge(ctx, 30*ms, 1, nil, func(ctx context.Context) (string, error) { return replica(ctx, time.Hour, &cancelled) })
			synctest.Wait()
			if !errors.Is(err, context.DeadlineExceeded) || cancelled.Load() != 2 {
				t.Fatalf("%v, %d cancelled", err, cancelled.Load())
			}
		})

		bubble("the budget pays for hedges", func(t *testing.T) {
			b := newBudget(t, BudgetOptions{NoMinRetries: true})
			for range 10 {
				b.Deposit() // one token
			}
			var attempts, cancelled atomic.Int32
			for range 2 {
				Hedge(context.Background(), 10*ms, 3, b, func(ctx context.Context) (string, error) {
					attempts.Add(1)
					return replica(ctx, 100*ms, &cancelled)
				})
			}
			// Call 1: its deposit (0.1) and the token pay for one hedge; call 2
			// has 0.2 tokens: none.
			if st := b.Stats(); attempts.Load() != 3 || st.Withdrawals != 1 || st.Deposits != 12 {
				t.Fatalf("%d attempts, budget %+v", attempts.Load(), st)
			}
		})

		bubble("invalid arguments", func(t *testing.T) {
			fn := func(context.Context) (int, error) { return 1, nil }
			for _, c := range []struct {
				delay time.Duration
				max   int
			}{{0, 1}, {-ms, 1}, {ms, -1}} {
				if _, err := Hedge(context.Background(), c.delay, c.max, nil, fn); !errors.Is(err, ErrInvalid) {
					t.Errorf("Hedge(%v, %d) = %v", c.delay, c.max, err)
				}
			}
		})
	}
}

// TestHedgeCarriesCause (issue 15 item 7): when ctx ends first, Hedge's
// error matches ctx.Err() and context.Cause(ctx) alike; without a cause it
// is ctx.Err() itself, as before.
func TestHedgeCarriesCause(t *testing.T) {
	errShutdown := errors.New("shutting down")
	synctest.Test(t, func(t *testing.T) {
		var cancelled atomic.Int32
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(100*ms, func() { cancel(errShutdown) })
		_, err := Hedge(ctx, 30*ms, 1, nil, func(ctx context.Context) (string, error) { return replica(ctx, time.Hour, &cancelled) })
		synctest.Wait()
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errShutdown) || err.Error() != "context canceled: shutting down" {
			t.Fatalf("%v: want context.Canceled and the cause", err)
		}
		ctx2, cancel2 := context.WithCancel(context.Background())
		time.AfterFunc(100*ms, cancel2)
		_, err = Hedge(ctx2, 30*ms, 1, nil, func(ctx context.Context) (string, error) { return replica(ctx, time.Hour, &cancelled) })
		synctest.Wait()
		if err != context.Canceled {
			t.Fatalf("%v: want context.Canceled itself", err)
		}
	})
}
