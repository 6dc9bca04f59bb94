package health_test

import (
	"context"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// TestRealDependencies: readiness follows a real Redis and a real
// PostgreSQL going down (stopped), hanging (paused) and coming back.
func TestRealDependencies(t *testing.T) {
	r := testinfra.Redis(t)
	pg := testinfra.PostgresExclusive(t)
	h, err := health.New(health.Options{CacheTTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.Add(health.Check{Name: "redis", Timeout: 300 * time.Millisecond, Func: func(ctx context.Context) error { return r.Client.Ping(ctx).Err() }})
	h.Add(health.Check{Name: "postgres", Timeout: 300 * time.Millisecond, Func: pg.Primary.Ping})
	ctx := context.Background()
	status := func() (health.Status, map[string]health.Status) {
		time.Sleep(2 * time.Millisecond) // past the cache TTL
		rep := h.Run(ctx, health.Readiness)
		per := map[string]health.Status{}
		for _, res := range rep.Results {
			per[res.Name] = res.Status
		}
		return rep.Status, per
	}
	if st, per := status(); st != health.Pass {
		t.Fatalf("all up: %s %v", st, per)
	}

	r.Stop()
	if st, per := status(); st != health.Fail || per["redis"] != health.Fail || per["postgres"] != health.Pass {
		t.Fatalf("redis stopped: %s %v", st, per)
	}
	r.Start()
	if st, per := status(); st != health.Pass {
		t.Fatalf("redis back: %s %v", st, per)
	}

	pg.StopPrimary(testinfra.StopFast)
	if st, per := status(); st != health.Fail || per["postgres"] != health.Fail {
		t.Fatalf("postgres stopped: %s %v", st, per)
	}
	pg.StartPrimary()
	if st, per := status(); st != health.Pass {
		t.Fatalf("postgres back: %s %v", st, per)
	}

	// A hung server: the probe still answers, within the check timeout.
	if err := pg.Cluster.Primary.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, per := status()
	took := time.Since(start)
	pg.Cluster.Primary.Resume()
	if st != health.Fail || per["postgres"] != health.Fail {
		t.Fatalf("postgres paused: %s %v", st, per)
	}
	if took > 2*time.Second {
		t.Fatalf("probe against a hung database took %v; the 300ms timeout should bound it", took)
	}
	t.Logf("probe against a paused PostgreSQL answered fail in %v", took)
}
