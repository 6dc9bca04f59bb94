package shard

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// realCluster is a dbrouter.Router over a fresh database of the test
// PostgreSQL (primary + streaming replica): two fixtures, two clusters.
func realCluster(t testing.TB) (*dbrouter.Router, *testinfra.PostgresFixture) {
	t.Helper()
	f := testinfra.Postgres(t)
	return clusterOn(t, f), f
}

// clusterOn is a dbrouter.Router over f with a users table.
func clusterOn(t testing.TB, f *testinfra.PostgresFixture) *dbrouter.Router {
	t.Helper()
	r, err := dbrouter.New(context.Background(), dbrouter.Options{
		Primary:      f.Primary,
		Replicas:     []*pgxpool.Pool{f.Replica},
		Interval:     50 * time.Millisecond,
		CheckTimeout: testinfra.CallTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if _, err := r.Exec(context.Background(), "CREATE TABLE users (id bigint PRIMARY KEY, vshard int NOT NULL, name text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	return r
}

// Rows written through For(key) land on the key's cluster only, and read
// back through the same route (from a replica, with the write's token).
// After a map swap the key routes to the other cluster, which does not
// have the row: SetMap moves no data.
func TestRealServersWriteAndReadBack(t *testing.T) {
	a, fa := realCluster(t)
	b, fb := realCluster(t)
	const vs = 64
	r := mustNew(t, Options{VirtualShards: vs, Map: EvenMap(1, vs, "a", "b"), Clusters: map[string]*dbrouter.Router{"a": a, "b": b}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const users = 200
	want := map[string]int{}
	var tok = map[string]dbrouter.Token{}
	for id := range int64(users) {
		rt, err := r.For(Int64(id))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Router.Exec(ctx, "INSERT INTO users VALUES ($1, $2, $3)", id, rt.VShard, fmt.Sprint("user-", id)); err != nil {
			t.Fatalf("insert %d on %s: %v", id, rt.Cluster, err)
		}
		want[rt.Cluster]++
	}
	if want["a"] == 0 || want["b"] == 0 {
		t.Fatalf("200 users all on one cluster: %v", want)
	}
	for name, c := range map[string]*dbrouter.Router{"a": a, "b": b} {
		if tok[name], _ = c.WriteToken(ctx); tok[name].IsZero() {
			t.Fatalf("no write token from %s", name)
		}
	}

	// Each database holds exactly its cluster's rows, on its vshards.
	for name, f := range map[string]*testinfra.PostgresFixture{"a": fa, "b": fb} {
		rows, err := f.Primary.Query(ctx, "SELECT id, vshard FROM users")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var id int64
			var v int
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			if v != Int64(id).VShard(vs) || r.Map().Assign[v] != name {
				t.Errorf("cluster %s holds user %d of vshard %d (assigned to %s)", name, id, v, r.Map().Assign[v])
			}
			n++
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if n != want[name] {
			t.Errorf("cluster %s holds %d users, %d were routed to it", name, n, want[name])
		}
	}

	// Read back through the route, each read carrying its cluster's token.
	for id := range int64(users) {
		rt, err := r.For(Int64(id))
		if err != nil {
			t.Fatal(err)
		}
		var name string
		if err := rt.Router.QueryRow(dbrouter.WithToken(ctx, tok[rt.Cluster]), "SELECT name FROM users WHERE id = $1", id).Scan(&name); err != nil {
			t.Fatalf("read user %d from %s: %v", id, rt.Cluster, err)
		}
		if name != fmt.Sprint("user-", id) {
			t.Fatalf("user %d: name %q", id, name)
		}
	}

	// Swap the two halves: routes follow the new map, the rows do not.
	swapped := EvenMap(2, vs, "b", "a")
	if err := r.SetMap(swapped); err != nil {
		t.Fatal(err)
	}
	rt, err := r.For(Int64(0))
	if err != nil {
		t.Fatal(err)
	}
	if rt.Cluster != swapped.Assign[rt.VShard] || rt.MapVersion != 2 {
		t.Fatalf("after SetMap: %+v", rt)
	}
	var name string
	err = rt.Router.QueryRow(dbrouter.Primary(ctx), "SELECT name FROM users WHERE id = 0").Scan(&name)
	if !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("user 0 on its new cluster %s before any move: %q, %v; want no rows", rt.Cluster, name, err)
	}
}

// With one cluster's primary stopped, writes routed to it fail (the route
// still names it: no fallback to another cluster), writes to the other
// cluster go on, and the stopped cluster takes writes again once it is
// back. Cluster a has servers of its own, so stopping it leaves b's alone.
func TestRealServersClusterDown(t *testing.T) {
	fa := testinfra.PostgresExclusive(t)
	a := clusterOn(t, fa)
	b, _ := realCluster(t)
	const vs = 64
	r := mustNew(t, Options{VirtualShards: vs, Map: EvenMap(1, vs, "a", "b"), Clusters: map[string]*dbrouter.Router{"a": a, "b": b}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	insert := func(ctx context.Context, id int64) (Route, error) {
		rt, err := r.For(Int64(id))
		if err != nil {
			t.Fatal(err)
		}
		_, err = rt.Router.Exec(ctx, "INSERT INTO users VALUES ($1, $2, 'x')", id, rt.VShard)
		return rt, err
	}

	fa.StopPrimary(testinfra.StopFast)
	failed := map[string]int{}
	ok := map[string]int{}
	for id := range int64(100) {
		callCtx, cancelCall := context.WithTimeout(ctx, testinfra.CallTimeout)
		rt, err := insert(callCtx, id)
		cancelCall()
		if err != nil {
			failed[rt.Cluster]++
		} else {
			ok[rt.Cluster]++
		}
	}
	if ok["a"] != 0 || failed["b"] != 0 || failed["a"] == 0 || ok["b"] == 0 {
		t.Fatalf("with a's primary down: ok %v, failed %v; want every write to a to fail and every write to b to succeed", ok, failed)
	}
	var onB int
	if err := b.QueryRow(dbrouter.Primary(ctx), "SELECT count(*) FROM users").Scan(&onB); err != nil || onB != ok["b"] {
		t.Fatalf("b holds %d rows (%v), %d writes were routed to it", onB, err, ok["b"])
	}

	fa.StartPrimary()
	var next int64 = 1000
	for ; ; next++ { // the first key of cluster a
		if rt, _ := r.For(Int64(next)); rt.Cluster == "a" {
			break
		}
	}
	poll.Until(t, 30*time.Second, "a write to cluster a after its primary restarted", func() bool {
		callCtx, cancelCall := context.WithTimeout(ctx, testinfra.CallTimeout)
		defer cancelCall()
		_, err := insert(callCtx, next)
		return err == nil
	})
}
