// Package idempotencytest is the conformance suite every
// idempotency.Store of this module passes: MemoryStore, idempotencyredis
// (standalone and Cluster) and idempotencypg.
package idempotencytest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/testclock"
)

// Factory returns the Store under test reading the time from clk
// (simulated: it moves only when the suite moves it). It is called once
// per subtest; keys are unique per subtest.
type Factory func(t *testing.T, clk clock.Clock) idempotency.Store

// Key is a key unique to this test and run.
func Key(t testing.TB) string {
	return t.Name() + "#" + strconv.FormatUint(rand.Uint64(), 36)
}

const (
	lease = 10 * time.Second
	ttl   = time.Hour
)

// Run runs the suite as subtests of t: the Store's own contract, then what
// a Guard and the middleware do with their leases over it (a panicking fn
// releases its key; a lease lost to another caller cancels the work's ctx
// with cause idempotency.ErrLeaseLost). Those last checks renew leases in
// real time (every 100ms) against the simulated clock.
func Run(t *testing.T, newStore Factory) {
	ctx := context.Background()
	setup := func(t *testing.T) (idempotency.Store, *testclock.Clock, string) {
		clk := testclock.New()
		return newStore(t, clk), clk, Key(t)
	}
	begin := func(t *testing.T, s idempotency.Store, key, fp string) idempotency.Outcome {
		t.Helper()
		out, err := s.Begin(ctx, key, fp, lease, ttl)
		if err != nil {
			t.Fatalf("Begin(%q): %v", key, err)
		}
		return out
	}
	t.Run("FirstStartsThenRunning", func(t *testing.T) {
		s, clk, key := setup(t)
		out := begin(t, s, key, "fp")
		if out.Status != idempotency.Started || out.Token == "" {
			t.Fatalf("first Begin: %+v, want Started with a token", out)
		}
		clk.Add(4 * time.Second)
		again := begin(t, s, key, "fp")
		if again.Status != idempotency.Running || again.RetryAfter != 6*time.Second {
			t.Fatalf("second Begin 4s later: %+v, want Running with RetryAfter 6s (the lease left)", again)
		}
		if other := begin(t, s, key+"x", "fp"); other.Status != idempotency.Started {
			t.Fatalf("another key: %+v, want Started", other)
		}
	})
	t.Run("CompletedReplaysResult", func(t *testing.T) {
		s, _, key := setup(t)
		out := begin(t, s, key, "fp")
		result := bytes.Repeat([]byte{0, 1, 0xff, 'x'}, 25_000) // 100 KB, binary
		if err := s.Complete(ctx, key, out.Token, result, ttl); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			again := begin(t, s, key, "fp")
			if again.Status != idempotency.Completed || !bytes.Equal(again.Result, result) {
				t.Fatalf("Begin after Complete: status %v, %d result bytes; want Completed with the 100 KB stored", again.Status, len(again.Result))
			}
		}
	})
	t.Run("FingerprintMismatch", func(t *testing.T) {
		s, _, key := setup(t)
		out := begin(t, s, key, "fp1")
		if got := begin(t, s, key, "fp2"); got.Status != idempotency.Mismatch {
			t.Fatalf("other fingerprint while running: %+v, want Mismatch", got)
		}
		if err := s.Complete(ctx, key, out.Token, []byte("r"), ttl); err != nil {
			t.Fatal(err)
		}
		if got := begin(t, s, key, "fp2"); got.Status != idempotency.Mismatch || got.Result != nil {
			t.Fatalf("other fingerprint when completed: %+v, want Mismatch without the result", got)
		}
	})
	t.Run("TokenFences", func(t *testing.T) {
		s, _, key := setup(t)
		out := begin(t, s, key, "fp")
		for name, err := range map[string]error{
			"Complete": s.Complete(ctx, key, out.Token+"x", []byte("r"), ttl),
			"Release":  s.Release(ctx, key, out.Token+"x"),
			"Extend":   s.Extend(ctx, key, out.Token+"x", lease),
		} {
			if !errors.Is(err, idempotency.ErrLeaseLost) {
				t.Errorf("%s with a wrong token: %v, want ErrLeaseLost", name, err)
			}
		}
		if got := begin(t, s, key, "fp"); got.Status != idempotency.Running {
			t.Fatalf("after wrong-token calls: %+v, want still Running", got)
		}
		if err := s.Complete(ctx, key+"none", "t", []byte("r"), ttl); !errors.Is(err, idempotency.ErrLeaseLost) {
			t.Fatalf("Complete of an unknown key: %v, want ErrLeaseLost", err)
		}
	})
	t.Run("ReleaseLetsARetryRun", func(t *testing.T) {
		s, _, key := setup(t)
		out := begin(t, s, key, "fp")
		if err := s.Release(ctx, key, out.Token); err != nil {
			t.Fatal(err)
		}
		again := begin(t, s, key, "fp2") // the record is gone: any request may use the key
		if again.Status != idempotency.Started || again.Token == out.Token {
			t.Fatalf("Begin after Release: %+v, want Started with a new token", again)
		}
	})
	t.Run("ExpiredLeaseIsTakenOver", func(t *testing.T) {
		s, clk, key := setup(t)
		old := begin(t, s, key, "fp")
		clk.Add(lease)
		cur := begin(t, s, key, "fp")
		if cur.Status != idempotency.Started || cur.Token == old.Token {
			t.Fatalf("Begin once the lease expired: %+v, want Started with a new token", cur)
		}
		if err := s.Complete(ctx, key, old.Token, []byte("late"), ttl); !errors.Is(err, idempotency.ErrLeaseLost) {
			t.Fatalf("the dead holder's Complete: %v, want ErrLeaseLost", err)
		}
		if err := s.Complete(ctx, key, cur.Token, []byte("new"), ttl); err != nil {
			t.Fatal(err)
		}
		if got := begin(t, s, key, "fp"); got.Status != idempotency.Completed || string(got.Result) != "new" {
			t.Fatalf("after the takeover completed: %+v", got)
		}
	})
	t.Run("ExtendKeepsTheLease", func(t *testing.T) {
		s, clk, key := setup(t)
		out := begin(t, s, key, "fp")
		clk.Add(8 * time.Second)
		if err := s.Extend(ctx, key, out.Token, lease); err != nil {
			t.Fatal(err)
		}
		clk.Add(8 * time.Second) // 16s after Begin, 8s after Extend
		if got := begin(t, s, key, "fp"); got.Status != idempotency.Running || got.RetryAfter != 2*time.Second {
			t.Fatalf("after Extend: %+v, want Running with 2s left", got)
		}
	})
	t.Run("TTLExpiry", func(t *testing.T) {
		s, clk, key := setup(t)
		out := begin(t, s, key, "fp")
		if err := s.Complete(ctx, key, out.Token, []byte("r"), ttl); err != nil {
			t.Fatal(err)
		}
		clk.Add(ttl - time.Second)
		if got := begin(t, s, key, "fp"); got.Status != idempotency.Completed {
			t.Fatalf("before the TTL: %+v, want Completed", got)
		}
		clk.Add(2 * time.Second)
		if got := begin(t, s, key, "other"); got.Status != idempotency.Started {
			t.Fatalf("after the TTL: %+v, want Started (the record expired)", got)
		}
	})
	t.Run("ConcurrentBeginsOneStarts", func(t *testing.T) {
		s, _, key := setup(t)
		var started, running atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := s.Begin(ctx, key, "fp", lease, ttl)
				switch {
				case err != nil:
					errs <- err
				case out.Status == idempotency.Started:
					started.Add(1)
				case out.Status == idempotency.Running:
					running.Add(1)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if started.Load() != 1 || running.Load() != 49 {
			t.Fatalf("50 concurrent Begins: %d started, %d running; want 1 and 49", started.Load(), running.Load())
		}
	})
	runHolders(t, setup)
}
