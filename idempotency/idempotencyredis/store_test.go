package idempotencyredis

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/idempotency/idempotencytest"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// newStore is New for tests, with testinfra.CallTimeout unless set.
func newStore(t testing.TB, o Options) *Store {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = testinfra.CallTimeout
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformanceStandalone(t *testing.T) {
	r := testinfra.Redis(t)
	idempotencytest.Run(t, func(t *testing.T, clk clock.Clock) idempotency.Store {
		return newStore(t, Options{Client: r.Client, Clock: clk})
	})
}

func TestConformanceCluster(t *testing.T) {
	c := testinfra.RedisCluster(t)
	idempotencytest.Run(t, func(t *testing.T, clk clock.Clock) idempotency.Store {
		return newStore(t, Options{Client: c.Client, Clock: clk, Prefix: c.Prefix + "idem"})
	})
}

func TestConcurrentDuplicates(t *testing.T) {
	r := testinfra.Redis(t)
	idempotencytest.ConcurrentDuplicates(t, newStore(t, Options{Client: r.Client}))
}

// With Redis TIME (no injected clock) the lease and TTL run on the
// server's clock.
func TestRedisTime(t *testing.T) {
	r := testinfra.Redis(t)
	s := newStore(t, Options{Client: r.Client})
	ctx := context.Background()
	out, err := s.Begin(ctx, "k", "fp", time.Minute, time.Hour)
	if err != nil || out.Status != idempotency.Started {
		t.Fatal(out, err)
	}
	again, err := s.Begin(ctx, "k", "fp", time.Minute, time.Hour)
	if err != nil || again.Status != idempotency.Running || again.RetryAfter <= 59*time.Second || again.RetryAfter > time.Minute {
		t.Fatalf("second Begin: %+v %v, want Running with just under 1m left", again, err)
	}
	if err := s.Complete(ctx, "k", out.Token, []byte("r"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl := r.Client.PTTL(ctx, "{idempotency:k}").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("PTTL %v, want the 1h TTL", ttl)
	}
}

// Redis down: the middleware refuses with 503 and never runs the handler
// (it cannot know whether the key ran); the Guard returns ErrUnavailable.
// After a restart both work again.
func TestRedisDownFailsClosed(t *testing.T) {
	r := testinfra.Redis(t)
	s := newStore(t, Options{Client: r.Client, Timeout: 100 * time.Millisecond})
	var runs atomic.Int64
	m, err := idempotency.NewHTTP(idempotency.HTTPOptions{Store: s, Unscoped: true})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runs.Add(1); w.WriteHeader(201) }))
	send := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/pay", strings.NewReader("x"))
		req.Header.Set("Idempotency-Key", "k-1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	g, err := idempotency.NewGuard(idempotency.GuardOptions{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	job := func(ctx context.Context) ([]byte, error) { runs.Add(1); return nil, nil }
	for _, outage := range []struct {
		name       string
		start, end func()
	}{{"stopped", r.Stop, r.Start}, {"paused", r.Pause, r.Resume}} {
		outage.start()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if w := send(); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Errorf("Redis %s: %d, want 503 with Retry-After", outage.name, w.Code)
		}
		if _, err := g.Do(ctx, "job-1", job); !errors.Is(err, idempotency.ErrUnavailable) {
			t.Errorf("Guard with Redis %s: %v, want ErrUnavailable", outage.name, err)
		}
		if ctx.Err() != nil {
			t.Errorf("Redis %s: calls hung past the 100ms Timeout", outage.name)
		}
		cancel()
		outage.end()
	}
	if runs.Load() != 0 {
		t.Fatalf("%d runs while Redis was down, want 0", runs.Load())
	}
	poll.Until(t, 10*time.Second, "the middleware recovering after the restart", func() bool { return send().Code == 201 })
	if w := send(); w.Code != 201 || w.Header().Get("Idempotent-Replayed") != "true" || runs.Load() != 1 {
		t.Fatalf("after recovery the repeat: %d, runs %d", w.Code, runs.Load())
	}
}

func TestBadOptions(t *testing.T) {
	r := testinfra.Redis(t)
	plain := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer plain.Close()
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, "Options.Client is required"},
		{Options{Client: r.Client, Timeout: -1}, "Options.Timeout must be > 0"},
		{Options{Client: plain}, "set ContextTimeoutEnabled: true"},
	} {
		if _, err := New(c.o); !errors.Is(err, idempotency.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v; want ErrInvalid saying %q", c.o, err, c.want)
		}
	}
}

// roundTrips counts commands sent to Redis (one EVALSHA is one round trip).
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// BenchmarkMiddleware measures the middleware over a real Redis for a
// first request (Begin + Complete) and a replay (Begin), reporting Redis
// round trips per request.
func BenchmarkMiddleware(b *testing.B) {
	r := testinfra.Redis(b)
	c := r.Server.NewClient(0)
	defer c.Close()
	hook := &roundTrips{}
	c.AddHook(hook)
	s := newStore(b, Options{Client: c})
	m, err := idempotency.NewHTTP(idempotency.HTTPOptions{Store: s, Unscoped: true})
	if err != nil {
		b.Fatal(err)
	}
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		w.Write([]byte(`{"id":"pay_123","amount":100}`))
	}))
	send := func(key string) int {
		req := httptest.NewRequest("POST", "/pay", strings.NewReader(`{"amount":100}`))
		req.Header.Set("Idempotency-Key", key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	send("warm") // loads the scripts
	b.Run("first", func(b *testing.B) {
		hook.n.Store(0)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if send("first-"+strconv.Itoa(i)) != 201 {
				b.Fatal("not 201")
			}
		}
		b.ReportMetric(float64(hook.n.Load())/float64(b.N), "roundtrips/op")
	})
	b.Run("replay", func(b *testing.B) {
		hook.n.Store(0)
		b.ReportAllocs()
		for b.Loop() {
			if send("warm") != 201 {
				b.Fatal("not 201")
			}
		}
		b.ReportMetric(float64(hook.n.Load())/float64(b.N), "roundtrips/op")
	})
}
