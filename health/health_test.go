package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func newHealth(t *testing.T, o Options, checks ...Check) *Health {
	t.Helper()
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if err := h.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func sleepCheck(d time.Duration, err error) func(context.Context) error {
	return func(ctx context.Context) error { time.Sleep(d); return err }
}

func TestChecksRunInParallel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHealth(t, Options{},
			Check{Name: "a", Func: sleepCheck(100*time.Millisecond, nil)},
			Check{Name: "b", Func: sleepCheck(100*time.Millisecond, nil)},
			Check{Name: "c", Func: sleepCheck(100*time.Millisecond, nil)})
		start := time.Now()
		rep := h.Run(context.Background(), Readiness)
		if el := time.Since(start); el != 100*time.Millisecond {
			t.Fatalf("3 checks of 100ms took %v, want 100ms (parallel)", el)
		}
		if rep.Status != Pass || len(rep.Results) != 3 {
			t.Fatalf("report %+v", rep)
		}
	})
}

func TestTimeoutEvenWhenCheckIgnoresCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := newHealth(t, Options{}, Check{Name: "stuck", Timeout: 50 * time.Millisecond, Func: func(context.Context) error { <-release; return nil }})
		start := time.Now()
		rep := h.Run(context.Background(), Readiness)
		close(release)
		if time.Since(start) != 50*time.Millisecond || rep.Status != Fail || !strings.Contains(rep.Results[0].Err.Error(), "timed out after 50ms") {
			t.Fatalf("after %v: %+v", time.Since(start), rep)
		}
	})
}

func TestCachingUnderConcurrentProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		h := newHealth(t, Options{CacheTTL: time.Second}, Check{Name: "db", Func: func(context.Context) error {
			calls.Add(1)
			time.Sleep(10 * time.Millisecond)
			return nil
		}})
		probe := func() {
			var wg sync.WaitGroup
			for i := 0; i < 100; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); h.Run(context.Background(), Readiness) }()
			}
			wg.Wait()
		}
		probe()
		if calls.Load() != 1 {
			t.Fatalf("100 concurrent probes ran the check %d times, want 1", calls.Load())
		}
		time.Sleep(500 * time.Millisecond)
		probe()
		if calls.Load() != 1 {
			t.Fatalf("probes within the TTL ran the check again (%d)", calls.Load())
		}
		time.Sleep(time.Second)
		probe()
		if calls.Load() != 2 {
			t.Fatalf("after the TTL: %d runs, want 2", calls.Load())
		}
	})
}

func TestStatusCodesAndJSON(t *testing.T) {
	boom := errors.New("connection refused")
	h := newHealth(t, Options{ServiceID: "svc", Version: "1.2"},
		Check{Name: "db", Func: func(context.Context) error { return nil }},
		Check{Name: "search", Optional: true, Func: func(context.Context) error { return boom }})
	w := httptest.NewRecorder()
	h.Ready().ServeHTTP(w, httptest.NewRequest("GET", "/health/ready", nil))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/health+json" {
		t.Fatalf("degraded: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	var doc struct {
		Status    string
		ServiceID string
		Version   string
		Checks    map[string][]struct {
			Status, ObservedUnit, Output, Time string
			ObservedValue                      float64
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err, w.Body)
	}
	if doc.Status != "warn" || doc.ServiceID != "svc" || doc.Version != "1.2" {
		t.Fatalf("doc %+v", doc)
	}
	s := doc.Checks["search:responseTime"]
	if len(s) != 1 || s[0].Status != "fail" || s[0].Output != "connection refused" || s[0].ObservedUnit != "ms" || s[0].Time == "" {
		t.Fatalf("search check %+v in %s", s, w.Body)
	}
	if d := doc.Checks["db:responseTime"]; len(d) != 1 || d[0].Status != "pass" {
		t.Fatalf("db check %+v", d)
	}

	h2 := newHealth(t, Options{}, Check{Name: "db", Func: func(context.Context) error { return boom }})
	w = httptest.NewRecorder()
	h2.Ready().ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 503 || !strings.Contains(w.Body.String(), `"status":"fail"`) {
		t.Fatalf("critical failure: %d %s", w.Code, w.Body)
	}
	// Liveness has no external checks: it passes while readiness fails.
	w = httptest.NewRecorder()
	h2.Live().ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 {
		t.Fatalf("liveness with a failing readiness check: %d", w.Code)
	}
}

