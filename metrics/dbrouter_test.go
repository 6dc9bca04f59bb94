package metrics_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/metrics"
)

// expectExcept is expect without the families in varying, whose values
// change from run to run.
func expectExcept(t testing.TB, c prometheus.Collector, prefix string, varying []string, want string) {
	t.Helper()
	got, err := gatherTextFunc(c, func(name string) bool {
		return strings.HasPrefix(name, prefix) && !slices.Contains(varying, name)
	})
	if err != nil {
		t.Fatal(err)
	}
	if want = dedent(want); got != want {
		t.Errorf("%s metrics:\n--- got\n%s--- want\n%s", prefix, got, want)
	}
}

// samples returns the values of family name in c, keyed by their labels
// but instance_name (name="main",replica="replica-1").
func samples(t testing.TB, c prometheus.Collector, name string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	noErr(t, reg.Register(c))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				if l.GetName() != metrics.InstanceLabel {
					ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
				}
			}
			sort.Strings(ls)
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[strings.Join(ls, ",")] = v
		}
	}
	return out
}

// TestDBRouter routes calls through a real Router (made by Open, so its
// pools have Tracers) over a real PostgreSQL primary and streaming
// replica: reads on the replica, writes, a token read that waits for the
// replica and one that gives up on it, a "read" that writes, then the
// replica stopped: two failed reads eject it and the next falls back to
// the primary. A second Router, made while the replica is down with
// NoFallback, refuses a read. The monitor checks only once, in New
// (Interval 1h), so every count comes from the test's calls.
func TestDBRouter(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	open := func(o dbrouter.Options) *dbrouter.Router {
		t.Helper()
		o.ReplicaNames, o.Interval, o.CheckTimeout = []string{"replica-1"}, time.Hour, 10*time.Second
		r := must[*dbrouter.Router](t)(dbrouter.Open(ctx, f.PrimaryURL, []string{f.ReplicaURL}, o))
		t.Cleanup(func() { r.Close() })
		return r
	}
	start := time.Now()
	r := open(dbrouter.Options{TokenWait: time.Second})
	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddDBRouter("main", r))
	count := func(ctx context.Context) (n int, err error) {
		err = r.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n)
		return n, err
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := r.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	exec("CREATE TABLE items (id int PRIMARY KEY)")
	exec("INSERT INTO items VALUES (1), (2)")
	tok := must[dbrouter.Token](t)(r.WriteToken(ctx)) // a traced query on the primary
	f.WaitReplicaCaughtUp()
	for range 2 {
		must[int](t)(count(ctx)) // on the replica
	}
	// The monitor's reading (from New) is behind tok: the read polls the
	// replica, which has replayed it.
	if n := must[int](t)(count(dbrouter.WithToken(ctx, tok))); n != 2 {
		t.Fatalf("a token read saw %d rows, want 2", n)
	}
	must[int](t)(count(dbrouter.Primary(ctx)))
	// A "read" that writes: the replica refuses it (25006), the primary
	// runs it.
	var id int
	noErr(t, r.QueryRow(ctx, "INSERT INTO items VALUES (3) RETURNING id").Scan(&id))
	// With replay paused no replica reaches the token: after TokenWait the
	// read goes to the primary.
	f.PauseReplay()
	exec("INSERT INTO items VALUES (4)")
	tok = must[dbrouter.Token](t)(r.WriteToken(ctx))
	if n := must[int](t)(count(dbrouter.WithToken(ctx, tok))); n != 4 {
		t.Fatalf("a token read saw %d rows, want 4", n)
	}
	f.ResumeReplay()

	varying := []string{ // WAL positions, lag, times and durations
		"scalekit_dbrouter_primary_last_check_timestamp_seconds", "scalekit_dbrouter_primary_query_duration_seconds_total",
		"scalekit_dbrouter_primary_wal_lsn_bytes", "scalekit_dbrouter_replica_lag_bytes",
		"scalekit_dbrouter_replica_last_check_timestamp_seconds", "scalekit_dbrouter_replica_query_duration_seconds_total",
		"scalekit_dbrouter_replica_replay_lsn_bytes",
		// pool state: connection counts depend on pgxpool's timing
		"scalekit_dbrouter_primary_pool_connections", "scalekit_dbrouter_primary_pool_max_connections",
		"scalekit_dbrouter_primary_pool_acquires_total", "scalekit_dbrouter_primary_pool_acquire_seconds_total",
		"scalekit_dbrouter_primary_pool_empty_acquires_total", "scalekit_dbrouter_primary_pool_empty_acquire_wait_seconds_total",
		"scalekit_dbrouter_primary_pool_canceled_acquires_total",
		"scalekit_dbrouter_replica_pool_connections", "scalekit_dbrouter_replica_pool_max_connections",
		"scalekit_dbrouter_replica_pool_acquires_total", "scalekit_dbrouter_replica_pool_acquire_seconds_total",
		"scalekit_dbrouter_replica_pool_empty_acquires_total", "scalekit_dbrouter_replica_pool_empty_acquire_wait_seconds_total",
		"scalekit_dbrouter_replica_pool_canceled_acquires_total",
	}
	// The pools' state (pgxpool.Stat): every query above acquired a
	// connection of its pool, and none is held between calls.
	if n := samples(t, m, "scalekit_dbrouter_primary_pool_acquires_total")[`name="main"`]; n < 8 {
		t.Errorf("primary pool acquires %v, want at least the 8 primary queries", n)
	}
	if n := samples(t, m, "scalekit_dbrouter_replica_pool_acquires_total")[`name="main",replica="replica-1"`]; n < 3 {
		t.Errorf("replica pool acquires %v, want at least the 3 replica reads", n)
	}
	if n := samples(t, m, "scalekit_dbrouter_primary_pool_max_connections")[`name="main"`]; n != float64(r.PrimaryPool().Config().MaxConns) {
		t.Errorf("primary pool max_connections %v, want %d", n, r.PrimaryPool().Config().MaxConns)
	}
	if conns := samples(t, m, "scalekit_dbrouter_primary_pool_connections"); conns[`name="main",state="acquired"`] != 0 || conns[`name="main",state="idle"`] < 1 {
		t.Errorf("primary pool connections %v, want none acquired and some idle", conns)
	}
	// The replica's Tracer saw 3 reads and the INSERT it refused; the
	// primary's 8 queries: 3 Execs, 2 WriteTokens, the Primary(ctx) read,
	// the INSERT again and the token read that gave up on the replica.
	expectExcept(t, m, "scalekit_dbrouter_", varying, `
		# TYPE scalekit_dbrouter_failovers_total counter
		scalekit_dbrouter_failovers_total{instance_name="api-1",name="main"} 0
		# TYPE scalekit_dbrouter_fallbacks_total counter
		scalekit_dbrouter_fallbacks_total{instance_name="api-1",name="main"} 0
		# TYPE scalekit_dbrouter_forged_tokens_total counter
		scalekit_dbrouter_forged_tokens_total{instance_name="api-1",name="main"} 0
		# TYPE scalekit_dbrouter_lost_tokens_total counter
		scalekit_dbrouter_lost_tokens_total{instance_name="api-1",name="main"} 0
		# TYPE scalekit_dbrouter_no_replica_errors_total counter
		scalekit_dbrouter_no_replica_errors_total{instance_name="api-1",name="main"} 0
		# TYPE scalekit_dbrouter_primary_calls_total counter
		scalekit_dbrouter_primary_calls_total{instance_name="api-1",intent="read",name="main"} 3
		scalekit_dbrouter_primary_calls_total{instance_name="api-1",intent="write",name="main"} 3
		# TYPE scalekit_dbrouter_primary_checks_total counter
		scalekit_dbrouter_primary_checks_total{instance_name="api-1",name="main",result="failure"} 0
		scalekit_dbrouter_primary_checks_total{instance_name="api-1",name="main",result="success"} 1
		# TYPE scalekit_dbrouter_primary_queries_total counter
		scalekit_dbrouter_primary_queries_total{instance_name="api-1",name="main"} 8
		# TYPE scalekit_dbrouter_primary_query_errors_total counter
		scalekit_dbrouter_primary_query_errors_total{instance_name="api-1",name="main"} 0
		# TYPE scalekit_dbrouter_primary_slow_queries_total counter
		scalekit_dbrouter_primary_slow_queries_total{instance_name="api-1",name="main"} 0
		# TYPE scalekit_dbrouter_primary_timeline gauge
		scalekit_dbrouter_primary_timeline{instance_name="api-1",name="main"} 1
		# TYPE scalekit_dbrouter_primary_up gauge
		scalekit_dbrouter_primary_up{instance_name="api-1",name="main"} 1
		# TYPE scalekit_dbrouter_replica_checks_total counter
		scalekit_dbrouter_replica_checks_total{instance_name="api-1",name="main",replica="replica-1",result="failure"} 0
		scalekit_dbrouter_replica_checks_total{instance_name="api-1",name="main",replica="replica-1",result="success"} 1
		# TYPE scalekit_dbrouter_replica_ejections_total counter
		scalekit_dbrouter_replica_ejections_total{instance_name="api-1",name="main",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_failed_reads_total counter
		scalekit_dbrouter_replica_failed_reads_total{instance_name="api-1",name="main",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_healthy gauge
		scalekit_dbrouter_replica_healthy{instance_name="api-1",name="main",replica="replica-1"} 1
		# TYPE scalekit_dbrouter_replica_in_flight gauge
		scalekit_dbrouter_replica_in_flight{instance_name="api-1",name="main",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_queries_total counter
		scalekit_dbrouter_replica_queries_total{instance_name="api-1",name="main",replica="replica-1"} 4
		# TYPE scalekit_dbrouter_replica_query_errors_total counter
		scalekit_dbrouter_replica_query_errors_total{instance_name="api-1",name="main",replica="replica-1"} 1
		# TYPE scalekit_dbrouter_replica_readmissions_total counter
		scalekit_dbrouter_replica_readmissions_total{instance_name="api-1",name="main",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_reads_total counter
		scalekit_dbrouter_replica_reads_total{instance_name="api-1",name="main",replica="replica-1"} 4
		# TYPE scalekit_dbrouter_replica_replay_regressions_total counter
		scalekit_dbrouter_replica_replay_regressions_total{instance_name="api-1",name="main",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_slow_queries_total counter
		scalekit_dbrouter_replica_slow_queries_total{instance_name="api-1",name="main",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_retries_total counter
		scalekit_dbrouter_retries_total{instance_name="api-1",name="main",reason="read_only"} 1
		scalekit_dbrouter_retries_total{instance_name="api-1",name="main",reason="replica_failed"} 0
		# TYPE scalekit_dbrouter_split_brain_checks_total counter
		scalekit_dbrouter_split_brain_checks_total{instance_name="api-1",name="main"} 0
		# TYPE scalekit_dbrouter_token_primary_reads_total counter
		scalekit_dbrouter_token_primary_reads_total{instance_name="api-1",name="main"} 1
		# TYPE scalekit_dbrouter_token_waits_total counter
		scalekit_dbrouter_token_waits_total{instance_name="api-1",name="main"} 1
	`)
	// The varying ones: present, and sane.
	now := float64(time.Now().UnixNano()) / 1e9
	for _, name := range []string{"scalekit_dbrouter_primary_last_check_timestamp_seconds", "scalekit_dbrouter_replica_last_check_timestamp_seconds"} {
		for k, v := range samples(t, m, name) {
			if v < float64(start.Unix()) || v > now {
				t.Errorf("%s{%s} = %v, want a time during the test", name, k, v)
			}
		}
	}
	primaryLSN := samples(t, m, "scalekit_dbrouter_primary_wal_lsn_bytes")[`name="main"`]
	replayLSN := samples(t, m, "scalekit_dbrouter_replica_replay_lsn_bytes")[`name="main",replica="replica-1"`]
	if primaryLSN <= 0 || replayLSN < primaryLSN { // the token poll read the replica after New's check
		t.Errorf("WAL positions: primary %v, replica %v; want both > 0, the replica's read later", primaryLSN, replayLSN)
	}
	if lag, ok := samples(t, m, "scalekit_dbrouter_replica_lag_bytes")[`name="main",replica="replica-1"`]; !ok || lag < 0 || lag > 16<<20 {
		t.Errorf("replica lag %v (reported: %v), want a measured lag under MaxLagBytes", lag, ok)
	}
	if d := samples(t, m, "scalekit_dbrouter_primary_query_duration_seconds_total")[`name="main"`]; d <= 0 || d > time.Since(start).Seconds() {
		t.Errorf("primary query time %vs", d)
	}

	// The replica down: each of two reads fails on it and runs on the
	// primary, which ejects it (EjectAfter 2); the third falls back.
	f.StopReplica(testinfra.StopFast)
	for range 3 {
		if n := must[int](t)(count(ctx)); n != 4 {
			t.Fatalf("a read with the replica down saw %d rows, want 4", n)
		}
	}
	strict := open(dbrouter.Options{NoFallback: true}) // its replica never joins
	noErr(t, m.AddDBRouter("strict", strict))
	if err := strict.QueryRow(ctx, "SELECT 1").Scan(new(int)); !errors.Is(err, dbrouter.ErrNoReplica) {
		t.Fatalf("strict read with no replica: %v, want ErrNoReplica", err)
	}
	// The Tracer of the replica may or may not see the failed reads (a
	// dead pooled connection does, a refused new one does not).
	varying = append(varying, "scalekit_dbrouter_replica_queries_total", "scalekit_dbrouter_replica_query_errors_total")
	expectExcept(t, m, "scalekit_dbrouter_", varying, `
		# TYPE scalekit_dbrouter_failovers_total counter
		scalekit_dbrouter_failovers_total{instance_name="api-1",name="main"} 0
		scalekit_dbrouter_failovers_total{instance_name="api-1",name="strict"} 0
		# TYPE scalekit_dbrouter_fallbacks_total counter
		scalekit_dbrouter_fallbacks_total{instance_name="api-1",name="main"} 1
		scalekit_dbrouter_fallbacks_total{instance_name="api-1",name="strict"} 0
		# TYPE scalekit_dbrouter_forged_tokens_total counter
		scalekit_dbrouter_forged_tokens_total{instance_name="api-1",name="main"} 0
		scalekit_dbrouter_forged_tokens_total{instance_name="api-1",name="strict"} 0
		# TYPE scalekit_dbrouter_lost_tokens_total counter
		scalekit_dbrouter_lost_tokens_total{instance_name="api-1",name="main"} 0
		scalekit_dbrouter_lost_tokens_total{instance_name="api-1",name="strict"} 0
		# TYPE scalekit_dbrouter_no_replica_errors_total counter
		scalekit_dbrouter_no_replica_errors_total{instance_name="api-1",name="main"} 0
		scalekit_dbrouter_no_replica_errors_total{instance_name="api-1",name="strict"} 1
		# TYPE scalekit_dbrouter_primary_calls_total counter
		scalekit_dbrouter_primary_calls_total{instance_name="api-1",intent="read",name="main"} 6
		scalekit_dbrouter_primary_calls_total{instance_name="api-1",intent="read",name="strict"} 0
		scalekit_dbrouter_primary_calls_total{instance_name="api-1",intent="write",name="main"} 3
		scalekit_dbrouter_primary_calls_total{instance_name="api-1",intent="write",name="strict"} 0
		# TYPE scalekit_dbrouter_primary_checks_total counter
		scalekit_dbrouter_primary_checks_total{instance_name="api-1",name="main",result="failure"} 0
		scalekit_dbrouter_primary_checks_total{instance_name="api-1",name="main",result="success"} 1
		scalekit_dbrouter_primary_checks_total{instance_name="api-1",name="strict",result="failure"} 0
		scalekit_dbrouter_primary_checks_total{instance_name="api-1",name="strict",result="success"} 1
		# TYPE scalekit_dbrouter_primary_queries_total counter
		scalekit_dbrouter_primary_queries_total{instance_name="api-1",name="main"} 11
		scalekit_dbrouter_primary_queries_total{instance_name="api-1",name="strict"} 0
		# TYPE scalekit_dbrouter_primary_query_errors_total counter
		scalekit_dbrouter_primary_query_errors_total{instance_name="api-1",name="main"} 0
		scalekit_dbrouter_primary_query_errors_total{instance_name="api-1",name="strict"} 0
		# TYPE scalekit_dbrouter_primary_slow_queries_total counter
		scalekit_dbrouter_primary_slow_queries_total{instance_name="api-1",name="main"} 0
		scalekit_dbrouter_primary_slow_queries_total{instance_name="api-1",name="strict"} 0
		# TYPE scalekit_dbrouter_primary_timeline gauge
		scalekit_dbrouter_primary_timeline{instance_name="api-1",name="main"} 1
		scalekit_dbrouter_primary_timeline{instance_name="api-1",name="strict"} 1
		# TYPE scalekit_dbrouter_primary_up gauge
		scalekit_dbrouter_primary_up{instance_name="api-1",name="main"} 1
		scalekit_dbrouter_primary_up{instance_name="api-1",name="strict"} 1
		# TYPE scalekit_dbrouter_replica_checks_total counter
		scalekit_dbrouter_replica_checks_total{instance_name="api-1",name="main",replica="replica-1",result="failure"} 0
		scalekit_dbrouter_replica_checks_total{instance_name="api-1",name="main",replica="replica-1",result="success"} 1
		scalekit_dbrouter_replica_checks_total{instance_name="api-1",name="strict",replica="replica-1",result="failure"} 1
		scalekit_dbrouter_replica_checks_total{instance_name="api-1",name="strict",replica="replica-1",result="success"} 0
		# TYPE scalekit_dbrouter_replica_ejections_total counter
		scalekit_dbrouter_replica_ejections_total{instance_name="api-1",name="main",replica="replica-1"} 1
		scalekit_dbrouter_replica_ejections_total{instance_name="api-1",name="strict",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_failed_reads_total counter
		scalekit_dbrouter_replica_failed_reads_total{instance_name="api-1",name="main",replica="replica-1"} 2
		scalekit_dbrouter_replica_failed_reads_total{instance_name="api-1",name="strict",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_healthy gauge
		scalekit_dbrouter_replica_healthy{instance_name="api-1",name="main",replica="replica-1"} 0
		scalekit_dbrouter_replica_healthy{instance_name="api-1",name="strict",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_in_flight gauge
		scalekit_dbrouter_replica_in_flight{instance_name="api-1",name="main",replica="replica-1"} 0
		scalekit_dbrouter_replica_in_flight{instance_name="api-1",name="strict",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_readmissions_total counter
		scalekit_dbrouter_replica_readmissions_total{instance_name="api-1",name="main",replica="replica-1"} 0
		scalekit_dbrouter_replica_readmissions_total{instance_name="api-1",name="strict",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_reads_total counter
		scalekit_dbrouter_replica_reads_total{instance_name="api-1",name="main",replica="replica-1"} 6
		scalekit_dbrouter_replica_reads_total{instance_name="api-1",name="strict",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_replay_regressions_total counter
		scalekit_dbrouter_replica_replay_regressions_total{instance_name="api-1",name="main",replica="replica-1"} 0
		scalekit_dbrouter_replica_replay_regressions_total{instance_name="api-1",name="strict",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_replica_slow_queries_total counter
		scalekit_dbrouter_replica_slow_queries_total{instance_name="api-1",name="main",replica="replica-1"} 0
		scalekit_dbrouter_replica_slow_queries_total{instance_name="api-1",name="strict",replica="replica-1"} 0
		# TYPE scalekit_dbrouter_retries_total counter
		scalekit_dbrouter_retries_total{instance_name="api-1",name="main",reason="read_only"} 1
		scalekit_dbrouter_retries_total{instance_name="api-1",name="main",reason="replica_failed"} 2
		scalekit_dbrouter_retries_total{instance_name="api-1",name="strict",reason="read_only"} 0
		scalekit_dbrouter_retries_total{instance_name="api-1",name="strict",reason="replica_failed"} 0
		# TYPE scalekit_dbrouter_split_brain_checks_total counter
		scalekit_dbrouter_split_brain_checks_total{instance_name="api-1",name="main"} 0
		scalekit_dbrouter_split_brain_checks_total{instance_name="api-1",name="strict"} 0
		# TYPE scalekit_dbrouter_token_primary_reads_total counter
		scalekit_dbrouter_token_primary_reads_total{instance_name="api-1",name="main"} 1
		scalekit_dbrouter_token_primary_reads_total{instance_name="api-1",name="strict"} 0
		# TYPE scalekit_dbrouter_token_waits_total counter
		scalekit_dbrouter_token_waits_total{instance_name="api-1",name="main"} 1
		scalekit_dbrouter_token_waits_total{instance_name="api-1",name="strict"} 0
	`)
	// The strict router never measured its replica's lag: no series, where
	// 0 would claim it caught up.
	if n := testutil.CollectAndCount(m, "scalekit_dbrouter_replica_lag_bytes"); n != 1 {
		t.Errorf("%d lag series, want main's only", n)
	}
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
