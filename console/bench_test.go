package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/clock"
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
	benchGet(b, con, "/")
}

// benchGet renders path for the benchmark's loop.
func benchGet(b *testing.B, con *console.Console, path string) {
	r := httptest.NewRequest("GET", path, nil)
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

// BenchmarkPages renders each page with 50 primitives that do no I/O (20
// breakers, 10 caches, 10 SLOs, 5 dbrouters with 2 replicas, 5 limiters)
// and a full history: 3h of samples every 10s (1081 per series). The
// issue's goal is <= 50 ms a render.
func BenchmarkPages(b *testing.B) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	con := newConsole(b, console.Options{Clock: clk})
	var brs []*breaker.Breaker
	for i := range 20 {
		br := newBreaker(b, fmt.Sprint("breaker-", i))
		brs = append(brs, br)
		must(b, con.AddBreaker(br))
	}
	caches := make([]*mutCache, 10)
	var slos []*slo.SLO
	for i := range 10 {
		caches[i] = &mutCache{}
		must(b, con.AddCache(fmt.Sprint("cache-", i), caches[i]))
		s, err := slo.New(slo.Options{Name: fmt.Sprint("slo-", i), Target: 0.999, Window: 30 * 24 * time.Hour, Clock: clk})
		must(b, err)
		slos = append(slos, s)
		must(b, con.AddSLO(s))
	}
	routers := make([]*mutRouter, 5)
	lims := make([]*fakeLimiter, 5)
	for i := range 5 {
		routers[i] = &mutRouter{st: routerstats.Stats{Primary: routerstats.PrimaryStats{Up: true},
			Replicas: []routerstats.ReplicaStats{{Name: "r1", Healthy: true, LagKnown: true}, {Name: "r2", Healthy: true, LagKnown: true}}}}
		must(b, con.AddDBRouter(fmt.Sprint("db-", i), routers[i]))
		lims[i] = &fakeLimiter{}
		must(b, con.AddLimiter(fmt.Sprint("limiter-", i), lims[i]))
	}
	must(b, con.Start(ctx))
	defer con.Close()
	for k := range 1080 {
		clk.Add(10 * time.Second)
		for _, c := range caches {
			c.st.Hits += uint64(k % 50)
			c.st.Misses += 5
			c.st.Loads += 5
		}
		for _, r := range routers {
			r.st.Replicas[0].LagBytes = int64(k%100) << 10
			r.st.Replicas[1].LagBytes = int64(k%30) << 12
		}
		for _, l := range lims {
			l.st.Allowed += 100
			l.st.Denied += uint64(k % 7)
		}
		for _, s := range slos {
			for j := range 20 {
				s.Record(j != k%20)
			}
		}
		if k%100 == 0 {
			brs[k%20].Do(ctx, func(context.Context) error { return errors.New("x") })
		}
		console.SampleNow(con)
	}
	for _, path := range []string{"/", "/breakers", "/limiters", "/caches", "/dbrouters", "/slos"} {
		name := path[1:]
		if name == "" {
			name = "overview"
		}
		b.Run(name, func(b *testing.B) { benchGet(b, con, path) })
	}
}
