package timeout_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/timeout"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

func mustNew(t testing.TB, o timeout.Options) *timeout.Timeout {
	t.Helper()
	tm, err := timeout.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		o    timeout.Options
		want string
	}{
		{timeout.Options{}, "Options.Timeout must be > 0"},
		{timeout.Options{Timeout: -time.Second}, "Options.Timeout must be > 0"},
		{timeout.Options{Timeout: time.Second, Kind: 7}, "Options.Kind must be Total or Attempt"},
	} {
		_, err := timeout.New(tc.o)
		if !errors.Is(err, timeout.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want ErrInvalid naming %q", tc.o, err, tc.want)
		}
	}
}

// waitCtx is a call that respects its ctx: it returns its error when the
// ctx ends, or nil after d.
func waitCtx(d time.Duration) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
}

func TestTimeoutFires(t *testing.T) {
	for _, kind := range []timeout.Kind{timeout.Total, timeout.Attempt} {
		t.Run(kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tm := mustNew(t, timeout.Options{Timeout: time.Second, Kind: kind})
				start := time.Now()
				var cause error
				err := tm.Do(context.Background(), func(ctx context.Context) error {
					<-ctx.Done()
					cause = context.Cause(ctx)
					return ctx.Err()
				})
				if el := time.Since(start); el != time.Second {
					t.Errorf("returned after %v, want 1s", el)
				}
				var te *timeout.Error
				if !errors.As(err, &te) || te.Kind != kind || te.Timeout != time.Second {
					t.Fatalf("err = %#v, want an *Error of kind %v", err, kind)
				}
				mine, other := timeout.ErrTotal, timeout.ErrAttempt
				if kind == timeout.Attempt {
					mine, other = other, mine
				}
				if !errors.Is(err, mine) || errors.Is(err, other) || !errors.Is(err, timeout.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err %v: matches its kind %v, not the other, ErrTimeout and DeadlineExceeded?", err, mine)
				}
				if cause != mine {
					t.Errorf("context.Cause in the call = %v, want %v", cause, mine)
				}
				if want := fmt.Sprintf("timeout: %s timeout 1s passed: context deadline exceeded", kind); err.Error() != want {
					t.Errorf("Error() = %q, want %q", err, want)
				}
				if s := tm.Stats(); s.Calls != 1 || s.Timeouts != 1 {
					t.Errorf("Stats = %+v, want 1 call, 1 timeout", s)
				}
			})
		})
	}
}

func TestFastCallsPass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := mustNew(t, timeout.Options{Timeout: time.Second})
		if err := tm.Do(context.Background(), waitCtx(999*time.Millisecond)); err != nil {
			t.Fatalf("a call of 999ms under 1s: %v", err)
		}
		boom := errors.New("boom")
		if err := tm.Do(context.Background(), func(context.Context) error { return boom }); err != boom {
			t.Fatalf("a fast failure: %v, want it as is", err)
		}
		v, err := timeout.DoValue(context.Background(), tm, func(context.Context) (int, error) { return 42, nil })
		if v != 42 || err != nil {
			t.Fatalf("DoValue = %v, %v", v, err)
		}
		if s := tm.Stats(); s.Calls != 3 || s.Timeouts != 0 {
			t.Errorf("Stats = %+v, want 3 calls, 0 timeouts", s)
		}
	})
}

// TestCallerDeadlineIsNotATimeout: when the caller's own ctx ends first
// (deadline or cancel), the error is the call's, as is: the Timeout does not
// claim it.
func TestCallerDeadlineIsNotATimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := mustNew(t, timeout.Options{Timeout: time.Second, Kind: timeout.Attempt})
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		err := tm.Do(ctx, waitCtx(time.Hour))
		if err != context.DeadlineExceeded {
			t.Fatalf("caller's deadline first: %v, want context.DeadlineExceeded as is", err)
		}
		ctx2, cancel2 := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel2)
		if err := tm.Do(ctx2, waitCtx(time.Hour)); err != context.Canceled {
			t.Fatalf("caller cancelled: %v, want context.Canceled", err)
		}
		if s := tm.Stats(); s.Timeouts != 0 {
			t.Errorf("Timeouts = %d, want 0", s.Timeouts)
		}
	})
}

