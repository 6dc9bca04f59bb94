package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/console"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/slo"
)

// BenchmarkOverview renders the overview with 50 primitives: 20
// breakers (some open), 10 caches, 10 SLOs with traffic, 5 dbrouters with
// 2 replicas and 5 queue clients on the in-memory backend (2 queues each).
// The goal is <= 50 ms a render.
func BenchmarkOverview(b *testing.B) {
	ctx := context.Background()
	con := newConsole(b, console.Options{})
	for i := range 20 {
		br := newBreaker(b, fmt.Sprint("breaker-", i))
		if i%4 == 0 {
			br.Do(ctx, func(context.Context) error { return errors.New("x") })
		}
		must(b, con.AddBreaker(br))
	}
	for i := range 10 {
		must(b, con.AddCache(fmt.Sprint("cache-", i), fakeCache{cache.Stats{Hits: 90, Misses: 10, Entries: 1000}}))
		s, err := slo.New(slo.Options{Name: fmt.Sprint("slo-", i), Target: 0.999, Window: 30 * 24 * time.Hour})
		must(b, err)
		for j := range 1000 {
			s.Record(j%100 != 0)
		}
		must(b, con.AddSLO(s))
	}
	for i := range 5 {
		must(b, con.AddDBRouter(fmt.Sprint("db-", i), fakeRouter{routerstats.Stats{Primary: routerstats.PrimaryStats{Up: true, LastCheck: time.Now()},
			Replicas: []routerstats.ReplicaStats{{Name: "r1", Healthy: true, LagKnown: true, LagBytes: 1 << 10}, {Name: "r2", Reason: "lag"}}}}))
		cl, err := queue.NewClient(queue.ClientOptions{Backend: queue.NewMemoryBackend(queue.MemoryBackendOptions{})})
		must(b, err)
		for range 100 {
			_, err := cl.Enqueue(ctx, "mail", "send", nil, queue.EnqueueOptions{})
			must(b, err)
		}
		must(b, con.AddQueue(fmt.Sprint("queue-", i), cl, "mail", "billing"))
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", token)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		con.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
