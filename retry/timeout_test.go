package retry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/timeout"
)

// hang is an attempt that respects its ctx and never answers by itself.
func hang(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestAttemptTimeoutIsRetried: attempts cut by AttemptTimeout are retried;
// the third answers in time.
func TestAttemptTimeoutIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newR(t, Options{MaxAttempts: 3, AttemptTimeout: time.Second, Backoff: Constant{}})
		calls := 0
		var seen []error
		r.o.OnRetry = func(_ context.Context, ev Event) { seen = append(seen, ev.Err) }
		start := time.Now()
		err := r.Do(context.Background(), func(ctx context.Context) error {
			calls++
			if calls < 3 {
				return hang(ctx)
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Fatalf("err %v after %d calls, want success on the third", err, calls)
		}
		if el := time.Since(start); el != 2*time.Second {
			t.Errorf("took %v, want 2 attempt timeouts of 1s", el)
		}
		for _, e := range seen {
			if !errors.Is(e, timeout.ErrAttempt) {
				t.Errorf("a retried attempt's error %v does not match timeout.ErrAttempt", e)
			}
		}
		// Exhausted on attempt timeouts: the ExhaustedError says so.
		err = r.Do(context.Background(), hang)
		if !errors.Is(err, ErrExhausted) || !errors.Is(err, timeout.ErrAttempt) || errors.Is(err, timeout.ErrTotal) {
			t.Fatalf("3 attempt timeouts: %v, want ErrExhausted wrapping ErrAttempt only", err)
		}
	})
}

// TestTotalTimeoutEndsRetries: the total timeout cuts the attempt in flight
// and the error says it was the total.
func TestTotalTimeoutEndsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newR(t, Options{MaxAttempts: 10, AttemptTimeout: time.Second, Timeout: 2500 * time.Millisecond, Backoff: Constant{}})
		calls := 0
		start := time.Now()
		err := r.Do(context.Background(), func(ctx context.Context) error { calls++; return hang(ctx) })
		if el := time.Since(start); el != 2500*time.Millisecond || calls != 3 {
			t.Errorf("took %v and %d calls, want 2.5s and 3", el, calls)
		}
		var te *timeout.Error
		if !errors.As(err, &te) || te.Kind != timeout.Total || te.Timeout != 2500*time.Millisecond {
			t.Fatalf("err = %v, want a *timeout.Error of kind total", err)
		}
		if !errors.Is(err, timeout.ErrTotal) || errors.Is(err, timeout.ErrAttempt) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v: want ErrTotal, not ErrAttempt", err)
		}
		// A wait that would end past the total deadline ends the retries at
		// once, and the total timeout claims it.
		r = newR(t, Options{MaxAttempts: 10, AttemptTimeout: time.Second, Timeout: 2500 * time.Millisecond, Backoff: Constant{D: 2 * time.Second}})
		start = time.Now()
		err = r.Do(context.Background(), hang)
		if el := time.Since(start); el != time.Second {
			t.Errorf("gave up after %v, want 1s (the wait would pass the total deadline)", el)
		}
		var ee *ExhaustedError
		if !errors.Is(err, timeout.ErrTotal) || !errors.As(err, &ee) || ee.Reason != ReasonDeadline {
			t.Fatalf("err = %v, want ErrTotal around a ReasonDeadline give-up", err)
		}
		// The caller's earlier deadline is the caller's: no *timeout.Error.
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		err = r.Do(ctx, hang)
		if timeout.IsTimeout(err) && errors.Is(err, timeout.ErrTotal) {
			t.Fatalf("under the caller's earlier deadline: %v, claimed by the total timeout", err)
		}
	})
}

