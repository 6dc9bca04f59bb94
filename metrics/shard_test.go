package metrics_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/shard"
)

// newShardRouter builds a shard.Router over stand-in clusters (routing
// never calls into a cluster's dbrouter.Router), 8 virtual shards on a
// and b, c holding none yet.
func newShardRouter(t testing.TB) *shard.Router {
	t.Helper()
	return must[*shard.Router](t)(shard.New(shard.Options{
		VirtualShards: 8,
		Map:           shard.EvenMap(1, 8, "a", "b"),
		Clusters:      map[string]*dbrouter.Router{"a": new(dbrouter.Router), "b": new(dbrouter.Router), "c": new(dbrouter.Router)},
	}))
}

// TestShard moves virtual shards to c, has a stale map refused and a call
// without a key, then compares the exposition.
func TestShard(t *testing.T) {
	r := newShardRouter(t)
	m := newCollector(t, metrics.Options{})
	noErr(t, m.AddShard("orders", r))
	if err := m.AddShard("x", nil); !errors.Is(err, metrics.ErrInvalid) {
		t.Errorf("AddShard(nil) = %v", err)
	}
	if err := m.AddShard("orders", newShardRouter(t)); !errors.Is(err, metrics.ErrDuplicate) {
		t.Errorf("AddShard under a name taken = %v", err)
	}
	expect(t, m, "scalekit_shard_", `
		# TYPE scalekit_shard_cluster_fanout_calls_total counter
		scalekit_shard_cluster_fanout_calls_total{cluster="a",name="orders"} 0
		scalekit_shard_cluster_fanout_calls_total{cluster="b",name="orders"} 0
		scalekit_shard_cluster_fanout_calls_total{cluster="c",name="orders"} 0
		# TYPE scalekit_shard_cluster_fanout_errors_total counter
		scalekit_shard_cluster_fanout_errors_total{cluster="a",name="orders"} 0
		scalekit_shard_cluster_fanout_errors_total{cluster="b",name="orders"} 0
		scalekit_shard_cluster_fanout_errors_total{cluster="c",name="orders"} 0
		# TYPE scalekit_shard_cluster_fanout_timeouts_total counter
		scalekit_shard_cluster_fanout_timeouts_total{cluster="a",name="orders"} 0
		scalekit_shard_cluster_fanout_timeouts_total{cluster="b",name="orders"} 0
		scalekit_shard_cluster_fanout_timeouts_total{cluster="c",name="orders"} 0
		# TYPE scalekit_shard_cluster_vshards gauge
		scalekit_shard_cluster_vshards{cluster="a",name="orders"} 4
		scalekit_shard_cluster_vshards{cluster="b",name="orders"} 4
		scalekit_shard_cluster_vshards{cluster="c",name="orders"} 0
		# TYPE scalekit_shard_clusters gauge
		scalekit_shard_clusters{name="orders"} 3
		# TYPE scalekit_shard_fanouts_failed_total counter
		scalekit_shard_fanouts_failed_total{name="orders"} 0
		# TYPE scalekit_shard_fanouts_total counter
		scalekit_shard_fanouts_total{name="orders"} 0
		# TYPE scalekit_shard_map_swaps_total counter
		scalekit_shard_map_swaps_total{name="orders"} 0
		# TYPE scalekit_shard_map_version gauge
		scalekit_shard_map_version{name="orders"} 1
		# TYPE scalekit_shard_maps_refused_total counter
		scalekit_shard_maps_refused_total{name="orders"} 0
		# TYPE scalekit_shard_no_key_total counter
		scalekit_shard_no_key_total{name="orders"} 0
		# TYPE scalekit_shard_virtual_shards gauge
		scalekit_shard_virtual_shards{name="orders"} 8
	`)

	next := r.Map()
	next.Version = 2
	next.Assign[0], next.Assign[7] = "c", "c"
	noErr(t, r.SetMap(next))
	if err := r.SetMap(shard.EvenMap(2, 8, "a")); !errors.Is(err, shard.ErrStaleMap) {
		t.Fatalf("SetMap(stale) = %v", err)
	}
	if _, err := r.For(shard.Key{}); !errors.Is(err, shard.ErrNoShardKey) {
		t.Fatalf("For(zero Key) = %v", err)
	}
	// A fan-out in which b fails and c times out.
	err := r.Each(context.Background(), shard.EachOptions{Timeout: time.Millisecond}, func(ctx context.Context, tg shard.Target) error {
		switch tg.Cluster {
		case "b":
			return errors.New("down")
		case "c":
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	if !errors.Is(err, shard.ErrClusterTimeout) {
		t.Fatalf("Each = %v", err)
	}
	expect(t, m, "scalekit_shard_", `
		# TYPE scalekit_shard_cluster_fanout_calls_total counter
		scalekit_shard_cluster_fanout_calls_total{cluster="a",name="orders"} 1
		scalekit_shard_cluster_fanout_calls_total{cluster="b",name="orders"} 1
		scalekit_shard_cluster_fanout_calls_total{cluster="c",name="orders"} 1
		# TYPE scalekit_shard_cluster_fanout_errors_total counter
		scalekit_shard_cluster_fanout_errors_total{cluster="a",name="orders"} 0
		scalekit_shard_cluster_fanout_errors_total{cluster="b",name="orders"} 1
		scalekit_shard_cluster_fanout_errors_total{cluster="c",name="orders"} 1
		# TYPE scalekit_shard_cluster_fanout_timeouts_total counter
		scalekit_shard_cluster_fanout_timeouts_total{cluster="a",name="orders"} 0
		scalekit_shard_cluster_fanout_timeouts_total{cluster="b",name="orders"} 0
		scalekit_shard_cluster_fanout_timeouts_total{cluster="c",name="orders"} 1
		# TYPE scalekit_shard_cluster_vshards gauge
		scalekit_shard_cluster_vshards{cluster="a",name="orders"} 3
		scalekit_shard_cluster_vshards{cluster="b",name="orders"} 3
		scalekit_shard_cluster_vshards{cluster="c",name="orders"} 2
		# TYPE scalekit_shard_clusters gauge
		scalekit_shard_clusters{name="orders"} 3
		# TYPE scalekit_shard_fanouts_failed_total counter
		scalekit_shard_fanouts_failed_total{name="orders"} 1
		# TYPE scalekit_shard_fanouts_total counter
		scalekit_shard_fanouts_total{name="orders"} 1
		# TYPE scalekit_shard_map_swaps_total counter
		scalekit_shard_map_swaps_total{name="orders"} 1
		# TYPE scalekit_shard_map_version gauge
		scalekit_shard_map_version{name="orders"} 2
		# TYPE scalekit_shard_maps_refused_total counter
		scalekit_shard_maps_refused_total{name="orders"} 1
		# TYPE scalekit_shard_no_key_total counter
		scalekit_shard_no_key_total{name="orders"} 1
		# TYPE scalekit_shard_virtual_shards gauge
		scalekit_shard_virtual_shards{name="orders"} 8
	`)
}

// TestShardScrapesDuringSwaps scrapes while goroutines swap maps, under
// -race: every scrape sees one cluster_vshards series per cluster.
func TestShardScrapesDuringSwaps(t *testing.T) {
	r := newShardRouter(t)
	m := newCollector(t, metrics.Options{})
	noErr(t, m.AddShard("orders", r))
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range 50 {
				_ = r.SetMap(shard.EvenMap(int64(2+2*v+g), 8, "a", "b", "c")) // some are stale: fine
			}
		}()
	}
	for range 20 {
		if n := testutil.CollectAndCount(m, "scalekit_shard_cluster_vshards"); n != 3 {
			t.Fatalf("cluster_vshards series = %d, want 3", n)
		}
	}
	wg.Wait()
	if st := r.Stats(); st.MapSwaps+st.MapRefused != 100 {
		t.Errorf("Stats %+v: swaps + refused should be 100", st)
	}
}

// TestShardStore reports a MapStore's counters (Stats reads no server: the
// pool points at a closed port).
func TestShardStore(t *testing.T) {
	s := newShardStore(t)
	m := newCollector(t, metrics.Options{})
	noErr(t, m.AddShardStore("orders", s))
	if err := m.AddShardStore("x", nil); !errors.Is(err, metrics.ErrInvalid) {
		t.Errorf("AddShardStore(nil) = %v", err)
	}
	if err := m.AddShardStore("orders", s); !errors.Is(err, metrics.ErrDuplicate) {
		t.Errorf("AddShardStore under a name taken = %v", err)
	}
	expect(t, m, "scalekit_shard_store_", `
		# TYPE scalekit_shard_store_last_move_fence_seconds gauge
		scalekit_shard_store_last_move_fence_seconds{name="orders"} 0
		# TYPE scalekit_shard_store_moves_total counter
		scalekit_shard_store_moves_total{name="orders"} 0
		# TYPE scalekit_shard_store_notifications_total counter
		scalekit_shard_store_notifications_total{name="orders"} 0
		# TYPE scalekit_shard_store_polls_total counter
		scalekit_shard_store_polls_total{name="orders"} 0
		# TYPE scalekit_shard_store_reconnects_total counter
		scalekit_shard_store_reconnects_total{name="orders"} 0
		# TYPE scalekit_shard_store_retried_writes_total counter
		scalekit_shard_store_retried_writes_total{name="orders"} 0
	`)
}

// newShardStore is a shard.MapStore on a pool to a closed port: Stats
// needs no server.
func newShardStore(t testing.TB) *shard.MapStore {
	t.Helper()
	pool := must[*pgxpool.Pool](t)(pgxpool.New(context.Background(), closedPG))
	t.Cleanup(pool.Close)
	return must[*shard.MapStore](t)(shard.OpenPGMap(context.Background(), pool, shard.StoreOptions{}))
}
