package shard

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

func openStore(t testing.TB, pool *pgxpool.Pool, o StoreOptions) *MapStore {
	t.Helper()
	s, err := OpenPGMap(context.Background(), pool, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// watch runs s.Watch over rs until the test ends.
func watch(t testing.TB, s *MapStore, rs ...*Router) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, rs...) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	})
}

func TestOpenPGMapRefusesBadOptions(t *testing.T) {
	p := &pgxpool.Pool{}
	for _, c := range []struct {
		o    StoreOptions
		want string
	}{
		{StoreOptions{Table: "Bad-Name"}, "StoreOptions.Table"},
		{StoreOptions{Table: "a.b.c"}, "StoreOptions.Table"},
		{StoreOptions{PollInterval: time.Millisecond}, "StoreOptions.PollInterval"},
	} {
		if _, err := OpenPGMap(context.Background(), p, c.o); err == nil || !contains(err.Error(), c.want) {
			t.Errorf("OpenPGMap(%+v): %v, want an error naming %s", c.o, err, c.want)
		}
	}
	if _, err := OpenPGMap(context.Background(), nil, StoreOptions{}); err == nil {
		t.Error("OpenPGMap(nil pool): no error")
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Publish is a compare-and-set on the version: the first map is version
// 1, each next one current+1; a gap, a repeat and a change of the number
// of virtual shards are refused; every version stays readable.
func TestPGMapPublish(t *testing.T) {
	f := testinfra.Postgres(t)
	s := openStore(t, f.Primary, StoreOptions{})
	ctx := context.Background()
	if _, err := s.Current(ctx); !errors.Is(err, ErrNoMap) {
		t.Fatalf("Current on an empty store: %v, want ErrNoMap", err)
	}
	if err := s.Publish(ctx, EvenMap(2, 8, "a", "b")); !errors.Is(err, ErrVersionConflict) {
		t.Fatalf("first map with version 2: %v, want ErrVersionConflict", err)
	}
	if err := s.Publish(ctx, EvenMap(1, 8, "a", "b")); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, EvenMap(1, 8, "b", "a")); !errors.Is(err, ErrVersionConflict) {
		t.Fatalf("version 1 again: %v, want ErrVersionConflict", err)
	}
	if err := s.Publish(ctx, EvenMap(2, 16, "a", "b")); err == nil || !contains(err.Error(), "virtual shards") {
		t.Fatalf("16 virtual shards after 8: %v, want a refusal naming the virtual shards", err)
	}
	bad := EvenMap(2, 8, "a", "b")
	bad.Assign[3] = ""
	if err := s.Publish(ctx, bad); err == nil || !contains(err.Error(), "map.Assign[3]") {
		t.Fatalf("unassigned vshard: %v, want an error naming map.Assign[3]", err)
	}
	if err := s.Publish(ctx, EvenMap(2, 8, "b", "a")); err != nil {
		t.Fatal(err)
	}
	cur, err := s.Current(ctx)
	if err != nil || cur.Version != 2 || cur.Assign[0] != "b" {
		t.Fatalf("Current: %+v, %v; want version 2 starting with b", cur, err)
	}
	old, err := s.Version(ctx, 1)
	if err != nil || old.Version != 1 || old.Assign[0] != "a" {
		t.Fatalf("Version(1): %+v, %v", old, err)
	}
	if _, err := s.Version(ctx, 9); !errors.Is(err, ErrNoMap) {
		t.Fatalf("Version(9): %v, want ErrNoMap", err)
	}
}

// Of many concurrent publishers of each version exactly one wins, and the
// others get ErrVersionConflict.
func TestPGMapConcurrentPublishers(t *testing.T) {
	f := testinfra.Postgres(t)
	s := openStore(t, f.Primary, StoreOptions{})
	ctx := context.Background()
	const publishers, versions = 8, 10
	wins := make([]atomic.Int32, versions+1)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := int64(1); v <= versions; v++ {
				order := []string{"a", "b"}
				if p%2 == 1 {
					order = []string{"b", "a"}
				}
				for {
					err := s.Publish(ctx, EvenMap(v, 8, order...))
					if err == nil {
						wins[v].Add(1)
						break
					}
					if !errors.Is(err, ErrVersionConflict) {
						t.Error(err)
						return
					}
					// Lost: go on once version v is stored (by the winner).
					if cur, err := s.Current(ctx); err == nil && cur.Version >= v {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	for v := 1; v <= versions; v++ {
		if n := wins[v].Load(); n != 1 {
			t.Errorf("version %d: %d publishers won, want exactly 1", v, n)
		}
	}
}

// Two Routers watching the store install a published map within a second;
// a map a Router cannot use (unknown cluster) is logged, not installed,
// and the watch goes on.
func TestPGMapWatchConverges(t *testing.T) {
	f := testinfra.Postgres(t)
	// A long poll interval: convergence must come from NOTIFY.
	s := openStore(t, f.Primary, StoreOptions{PollInterval: time.Minute})
	ctx := context.Background()
	if err := s.Publish(ctx, EvenMap(1, 8, "a", "b")); err != nil {
		t.Fatal(err)
	}
	r1 := mustNew(t, Options{VirtualShards: 8, Map: EvenMap(1, 8, "a", "b"), Clusters: fakeClusters("a", "b", "c")})
	r2 := mustNew(t, Options{VirtualShards: 8, Map: EvenMap(1, 8, "a", "b"), Clusters: fakeClusters("a", "b", "c")})
	watch(t, s, r1)
	watch(t, s, r2)
	for v := int64(2); v <= 4; v++ {
		start := time.Now()
		if err := s.Publish(ctx, EvenMap(v, 8, "c", "a", "b")); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 5*time.Second, "both routers on the new map", func() bool {
			return r1.Map().Version == v && r2.Map().Version == v
		})
		if took := time.Since(start); took > time.Second {
			t.Errorf("version %d reached both routers after %v, want within 1s", v, took)
		}
	}
	if err := s.Publish(ctx, EvenMap(5, 8, "x", "y")); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, EvenMap(6, 8, "b", "a")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "both routers on version 6 after refusing version 5", func() bool {
		return r1.Map().Version == 6 && r2.Map().Version == 6
	})
	if r1.Stats().MapRefused == 0 {
		t.Error("version 5 (unknown clusters) was not refused")
	}
	if st := s.Stats(); st.Notifications < 5 || st.Reconnects != 0 {
		t.Errorf("stats %+v, want >= 5 notifications and no reconnect", st)
	}
}

// With the config database stopped, watching Routers keep their map;
// a version published while they were disconnected (no notification
// reaches them) is installed after the restart without waiting for a
// poll, and notifications work again.
func TestPGMapWatchReconnects(t *testing.T) {
	f := testinfra.PostgresExclusive(t)
	s := openStore(t, f.Primary, StoreOptions{PollInterval: time.Minute})
	ctx := context.Background()
	if err := s.Publish(ctx, EvenMap(1, 8, "a", "b")); err != nil {
		t.Fatal(err)
	}
	r1 := mustNew(t, Options{VirtualShards: 8, Map: EvenMap(1, 8, "a", "b"), Clusters: fakeClusters("a", "b")})
	r2 := mustNew(t, Options{VirtualShards: 8, Map: EvenMap(1, 8, "a", "b"), Clusters: fakeClusters("a", "b")})
	// A separate store (another instance) publishes while the watchers are
	// cut off: its pool is not the watchers'.
	pub, err := pgxpool.New(ctx, f.PrimaryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	publisher := openStore(t, pub, StoreOptions{PollInterval: time.Minute})
	watch(t, s, r1, r2)
	poll.Until(t, 10*time.Second, "the watcher listening", func() bool { return listening(t, pub) })

	f.StopPrimary(testinfra.StopFast)
	if r1.Map().Version != 1 {
		t.Fatalf("map version %d with the config database down", r1.Map().Version)
	}
	f.StartPrimary()
	// Published before the watcher is back (it waits a growing pause), or
	// just after: either way it must arrive.
	publishEventually(t, publisher, EvenMap(2, 8, "b", "a"))
	poll.Until(t, 10*time.Second, "both routers on version 2 after the restart", func() bool {
		return r1.Map().Version == 2 && r2.Map().Version == 2
	})
	if s.Stats().Reconnects == 0 {
		t.Error("no reconnect counted")
	}
	poll.Until(t, 10*time.Second, "the watcher listening again", func() bool { return listening(t, pub) })
	if err := publisher.Publish(ctx, EvenMap(3, 8, "a", "b")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	poll.Until(t, 5*time.Second, "both routers on version 3", func() bool {
		return r1.Map().Version == 3 && r2.Map().Version == 3
	})
	if took := time.Since(start); took > time.Second {
		t.Errorf("version 3 took %v after the reconnect, want within 1s", took)
	}
}

// listening reports whether a session is in LISTEN on the config database
// (other than the caller's).
func listening(t testing.TB, p *pgxpool.Pool) bool {
	var n int
	err := p.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`).Scan(&n)
	return err == nil && n > 0
}

// publishEventually publishes m, retrying errors of connections the
// restart cut (a lost commit acknowledgement shows as a conflict with m
// stored).
func publishEventually(t testing.TB, s *MapStore, m Map) {
	t.Helper()
	var last error
	poll.Until(t, 20*time.Second, "a publish after the restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), testinfra.CallTimeout)
		defer cancel()
		last = s.Publish(ctx, m)
		if errors.Is(last, ErrVersionConflict) {
			cur, err := s.Current(ctx)
			return err == nil && cur.Version == m.Version
		}
		return last == nil
	})
}
