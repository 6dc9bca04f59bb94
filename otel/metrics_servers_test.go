package scalekitotel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimitredis"
)

// The Redis limiters, over a real Redis, give the Prometheus series too:
// decisions allowed and denied, a lease held, then, with Redis stopped,
// degraded decisions, errors and an open circuit.
func TestMetricsRedisMatchPrometheus(t *testing.T) {
	r := testinfra.Redis(t)
	ctx := context.Background()
	lim, err := ratelimitredis.New(ratelimitredis.Options{Client: r.Client, Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour}}, Timeout: testinfra.CallTimeout})
	check(t, err)
	conc, err := ratelimitredis.NewConcurrency(ratelimitredis.ConcurrencyOptions{Client: r.Client, Limit: 1, Timeout: testinfra.CallTimeout})
	check(t, err)
	t.Cleanup(func() { _ = conc.Close() })
	for _, want := range []bool{true, false} {
		if d, err := lim.Allow(ctx, "alice"); err != nil || d.Allowed != want {
			t.Fatalf("Allow = %v, %v; want allowed %v", d.Allowed, err, want)
		}
	}
	release, err := conc.Acquire(ctx, "bob")
	check(t, err)
	if _, err := conc.Acquire(ctx, "bob"); !errors.Is(err, ratelimit.ErrLimited) {
		t.Fatalf("second holder: %v, want ErrLimited", err)
	}
	add := func(a adder) {
		check(t, a.AddRedisLimiter("api", lim))
		check(t, a.AddRedisConcurrency("exports", conc))
	}
	got := compare(t, add)
	if got[`scalekit_ratelimit_redis_decisions_total{name=api,result=denied}`] != 1 ||
		got[`scalekit_ratelimit_redis_concurrency_leases_held{name=exports}`] != 1 ||
		got[`scalekit_ratelimit_redis_concurrency_acquisitions_total{name=exports,result=rejected}`] != 1 {
		t.Fatalf("values off: %v", got)
	}
	release()

	r.Stop()
	for range 4 { // three failures open the circuit; the fourth skips Redis
		if d, err := lim.Allow(ctx, "alice"); err != nil || !d.Allowed {
			t.Fatalf("with Redis down: %v, %v; want FailOpen", d.Allowed, err)
		}
	}
	got = compare(t, add)
	if got[`scalekit_ratelimit_redis_degraded_decisions_total{mode=fail_open,name=api}`] != 4 ||
		got[`scalekit_ratelimit_redis_errors_total{name=api}`] != 3 ||
		got[`scalekit_ratelimit_redis_circuit_state{name=api,state=open}`] != 1 {
		t.Fatalf("values off with Redis down: %v", got)
	}
}

// A Router over a real PostgreSQL primary and replica gives the
// Prometheus series: its own counters, the primary's and the replica's
// (by the replica attribute), their pools' and their Tracers' query
// counts, WAL positions in bytes. The monitor checks only in New
// (Interval 1h), so nothing moves between the two collections.
func TestMetricsDBRouterMatchPrometheus(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	r, err := dbrouter.Open(ctx, f.PrimaryURL, []string{f.ReplicaURL}, dbrouter.Options{ReplicaNames: []string{"replica-1"},
		Interval: time.Hour, CheckTimeout: 10 * time.Second})
	check(t, err)
	t.Cleanup(func() { _ = r.Close() })
	_, err = r.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY)")
	check(t, err)
	f.WaitReplicaCaughtUp()
	var n int
	for range 3 {
		check(t, r.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n))
	}
	check(t, r.QueryRow(dbrouter.Primary(ctx), "SELECT 1").Scan(&n))

	got := compare(t, func(a adder) { check(t, a.AddDBRouter("main", r)) })
	for k, v := range map[string]float64{
		`scalekit_dbrouter_replica_reads_total{name=main,replica=replica-1}`:                  3,
		`scalekit_dbrouter_replica_queries_total{name=main,replica=replica-1}`:                3,
		`scalekit_dbrouter_primary_calls_total{intent=write,name=main}`:                       1,
		`scalekit_dbrouter_primary_calls_total{intent=read,name=main}`:                        1,
		`scalekit_dbrouter_replica_healthy{name=main,replica=replica-1}`:                      1,
		`scalekit_dbrouter_primary_up{name=main}`:                                             1,
		`scalekit_dbrouter_primary_pool_connections{name=main,state=constructing}`:            0,
		`scalekit_dbrouter_replica_pool_canceled_acquires_total{name=main,replica=replica-1}`: 0,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if got[`scalekit_dbrouter_primary_wal_lsn_bytes{name=main}`] <= 0 || got[`scalekit_dbrouter_replica_pool_acquires_total{name=main,replica=replica-1}`] < 3 {
		t.Errorf("WAL position or acquires missing: %v", got)
	}
}
