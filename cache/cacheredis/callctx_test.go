package cacheredis

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testinfra"
)

type ctxKey struct{}

// TestCallCtxBounds: a call's ctx has the Store's deadline, carries the
// caller's values, and its Done closes at the deadline with
// DeadlineExceeded, also when it was pooled and reused.
func TestCallCtxBounds(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	for round := range 3 {
		start := time.Now()
		ctx, cc := bound(parent, 30*time.Millisecond)
		if d, ok := ctx.Deadline(); !ok || d.Before(start.Add(30*time.Millisecond)) || d.After(time.Now().Add(30*time.Millisecond)) {
			t.Fatalf("round %d: Deadline() = %v, %v; want about %v", round, d, ok, start.Add(30*time.Millisecond))
		}
		if ctx.Value(ctxKey{}) != "v" || ctx.Err() != nil {
			t.Fatalf("round %d: Value = %v, Err = %v", round, ctx.Value(ctxKey{}), ctx.Err())
		}
		if round < 2 { // ended before its deadline: pooled, reused next round
			cc.end()
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done did not close after the deadline")
		}
		if time.Since(start) < 30*time.Millisecond || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("Done closed after %v with Err %v; want >= 30ms and DeadlineExceeded", time.Since(start), ctx.Err())
		}
		cc.end()
	}
	// One that fired is not reused: a new call's ctx is open.
	ctx, cc := bound(parent, time.Hour)
	defer cc.end()
	if ctx.Err() != nil {
		t.Fatalf("a new call's ctx is done: %v", ctx.Err())
	}
}

// TestCallCtxParents: a caller's ctx with an earlier deadline is used as
// it is; a cancelable one still cancels the call.
func TestCallCtxParents(t *testing.T) {
	early, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if ctx, cc := bound(early, time.Hour); ctx != early || cc != nil {
		t.Fatalf("bound(earlier deadline) = %v, %v; want the caller's ctx", ctx, cc)
	}
	parent, stop := context.WithCancel(context.Background())
	ctx, cc := bound(parent, time.Hour)
	defer cc.end()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) < 59*time.Minute {
		t.Fatalf("Deadline() = %v, %v; want an hour from now", d, ok)
	}
	stop()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("canceling the caller did not cancel the call")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("Err() = %v; want Canceled", ctx.Err())
	}
}

// TestCallCtxRace hammers pooled call contexts from many goroutines, some
// timing out, under -race: a ctx handed out is never done before its
// deadline.
func TestCallCtxRace(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				timeout := time.Hour
				if (g+i)%50 == 0 {
					timeout = time.Microsecond
				}
				ctx, cc := bound(context.Background(), timeout)
				if timeout == time.Hour && ctx.Err() != nil {
					t.Errorf("a fresh ctx is done: %v", ctx.Err())
				}
				if timeout == time.Microsecond {
					<-ctx.Done()
				}
				cc.end()
			}
		}()
	}
	wg.Wait()
}

// TestTimeoutPausedRedis: with Redis paused, a read made without a
// deadline (the cache's own, through the pooled call contexts) fails
// after the Store's Timeout, not later, and the next read after Redis is
// back succeeds on a ctx from the same pool.
func TestTimeoutPausedRedis(t *testing.T) {
	r := testinfra.Redis(t)
	s := newStore(t, Options{Client: r.Client, Timeout: 100 * time.Millisecond})
	ctx := context.Background()
	if err := s.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	start := time.Now()
	_, err := s.GetOne(ctx, "k")
	took := time.Since(start)
	r.Resume()
	if err == nil || took < 100*time.Millisecond || took > 2*time.Second {
		t.Fatalf("GetOne with Redis paused: %v after %v; want a timeout after about 100ms", err, took)
	}
	if got, err := s.GetOne(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("GetOne after Resume = %q, %v", got, err)
	}
}