func TestFlapDamping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fail := true
		h := newHealth(t, Options{CacheTTL: time.Millisecond}, Check{Name: "db", FailureThreshold: 3, Func: func(context.Context) error {
			if fail {
				return errors.New("down")
			}
			return nil
		}})
		for i := 1; i <= 3; i++ {
			st := h.Run(context.Background(), Readiness).Status
			want := Pass
			if i == 3 {
				want = Fail
			}
			if st != want {
				t.Fatalf("after %d failures: %s, want %s", i, st, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
		fail = false
		if st := h.Run(context.Background(), Readiness).Status; st != Pass {
			t.Fatalf("after recovery: %s", st)
		}
	})
}

func TestDrainingAndStartup(t *testing.T) {
	h := newHealth(t, Options{})
	ctx := context.Background()
	if h.Run(ctx, Readiness).Status != Pass {
		t.Fatal("ready without checks should pass")
	}
	h.SetDraining(true)
	rep := h.Run(ctx, Readiness)
	if rep.Status != Fail || !errors.Is(rep.Results[0].Err, ErrDraining) {
		t.Fatalf("draining: %+v", rep)
	}
	if h.Run(ctx, Liveness).Status != Pass {
		t.Fatal("draining must not fail liveness")
	}
	if rep := h.Run(ctx, Startup); rep.Status != Fail || !errors.Is(rep.Results[0].Err, ErrNotStarted) {
		t.Fatalf("startup before MarkStarted: %+v", rep)
	}
	h.MarkStarted()
	if h.Run(ctx, Startup).Status != Pass {
		t.Fatal("startup after MarkStarted")
	}
}

func TestBackgroundInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		h := newHealth(t, Options{Interval: time.Second}, Check{Name: "db", Func: func(context.Context) error { calls.Add(1); return nil }})
		if st := h.Run(context.Background(), Readiness).Status; st != Fail {
			t.Fatalf("before the first background run: %s, want fail", st)
		}
		h.Start()
		synctest.Wait()
		for i := 0; i < 20; i++ {
			h.Run(context.Background(), Readiness)
		}
		if calls.Load() != 1 {
			t.Fatalf("probes ran the check (%d runs); with Interval only the loop should", calls.Load())
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if calls.Load() != 4 {
			t.Fatalf("%d runs after 3 intervals, want 4", calls.Load())
		}
		h.Close()
		h.Close()
	})
}

func TestPanickingCheckFails(t *testing.T) {
	h := newHealth(t, Options{}, Check{Name: "bug", Func: func(context.Context) error { panic("nil map") }})
	rep := h.Run(context.Background(), Readiness)
	if rep.Status != Fail || !strings.Contains(rep.Results[0].Err.Error(), "panicked: nil map") {
		t.Fatalf("%+v", rep)
	}
}

func TestOptionErrors(t *testing.T) {
	if _, err := New(Options{CacheTTL: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
	h := newHealth(t, Options{})
	ok := func(context.Context) error { return nil }
	for _, c := range []struct {
		c    Check
		want string
	}{
		{Check{Func: ok}, "Check.Name is required"},
		{Check{Name: "x"}, "Check.Func is required"},
		{Check{Name: "x", Func: ok, Timeout: -1}, "Check.Timeout must be > 0"},
		{Check{Name: "x", Func: ok, FailureThreshold: -1}, "Check.FailureThreshold must be >= 1"},
		{Check{Name: "x", Func: ok, Kind: 7}, "Check.Kind must be"},
	} {
		if err := h.Add(c.c); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Add(%+v) = %v, want %q", c.c, err, c.want)
		}
	}
	h.Add(Check{Name: "dup", Func: ok})
	if err := h.Add(Check{Name: "dup", Func: ok}); err == nil {
		t.Fatal("duplicate name accepted")
	}
}

// Regression: a caller that found a run finished between its unlock and
// its relock waited on a nil channel (forever, or until its ctx ended,
// reporting a passing check as failing). Instant checks run on demand by
// many concurrent probes must all pass.
func TestOnDemandRunsNeverWaitOnAFinishedRun(t *testing.T) {
	h := newHealth(t, Options{CacheTTL: time.Nanosecond}, Check{Name: "fast", Func: func(context.Context) error { return nil }},
		Check{Name: "live", Kind: Liveness, Func: func(context.Context) error { return nil }})
	var failed atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				kind := Readiness
				if i%2 == 1 {
					kind = Liveness
				}
				if rep := h.Run(ctx, kind); rep.Status != Pass {
					failed.Add(1)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of 4000 on-demand runs of always-passing checks failed", failed.Load())
	}
}
