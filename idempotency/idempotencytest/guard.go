package idempotencytest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/testclock"
)

// heartbeatLease is the lease of the engine-level checks: the holder
// renews it every 100ms of real time, against the Store's simulated clock.
const heartbeatLease = 300 * time.Millisecond

// cancelWait bounds how long a holder may take to notice its lost lease
// (a few heartbeats; generous for a loaded machine).
const cancelWait = 20 * time.Second

// runHolders is the part of Run that drives idempotency.Guard and the
// middleware over the Store: what a holder does with its lease, not only
// what the Store answers.
func runHolders(t *testing.T, setup func(t *testing.T) (idempotency.Store, *testclock.Clock, string)) {
	ctx := context.Background()
	newGuard := func(t *testing.T, s idempotency.Store) *idempotency.Guard {
		t.Helper()
		g, err := idempotency.NewGuard(idempotency.GuardOptions{Store: s, Lease: heartbeatLease, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	// takeOver lets key's record expire on the simulated clock (as when a
	// holder stalls past its lease and the TTL) and starts key as another
	// caller, with another request, would: the holder's token no longer
	// holds the key.
	takeOver := func(t *testing.T, s idempotency.Store, clk *testclock.Clock, key string) {
		t.Helper()
		clk.Add(ttl + heartbeatLease)
		out, err := s.Begin(ctx, key, "another request", heartbeatLease, ttl)
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != idempotency.Started {
			t.Fatalf("Begin once the record expired: %+v, want Started", out)
		}
	}

	t.Run("GuardPanicReleasesTheKey", func(t *testing.T) {
		s, _, key := setup(t)
		g := newGuard(t, s)
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic of fn did not reach the caller")
				}
			}()
			g.Do(ctx, key, func(context.Context) ([]byte, error) { panic("boom") })
		}()
		// A queue worker recovered the panic and redelivers the job: it
		// must run again, not find the key held by a heartbeat for ever.
		res, err := g.Do(ctx, key, func(context.Context) ([]byte, error) { return []byte("ran"), nil })
		if err != nil || string(res) != "ran" {
			t.Fatalf("Do after a recovered panic: %q, %v; want fn run again", res, err)
		}
	})

	t.Run("GuardLostLeaseCancelsFn", func(t *testing.T) {
		s, clk, key := setup(t)
		g := newGuard(t, s)
		started := make(chan struct{})
		cause := make(chan error, 1)
		done := make(chan error, 1)
		go func() {
			_, err := g.Do(ctx, key, func(ctx context.Context) ([]byte, error) {
				close(started)
				select {
				case <-ctx.Done():
					cause <- context.Cause(ctx)
					return nil, ctx.Err()
				case <-time.After(cancelWait):
					cause <- nil
					return []byte("finished"), nil
				}
			})
			done <- err
		}()
		<-started
		takeOver(t, s, clk, key)
		if c := <-cause; !errors.Is(c, idempotency.ErrLeaseLost) {
			t.Fatalf("fn's ctx after its lease was taken over: cause %v; want it cancelled with ErrLeaseLost", c)
		}
		if err := <-done; !errors.Is(err, idempotency.ErrLeaseLost) {
			t.Fatalf("Do whose lease was lost: %v, want an error matching ErrLeaseLost", err)
		}
	})

	t.Run("MiddlewareLostLeaseCancelsHandler", func(t *testing.T) {
		s, clk, key := setup(t)
		m, err := idempotency.NewHTTP(idempotency.HTTPOptions{Store: s, Lease: heartbeatLease, TTL: ttl, Unscoped: true})
		if err != nil {
			t.Fatal(err)
		}
		scoped := make(chan string, 1)
		cause := make(chan error, 1)
		h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			exec, _ := idempotency.ExecutionFrom(r.Context())
			scoped <- exec.Key
			select {
			case <-r.Context().Done():
				cause <- context.Cause(r.Context())
				w.WriteHeader(http.StatusServiceUnavailable)
			case <-time.After(cancelWait):
				cause <- nil
				w.WriteHeader(http.StatusCreated)
			}
		}))
		done := make(chan int, 1)
		go func() {
			r := httptest.NewRequest("POST", "/payments", strings.NewReader("x"))
			r.Header.Set("Idempotency-Key", strings.ReplaceAll(key, " ", "_"))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			done <- w.Code
		}()
		takeOver(t, s, clk, <-scoped)
		if c := <-cause; !errors.Is(c, idempotency.ErrLeaseLost) {
			t.Fatalf("the handler's ctx after its lease was taken over: cause %v; want it cancelled with ErrLeaseLost", c)
		}
		<-done
		if st := m.Stats(); st.LeaseLost != 1 {
			t.Fatalf("Stats.LeaseLost = %d, want 1", st.LeaseLost)
		}
	})
}
