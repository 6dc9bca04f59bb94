package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/scalekittest"
	"github.com/scalekit-go/scalekit/shard"
)

// TestShardedEndToEnd runs the service on two PostgreSQL clusters (-shards
// 2), each a primary with a streaming replica: every user and post is on
// its user's cluster's primary only; a user who wrote on one cluster reads
// their write while that cluster's replica is paused (the X-Shard-Tokens
// token, carried by a cookie jar), while their reads on the other cluster
// still go to its replica; GET /posts merges both clusters' newest posts
// in order; the user.changed job each write enqueued in its transaction,
// in its own cluster's queue, runs.
func TestShardedEndToEnd(t *testing.T) {
	r := startRedis(t)
	pg := startPostgres(t) // shard1: a database of this test on the shared cluster
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c2, err := scalekittest.StartPostgres(ctx, scalekittest.PostgresOptions{}) // shard2: a cluster of its own
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() { c2.Close() })
	do := func(fn func(context.Context) error) {
		t.Helper()
		if err := fn(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// The service as Run starts it, keeping the app to look inside.
	ready := make(chan string, 1)
	cfg, err := Config{Addr: "127.0.0.1:0", RedisURL: r.URL(), DatabaseURL: pg.PrimaryURL, ReplicaURLs: []string{pg.ReplicaURL},
		Shards: 2, ShardDatabases: []Database{{URL: c2.Primary.URL("postgres"), ReplicaURLs: []string{c2.Replica.URL("postgres")}}},
		RatePerClient: 100000, DrainDelay: 10 * time.Millisecond, Ready: ready, ConsoleToken: "t"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	in, err := startInfra(ctx, cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: cfg, log: cfg.Logger, in: in, out: &out}
	if err := a.wire(ctx); err != nil {
		a.closeAll()
		t.Fatal(err)
	}
	coord, err := a.shutdownCoordinator()
	if err != nil {
		a.closeAll()
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	if err := a.serve(runCtx, coord, &out); err != nil {
		stop()
		a.closeAll()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- coord.Wait(runCtx) }()
	t.Cleanup(func() { // before the clusters stop
		stop()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	var base string
	select {
	case addr := <-ready:
		base = "http://" + addr
	case <-time.After(10 * time.Second):
		t.Fatal("no address")
	}
	if a.shards == nil || len(a.clusters) != 2 {
		t.Fatalf("not sharded: %d clusters", len(a.clusters))
	}
	do(pg.cluster.WaitReplicaCaughtUp)
	do(c2.WaitReplicaCaughtUp)
	// Ready: each cluster's replica has replayed its schema (until then
	// the reads go to the primaries).
	eventually(t, 30*time.Second, "/health/ready answering 200", func() bool {
		resp, err := http.Get(base + "/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// Where the rows are: each user and each post on its user's cluster's
	// primary, and nowhere else.
	p2, err := pgxpool.New(ctx, c2.Primary.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	primaries := map[string]*pgxpool.Pool{"shard1": pg.Primary, "shard2": p2}
	clusterOf := func(id int64) string {
		t.Helper()
		rt, err := a.shards.For(shard.Int64(id))
		if err != nil {
			t.Fatal(err)
		}
		return rt.Cluster
	}
	want := map[string][]int64{}
	for id := int64(1); id <= seedUsers; id++ {
		want[clusterOf(id)] = append(want[clusterOf(id)], id)
	}
	posts := 0
	for name, p := range primaries {
		if len(want[name]) < seedUsers/4 {
			t.Fatalf("%s holds %d of %d users: the map is not even", name, len(want[name]), seedUsers)
		}
		var ids []int64
		if err := p.QueryRow(ctx, `SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM users`).Scan(&ids); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, want[name]) {
			t.Fatalf("%s's primary holds %d users, want the %d the router sends there", name, len(ids), len(want[name]))
		}
		rows, _ := p.Query(ctx, `SELECT author_id FROM posts`)
		authors, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range authors {
			if clusterOf(id) != name {
				t.Fatalf("a post of user %d (on %s) is on %s", id, clusterOf(id), name)
			}
		}
		posts += len(authors)
	}
	if posts != seedPosts {
		t.Fatalf("%d posts on the clusters, want %d", posts, seedPosts)
	}

	// Two authors of the 200 newest posts, one on each cluster.
	author := func(post int64) int64 { return 1 + (post*7919)%seedUsers }
	var writer, other int64 // on shard2, on shard1
	for p := int64(seedPosts); p > seedPosts-200 && (writer == 0 || other == 0); p-- {
		switch id := author(p); clusterOf(id) {
		case "shard2":
			writer = cmp.Or(writer, id)
		default:
			other = cmp.Or(other, id)
		}
	}

	jar, _ := cookiejar.New(nil)
	withToken := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	plain := &http.Client{Timeout: 10 * time.Second}
	call := func(c *http.Client, method, path, body string) (http.Header, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return resp.Header, b
	}
	feed := func(c *http.Client, limit int) []Post {
		t.Helper()
		_, b := call(c, "GET", fmt.Sprintf("/posts?limit=%d", limit), "")
		var ps []Post
		if err := json.Unmarshal(b, &ps); err != nil {
			t.Fatal(err)
		}
		return ps
	}
	nameIn := func(ps []Post, id int64) string {
		for _, p := range ps {
			if p.Author.ID == id {
				return p.Author.Name
			}
		}
		t.Fatalf("no post of user %d in the page", id)
		return ""
	}

	// Read-your-writes on shard2 with its replica paused.
	do(c2.PauseReplay)
	t.Cleanup(func() { c2.ResumeReplay(context.Background()) })
	hdr, _ := call(withToken, "PUT", fmt.Sprintf("/users/%d", writer), `{"name":"Grace Hopper","email":"grace@example.com"}`)
	toks, err := shard.ParseTokens(hdr.Get("X-Shard-Tokens"))
	if err != nil || len(toks) != 1 || toks["shard2"].LSN == 0 {
		t.Fatalf("X-Shard-Tokens %q (%v): want a token of shard2 alone", hdr.Get("X-Shard-Tokens"), err)
	}
	if !strings.Contains(hdr.Get("Set-Cookie"), "shard_tokens=") {
		t.Fatalf("no shard_tokens cookie: %q", hdr.Get("Set-Cookie"))
	}
	var onPrimary string
	if err := p2.QueryRow(ctx, `SELECT name FROM users WHERE id = $1`, writer).Scan(&onPrimary); err != nil || onPrimary != "Grace Hopper" {
		t.Fatalf("shard2's primary has %q (%v)", onPrimary, err)
	}
	s1, s2 := a.clusters[0].router.Stats(), a.clusters[1].router.Stats()
	page := feed(withToken, 200)
	if got := nameIn(page, writer); got != "Grace Hopper" {
		t.Fatalf("the writer read %q during shard2's paused replay, want their write", got)
	}
	if got := nameIn(page, other); got != fmt.Sprintf("User %d", other) {
		t.Fatalf("user %d on shard1: %q", other, got)
	}
	s1after, s2after := a.clusters[0].router.Stats(), a.clusters[1].router.Stats()
	if d := s1after.Replicas[0].Reads - s1.Replicas[0].Reads; d == 0 || s1after.Primary.Reads != s1.Primary.Reads {
		t.Fatalf("shard1 (not written): %d replica reads, %d primary reads; want its replica only\n%+v\n%+v", d, s1after.Primary.Reads-s1.Primary.Reads, s1, s1after)
	}
	if s2after.TokenPrimary == s2.TokenPrimary {
		t.Fatal("shard2's read with the token was not sent to its primary")
	}
	if _, b := call(withToken, "GET", fmt.Sprintf("/users/%d", writer), ""); !strings.Contains(string(b), "Grace Hopper") {
		t.Fatalf("GET /users/%d with the token: %s", writer, b)
	}
	// Without the token, shard2's replica is stale: the setup holds.
	if got := nameIn(feed(plain, 200), writer); got != fmt.Sprintf("User %d", writer) {
		t.Fatalf("without a token the paused replica gave %q: not paused?", got)
	}
	// A write on shard1 now: the token set carries both clusters.
	hdr, _ = call(withToken, "PUT", fmt.Sprintf("/users/%d", other), `{"name":"Alan Turing","email":"alan@example.com"}`)
	if toks, err := shard.ParseTokens(hdr.Get("X-Shard-Tokens")); err != nil || len(toks) != 2 {
		t.Fatalf("X-Shard-Tokens %q after writes on both clusters (%v)", hdr.Get("X-Shard-Tokens"), err)
	}
	do(c2.ResumeReplay)

	// Each write's user.changed job is in its user's cluster's queue, and
	// runs.
	for name, p := range primaries {
		var n int
		if err := p.QueryRow(ctx, `SELECT count(*) FROM queue_jobs WHERE kind = 'user.changed'`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s's queue holds %d user.changed jobs (%v), want 1", name, n, err)
		}
	}
	eventually(t, 20*time.Second, "both user.changed jobs done", func() bool { return a.usersChanged.Load() == 2 })

	// The feed merges both clusters, newest first.
	do(pg.cluster.WaitReplicaCaughtUp)
	do(c2.WaitReplicaCaughtUp)
	page = feed(plain, 50)
	if len(page) != 50 {
		t.Fatalf("%d posts, want 50", len(page))
	}
	seen := map[string]int{}
	for i, p := range page {
		id := int64(seedPosts - i)
		wantName := fmt.Sprintf("User %d", author(id))
		switch author(id) {
		case writer:
			wantName = "Grace Hopper"
		case other:
			wantName = "Alan Turing"
		}
		if p.ID != id || p.Author.ID != author(id) || p.Author.Name != wantName {
			t.Fatalf("post %d of the feed: %+v, want post %d by %d (%s)", i, p, id, author(id), wantName)
		}
		seen[clusterOf(p.Author.ID)]++
	}
	if seen["shard1"] == 0 || seen["shard2"] == 0 {
		t.Fatalf("the page's posts by cluster: %v", seen)
	}

	// Each cluster's router on /metrics and on the console, and the
	// shard router's series.
	_, b := call(plain, "GET", "/metrics", "")
	for _, series := range []string{`scalekit_dbrouter_primary_up{instance_name="127.0.0.1:0",name="shard1"} 1`,
		`scalekit_dbrouter_primary_up{instance_name="127.0.0.1:0",name="shard2"} 1`, `scalekit_shard_map_version{instance_name="127.0.0.1:0",name="users"} 1`} {
		if !strings.Contains(string(b), series) {
			t.Errorf("/metrics has no %s:\n%s", series, grep(string(b), "primary_up", "map_version"))
		}
	}
	req, _ := http.NewRequest("GET", base+"/admin/", nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "shard1") || !strings.Contains(string(b), "shard2") {
		t.Errorf("the console (%d) does not show both clusters' routers:\n%.2000s", resp.StatusCode, b)
	}

	// shard2's primary down: its users' writes fail, shard1's users' do
	// not, and the feed is still read from shard2's replica.
	if err := c2.Primary.Stop(scalekittest.StopImmediate); err != nil {
		t.Fatal(err)
	}
	status := func(method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := status("PUT", fmt.Sprintf("/users/%d", writer), `{"name":"Down","email":"d@example.com"}`); code != http.StatusServiceUnavailable {
		t.Errorf("a write on shard2 with its primary down: %d, want 503", code)
	}
	if code := status("PUT", fmt.Sprintf("/users/%d", other), `{"name":"Still Up","email":"up@example.com"}`); code != http.StatusOK {
		t.Errorf("a write on shard1 with shard2's primary down: %d, want 200", code)
	}
	// Reads need shard2's replica only (200), until its monitor ejects it
	// (then 503: the feed is not served without a cluster's posts).
	t.Logf("GET /posts with shard2's primary down: %d", status("GET", "/posts?limit=20", ""))
}

// TestShardsConfig checks the sharding options' errors: each names the
// option and what is allowed.
func TestShardsConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Shards: -1}, "-shards must be 1..8, got -1"},
		{Config{Shards: 9}, "-shards must be 1..8, got 9"},
		{Config{Shards: 2, DatabaseURL: "postgres://a"}, "-shards 2 with -database needs the other 1 clusters in -shard-databases, got 0"},
		{Config{Shards: 2, ShardDatabases: []Database{{URL: "postgres://b"}}}, "ShardDatabases (-shard-databases) need DatabaseURL (-database)"},
		{Config{Shards: 2, DatabaseURL: "postgres://a", ShardDatabases: []Database{{}}}, "ShardDatabases[0]: the primary URL is empty"},
	} {
		if _, err := tc.cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	cfg, err := Config{}.withDefaults()
	if err != nil || cfg.Shards != 1 {
		t.Fatalf("default: Shards %d (%v), want 1", cfg.Shards, err)
	}
	if _, err := (Config{Shards: 2, DatabaseURL: "postgres://a", ShardDatabases: []Database{{URL: "postgres://b"}}}).withDefaults(); err != nil {
		t.Fatal(err)
	}
}

// grep returns the lines of s that contain one of words.
func grep(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