// TestIgnoredCtx: a call that ignores its ctx is waited for (no goroutine
// is left running it); its late failure is an *Error, its late success nil.
func TestIgnoredCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := mustNew(t, timeout.Options{Timeout: time.Second})
		boom := errors.New("boom")
		for _, ret := range []error{boom, nil} {
			start := time.Now()
			done := false
			err := tm.Do(context.Background(), func(ctx context.Context) error {
				time.Sleep(5 * time.Second) // ignores ctx
				done = true
				return ret
			})
			if !done {
				t.Fatal("Do returned before the call did: its goroutine would be left running")
			}
			if el := time.Since(start); el != 5*time.Second {
				t.Errorf("returned after %v, want the call's 5s", el)
			}
			if ret == nil && err != nil {
				t.Errorf("a late success: %v, want nil (its work is done)", err)
			}
			if ret != nil && (!errors.Is(err, timeout.ErrTotal) || !errors.Is(err, boom)) {
				t.Errorf("a late failure: %v, want an *Error wrapping boom", err)
			}
		}
	})
}

// TestNested: an attempt Timeout inside a total one; the error says which
// fired, and the total one claims a retry loop's give-up "next attempt after
// the deadline" (a bare DeadlineExceeded) while its deadline binds.
func TestNested(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		total := mustNew(t, timeout.Options{Timeout: 10 * time.Second, Kind: timeout.Total})
		attempt := mustNew(t, timeout.Options{Timeout: time.Second, Kind: timeout.Attempt})
		ctx := context.Background()
		err := total.Do(ctx, func(ctx context.Context) error { return attempt.Do(ctx, waitCtx(time.Hour)) })
		if !errors.Is(err, timeout.ErrAttempt) || errors.Is(err, timeout.ErrTotal) {
			t.Fatalf("the attempt's timeout: %v, want ErrAttempt only", err)
		}
		giveUp := fmt.Errorf("retry: next attempt after the deadline: %w", context.DeadlineExceeded)
		err = total.Do(ctx, func(ctx context.Context) error { return giveUp })
		if !errors.Is(err, timeout.ErrTotal) || !errors.Is(err, giveUp) {
			t.Fatalf("a give-up before the total deadline: %v, want ErrTotal wrapping it", err)
		}
		// With a caller's deadline earlier than the total one, the give-up
		// is the caller's.
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := total.Do(cctx, func(ctx context.Context) error { return giveUp }); err != giveUp {
			t.Fatalf("under an earlier caller deadline: %v, want the give-up as is", err)
		}
		// Both expire together: the total speaks, wrapping the attempt's.
		both := mustNew(t, timeout.Options{Timeout: time.Second, Kind: timeout.Total})
		err = both.Do(ctx, func(ctx context.Context) error { return attempt.Do(ctx, waitCtx(time.Hour)) })
		var te *timeout.Error
		if !errors.As(err, &te) {
			t.Fatalf("%v: no *Error", err)
		}
		t.Logf("both at 1s: %v (outermost kind %v)", err, te.Kind)
	})
}

func TestHammer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := mustNew(t, timeout.Options{Timeout: 10 * time.Millisecond, Kind: timeout.Attempt})
		var wg sync.WaitGroup
		var mu sync.Mutex
		timeouts := 0
		for g := range 64 {
			wg.Go(func() {
				for i := range 50 {
					d := time.Duration(2*((g+i)%10)+1) * time.Millisecond // 1, 3, ... 19ms: 11ms and over time out
					err := tm.Do(context.Background(), waitCtx(d))
					if (d > 10*time.Millisecond) != errors.Is(err, timeout.ErrAttempt) {
						t.Errorf("call of %v: %v", d, err)
					}
					if err != nil {
						mu.Lock()
						timeouts++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if s := tm.Stats(); s.Calls != 64*50 || s.Timeouts != uint64(timeouts) || timeouts == 0 {
			t.Fatalf("Stats = %+v, counted %d timeouts", s, timeouts)
		}
	})
}
