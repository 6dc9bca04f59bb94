package shard

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

type post struct {
	ID        int64
	UserID    int64
	CreatedAt time.Time
}

// byCreated is ORDER BY created_at, id.
func byCreated(a, b post) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

const postsDDL = "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint NOT NULL, created_at timestamptz NOT NULL)"

const pageSQL = "SELECT id, user_id, created_at FROM posts ORDER BY created_at, id LIMIT $1"

func queryPage(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, limit int) ([]post, error) {
	rows, err := q.Query(ctx, pageSQL, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[post])
}

// Posts of 100 users spread over 3 clusters by user ID: the merged ORDER
// BY created_at LIMIT 50 page equals the same query on one database
// holding every row. With c's primary frozen (SIGSTOP) and reads on
// primaries, c's call times out after EachOptions.Timeout (reported as
// c's ErrClusterTimeout) while a's and b's rows come back; with c's
// servers stopped, c's error is reported under its name and the page of a
// and b is returned next to it, equal to the single-database page of
// their rows.
func TestRealServersFanOut(t *testing.T) {
	fa, fb := testinfra.Postgres(t), testinfra.Postgres(t)
	fc := testinfra.PostgresExclusive(t) // paused and stopped: servers of its own
	ref := testinfra.Postgres(t)         // every row, for the expected answer
	clusters := map[string]*dbrouter.Router{}
	fixtures := map[string]*testinfra.PostgresFixture{"a": fa, "b": fb, "c": fc}
	for name, f := range fixtures {
		clusters[name] = clusterOn(t, f)
	}
	const vs = 64
	db := mustNew(t, Options{VirtualShards: vs, Map: EvenMap(1, vs, "a", "b", "c"), Clusters: clusters})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := ref.Primary.Exec(ctx, postsDDL); err != nil {
		t.Fatal(err)
	}
	for _, c := range clusters {
		if _, err := c.Exec(ctx, postsDDL); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	perCluster := map[string][]post{}
	var all []post
	for id := int64(0); id < 600; id++ {
		p := post{ID: id, UserID: id % 100, CreatedAt: base.Add(time.Duration((id*7919)%300) * time.Second)} // ties on created_at
		rt, err := db.For(Int64(p.UserID))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Router.Exec(ctx, "INSERT INTO posts VALUES ($1, $2, $3)", p.ID, p.UserID, p.CreatedAt); err != nil {
			t.Fatal(err)
		}
		if _, err := ref.Primary.Exec(ctx, "INSERT INTO posts VALUES ($1, $2, $3)", p.ID, p.UserID, p.CreatedAt); err != nil {
			t.Fatal(err)
		}
		perCluster[rt.Cluster] = append(perCluster[rt.Cluster], p)
		all = append(all, p)
	}
	for name, f := range fixtures {
		if len(perCluster[name]) < 100 {
			t.Fatalf("cluster %s holds %d of 600 posts", name, len(perCluster[name]))
		}
		replicaServing(t, clusters[name], f)
	}
	page := func(ctx context.Context, tg Target) ([]post, error) { return queryPage(ctx, tg.Router, 50) }

	want, err := queryPage(ctx, ref.Primary, 50)
	if err != nil || len(want) != 50 {
		t.Fatalf("reference page: %d rows, %v", len(want), err)
	}
	got, err := GatherSorted(ctx, db, EachOptions{Concurrency: 2, Timeout: 30 * time.Second}, 50, byCreated, page)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("merged page (%v) differs from the single database's:\n got %v\nwant %v", err, got, want)
	}

	// c's primary frozen: its call times out, a's and b's stand.
	if err := fc.Cluster.Primary.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pages, err := Gather(ctx, db, EachOptions{Timeout: 500 * time.Millisecond}, func(ctx context.Context, tg Target) ([]post, error) {
		return queryPage(dbrouter.Primary(ctx), tg.Router, 50)
	})
	took := time.Since(start)
	if err := fc.Cluster.Primary.Resume(); err != nil {
		t.Fatal(err)
	}
	var ee *EachError
	if !errors.As(err, &ee) || len(ee.Failed) != 1 || ee.Failed[0].Cluster != "c" || !errors.Is(err, ErrClusterTimeout) {
		t.Fatalf("with c's primary frozen: %v; want c's timeout only", err)
	}
	if len(pages) != 2 || len(pages["a"]) != 50 || len(pages["b"]) != 50 {
		t.Fatalf("with c frozen: results of %d clusters", len(pages))
	}
	if took > 10*time.Second {
		t.Fatalf("the fan-out took %v with a 500ms per-cluster timeout", took)
	}
	t.Logf("fan-out with c frozen returned in %v (timeout 500ms): %v", took, err)

	// c's servers stopped: c's error under its name, the page of a and b.
	fc.StopPrimary(testinfra.StopFast)
	fc.StopReplica(testinfra.StopFast)
	got, err = GatherSorted(ctx, db, EachOptions{Timeout: testinfra.CallTimeout}, 50, byCreated, page)
	if !errors.As(err, &ee) || ee.Clusters != 3 || len(ee.Failed) != 1 || ee.Cluster("c") == nil || ee.Cluster("c").Timeout {
		t.Fatalf("with c stopped: %v; want c's connection error only", err)
	}
	var ab []post
	for _, p := range all {
		if rt, _ := db.For(Int64(p.UserID)); rt.Cluster != "c" {
			ab = append(ab, p)
		}
	}
	slices.SortFunc(ab, byCreated)
	if !slices.EqualFunc(got, ab[:50], func(x, y post) bool { return byCreated(x, y) == 0 && x.UserID == y.UserID }) {
		t.Fatalf("with c stopped the page differs from a's and b's rows:\n got %v\nwant %v", got, ab[:50])
	}
	t.Logf("with c stopped: %v", err)
	if fs := db.FanOutStats(); fs["c"].Errors != 2 || fs["c"].Timeouts != 1 || fs["a"].Errors != 0 || fs["a"].Calls != 3 {
		t.Fatalf("fan-out stats %+v", fs)
	}
	if st := db.Stats(); st.FanOuts != 3 || st.FanOutsFailed != 2 {
		t.Fatalf("stats %+v", st)
	}
}