// TestAttemptIgnoringCtx: an attempt that ignores its ctx is waited for, on
// the calling goroutine (no goroutine left behind), and its late failure is
// an attempt timeout, retried.
func TestAttemptIgnoringCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newR(t, Options{MaxAttempts: 2, AttemptTimeout: time.Second, Backoff: Constant{}})
		var running atomic.Int32
		start := time.Now()
		err := r.Do(context.Background(), func(ctx context.Context) error {
			if running.Add(1) != 1 {
				t.Error("two attempts ran at once: a timed-out one was left running")
			}
			defer running.Add(-1)
			time.Sleep(3 * time.Second)
			return errBoom
		})
		if el := time.Since(start); el != 6*time.Second {
			t.Errorf("took %v, want both attempts' 3s", el)
		}
		if !errors.Is(err, timeout.ErrAttempt) || !errors.Is(err, errBoom) || running.Load() != 0 {
			t.Fatalf("err = %v, running %d", err, running.Load())
		}
	})
}

func TestTimeoutOptionErrors(t *testing.T) {
	for _, o := range []Options{{AttemptTimeout: -1}, {Timeout: -1}} {
		if _, err := New(o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Timeout must be >= 0") {
			t.Errorf("New(%+v) = %v", o, err)
		}
	}
}

// TestTimeoutHammer: 64 goroutines through one Retrier with both timeouts.
func TestTimeoutHammer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newR(t, Options{MaxAttempts: 3, AttemptTimeout: 10 * time.Millisecond, Timeout: time.Second, Backoff: Constant{D: time.Millisecond}})
		var wg sync.WaitGroup
		var ok atomic.Int64
		for g := range 64 {
			wg.Go(func() {
				for i := range 20 {
					calls := 0
					err := r.Do(context.Background(), func(ctx context.Context) error {
						calls++
						if (g+i)%2 == 0 && calls == 1 {
							return hang(ctx) // one attempt timeout, then success
						}
						return nil
					})
					if err != nil {
						t.Errorf("err %v", err)
						return
					}
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if s := r.Stats(); ok.Load() != 64*20 || s.Calls != 64*20 || s.Retries != 64*10 {
			t.Fatalf("ok %d, Stats %+v", ok.Load(), s)
		}
	})
}

// TestTransportAttemptTimeout: a try that hangs is cut by AttemptTimeout
// and retried; the answer's body stays readable after RoundTrip returns
// (the timeouts end when it is closed).
func TestTransportAttemptTimeout(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // hangs until the client gives up on it
			return
		}
		w.(http.Flusher).Flush() // headers first; the body follows
		_, _ = io.WriteString(w, strings.Repeat("x", 1<<20))
	}))
	defer srv.Close()
	r := newR(t, Options{MaxAttempts: 2, AttemptTimeout: 2 * time.Second, Timeout: time.Minute, Backoff: Constant{}})
	c := &http.Client{Transport: &Transport{Retrier: r, Base: srv.Client().Transport}}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || len(body) != 1<<20 || n.Load() != 2 {
		t.Fatalf("read %d bytes, err %v, %d tries; want 1 MiB after 2 tries", len(body), err, n.Load())
	}
	if s := r.Stats(); s.Retries != 1 {
		t.Fatalf("Stats %+v, want 1 retry", s)
	}
}

// TestTransportTotalTimeout: a server that never answers; the total
// timeout ends the round trip and says so.
func TestTransportTotalTimeout(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a POST's unread body keeps the server from seeing the client leave
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer srv.Close()
	defer close(stop)
	r := newR(t, Options{MaxAttempts: 3, Timeout: 300 * time.Millisecond})
	for _, method := range []string{http.MethodGet, http.MethodPost} { // POST: one try, still bounded
		req, _ := http.NewRequest(method, srv.URL, strings.NewReader("x"))
		resp, err := (&Transport{Retrier: r, Base: srv.Client().Transport}).RoundTrip(req)
		if resp != nil || !errors.Is(err, timeout.ErrTotal) {
			t.Fatalf("%s: resp %v, err %v; want a total timeout", method, resp, err)
		}
	}
}
