package testinfra_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/testinfra"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRedisStopStartLosesConnectionThenRecovers(t *testing.T) {
	r := testinfra.Redis(t)
	ctx := ctxT(t, 30*time.Second)
	if err := r.Client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := r.Client.Get(ctx, "k").Val(); got != "v" {
		t.Fatalf("GET k = %q, want v", got)
	}

	r.Stop()
	if r.Server.Running() {
		t.Fatal("server still running after Stop")
	}
	if err := r.Client.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded while the server was stopped")
	}

	port := r.Server.Port()
	r.Start()
	if r.Server.Port() != port {
		t.Fatalf("restarted on port %d, want %d", r.Server.Port(), port)
	}
	// The same client reconnects by itself; the data is gone (no persistence).
	if err := r.Client.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after restart: %v", err)
	}
	if err := r.Client.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k after restart: err = %v, want redis.Nil", err)
	}
}

func TestRedisPauseHangsUntilResume(t *testing.T) {
	r := testinfra.Redis(t)
	ctx := ctxT(t, 30*time.Second)
	if err := r.Client.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := r.Client.Ping(short).Err()
	cancel()
	if err == nil {
		t.Fatal("PING answered while the server was paused")
	}
	r.Resume()
	if err := r.Client.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after resume: %v", err)
	}
}

func TestRedisKill(t *testing.T) {
	r := testinfra.Redis(t)
	r.Kill()
	if r.Server.Running() {
		t.Fatal("server running after Kill")
	}
	r.Start()
	if err := r.Client.Ping(ctxT(t, 10*time.Second)).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRedisClusterCoversAllSlots(t *testing.T) {
	c := testinfra.RedisCluster(t)
	ctx := ctxT(t, 30*time.Second)

	shards, err := c.Client.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	covered := make([]bool, 16384)
	masters := map[string]bool{}
	for _, sh := range shards {
		for _, s := range sh.Slots {
			for i := s.Start; i <= s.End; i++ {
				covered[i] = true
			}
		}
		for _, n := range sh.Nodes {
			if n.Role == "master" && len(sh.Slots) > 0 {
				masters[fmt.Sprintf("%s:%d", n.IP, n.Port)] = true
			}
		}
	}
	for i, ok := range covered {
		if !ok {
			t.Fatalf("slot %d is not served", i)
		}
	}
	if len(masters) != 3 {
		t.Fatalf("slots are served by %d masters, want 3", len(masters))
	}

	// Keys in many slots round-trip through the cluster client (so it
	// follows MOVED to every master).
	for i := 0; i < 50; i++ {
		k := fmt.Sprintf("%skey-%d", c.Prefix, i)
		if err := c.Client.Set(ctx, k, i, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		k := fmt.Sprintf("%skey-%d", c.Prefix, i)
		got, err := c.Client.Get(ctx, k).Int()
		if err != nil || got != i {
			t.Fatalf("GET %s = %d, %v; want %d", k, got, err, i)
		}
	}
	// A hash-tagged multi-key script runs on one slot.
	n, err := c.Client.Eval(ctx, "redis.call('SET', KEYS[1], 1); redis.call('SET', KEYS[2], 2); return redis.call('MGET', KEYS[1], KEYS[2])",
		[]string{c.Prefix + "{obj}:a", c.Prefix + "{obj}:b"}).StringSlice()
	if err != nil || strings.Join(n, ",") != "1,2" {
		t.Fatalf("hash-tagged script = %v, %v", n, err)
	}
}

func TestPostgresReplicaStreamsPrimaryWrites(t *testing.T) {
	pg := testinfra.Postgres(t)
	ctx := ctxT(t, 60*time.Second)

	if _, err := pg.Primary.Exec(ctx, "CREATE TABLE items (id int PRIMARY KEY, name text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Primary.Exec(ctx, "INSERT INTO items VALUES (1, 'one')"); err != nil {
		t.Fatal(err)
	}
	pg.WaitReplicaCaughtUp()

	var inRecovery bool
	var name string
	if err := pg.Replica.QueryRow(ctx, "SELECT pg_is_in_recovery(), (SELECT name FROM items WHERE id = 1)").Scan(&inRecovery, &name); err != nil {
		t.Fatal(err)
	}
	if !inRecovery || name != "one" {
		t.Fatalf("replica: in recovery %v, name %q; want true, one", inRecovery, name)
	}
	if err := pg.Primary.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Fatalf("primary in recovery = %v, %v", inRecovery, err)
	}

	// A write on the replica fails with SQLSTATE 25006 (read_only_sql_transaction).
	_, err := pg.Replica.Exec(ctx, "INSERT INTO items VALUES (2, 'two')")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("write on replica: err = %v, want SQLSTATE 25006", err)
	}
}

func TestPostgresPausedReplayLagsThenCatchesUp(t *testing.T) {
	pg := testinfra.Postgres(t)
	ctx := ctxT(t, 60*time.Second)
	if _, err := pg.Primary.Exec(ctx, "CREATE TABLE counter (n int)"); err != nil {
		t.Fatal(err)
	}
	pg.WaitReplicaCaughtUp()

	pg.PauseReplay()
	if _, err := pg.Primary.Exec(ctx, "INSERT INTO counter SELECT generate_series(1, 1000)"); err != nil {
		t.Fatal(err)
	}
	lag, err := pg.Cluster.ReplicaLagBytes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lag <= 0 {
		t.Fatalf("lag with replay paused = %d bytes, want > 0", lag)
	}
	var n int
	if err := pg.Replica.QueryRow(ctx, "SELECT count(*) FROM counter").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("paused replica sees %d rows, want 0 (stale)", n)
	}
	t.Logf("replica lag with replay paused: %d bytes", lag)

	pg.ResumeReplay()
	pg.WaitReplicaCaughtUp()
	if err := pg.Replica.QueryRow(ctx, "SELECT count(*) FROM counter").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1000 {
		t.Fatalf("replica after resume sees %d rows, want 1000", n)
	}
	if lag, err = pg.Cluster.ReplicaLagBytes(ctx); err != nil || lag != 0 {
		t.Fatalf("lag after catching up = %d, %v; want 0", lag, err)
	}
}

func TestPostgresDatabasesAreIsolated(t *testing.T) {
	a := testinfra.Postgres(t)
	b := testinfra.Postgres(t)
	if a.Database == b.Database {
		t.Fatalf("two fixtures share database %q", a.Database)
	}
	ctx := ctxT(t, 30*time.Second)
	if _, err := a.Primary.Exec(ctx, "CREATE TABLE only_in_a (id int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Primary.Exec(ctx, "SELECT * FROM only_in_a"); err == nil {
		t.Fatal("database b sees database a's table")
	}
}

// TestPostgresStopStart stops the replica and the primary of a cluster of its
// own (immediate mode, as a crash) and checks pools recover after Start.
func TestPostgresStopStart(t *testing.T) {
	pg := testinfra.PostgresExclusive(t)
	ctx := ctxT(t, 120*time.Second)
	if _, err := pg.Primary.Exec(ctx, "CREATE TABLE t (id int)"); err != nil {
		t.Fatal(err)
	}

	pg.StopReplica(testinfra.StopImmediate)
	if err := pg.Replica.Ping(ctx); err == nil {
		t.Fatal("replica answered while stopped")
	}
	if _, err := pg.Primary.Exec(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("primary write with the replica down: %v", err)
	}
	pg.StartReplica()
	pg.WaitReplicaCaughtUp()
	var n int
	if err := pg.Replica.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("replica after restart: %d rows, %v; want 1", n, err)
	}

	pg.StopPrimary(testinfra.StopImmediate)
	if _, err := pg.Primary.Exec(ctx, "INSERT INTO t VALUES (2)"); err == nil {
		t.Fatal("write succeeded with the primary stopped")
	}
	pg.StartPrimary()
	if _, err := pg.Primary.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatalf("write after primary restart: %v", err)
	}
	pg.WaitReplicaCaughtUp()
	if err := pg.Replica.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("replica after primary restart: %d rows, %v; want 2", n, err)
	}
}

func TestPostgresPauseServer(t *testing.T) {
	pg := testinfra.PostgresExclusive(t)
	ctx := ctxT(t, 60*time.Second)
	// An established connection must hang too, not only new ones: backends
	// leave the postmaster's process group (setsid), so Pause signals the
	// whole process tree.
	if err := pg.Primary.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pg.Cluster.Primary.Pause(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := pg.Primary.Exec(short, "SELECT 1")
	cancel()
	if err == nil {
		t.Fatal("paused primary answered")
	}
	if err := pg.Cluster.Primary.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Primary.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("after resume: %v", err)
	}
}

// TestMissingBinarySkipsOrFails runs a child test binary with no servers on
// PATH: it must skip by default and fail with SCALEKIT_REQUIRE_SERVERS=1.
func TestMissingBinarySkipsOrFails(t *testing.T) {
	if os.Getenv("TESTINFRA_CHILD") == "1" {
		testinfra.Redis(t)
		t.Fatal("unreachable: Redis should have skipped or failed")
	}
	run := func(require string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestMissingBinarySkipsOrFails$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTINFRA_CHILD=1", "PATH="+t.TempDir(), "SCALEKIT_REQUIRE_SERVERS="+require)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("")
	if err != nil || !strings.Contains(out, "--- SKIP") || !strings.Contains(out, "redis-server") {
		t.Fatalf("without SCALEKIT_REQUIRE_SERVERS: want a skip naming redis-server, got err %v:\n%s", err, out)
	}
	out, err = run("1")
	if err == nil || !strings.Contains(out, "--- FAIL") {
		t.Fatalf("with SCALEKIT_REQUIRE_SERVERS=1: want a failure, got err %v:\n%s", err, out)
	}
}

// TestMainFailsOnLeakedGoroutine runs a child test binary whose only test
// leaks a goroutine: Main must turn the passing run into a failure.
func TestMainFailsOnLeakedGoroutine(t *testing.T) {
	if os.Getenv("TESTINFRA_LEAK_CHILD") == "1" {
		block := make(chan struct{})
		go func() { <-block }()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestMainFailsOnLeakedGoroutine$")
	cmd.Env = append(os.Environ(), "TESTINFRA_LEAK_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "goroutines left after the tests") {
		t.Fatalf("a leaked goroutine went unreported: err %v\n%s", err, out)
	}
}

// TestVarnish: varnishd caches what the origin allows, tags it with the
// origin's Surrogate-Key, purges by key from 127.0.0.1, and comes back
// empty after a restart.
func TestVarnish(t *testing.T) {
	var calls atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Surrogate-Key", "k"+r.URL.Path)
		fmt.Fprint(w, r.URL.Path)
	}))
	defer origin.Close()
	v := testinfra.Varnish(t, origin.Listener.Addr().String())
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(v.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Xkey") != "" {
			t.Fatalf("GET %s: %s %v", path, resp.Status, resp.Header)
		}
		return resp.Header.Get("X-Cache")
	}
	if got := []string{get("a"), get("a"), get("b")}; strings.Join(got, " ") != "MISS HIT MISS" || calls.Load() != 2 {
		t.Fatalf("X-Cache %v, origin called %d times", got, calls.Load())
	}
	req, _ := http.NewRequest("PURGE", v.URL(), nil)
	req.Header.Set("xkey-purge", "k/a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PURGE: %s", resp.Status)
	}
	if a, b := get("a"), get("b"); a != "MISS" || b != "HIT" {
		t.Fatalf("after purging k/a: a %s (want MISS), b %s (want HIT)", a, b)
	}
	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(v.URL() + "a"); err == nil {
		t.Fatal("GET answered while Varnish is stopped")
	}
	if err := v.Start(ctxT(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := get("b"); got != "MISS" {
		t.Fatalf("after a restart: %s, want MISS (storage is in memory)", got)
	}
}

// TestPostgresPromote fails over by hand: the primary stopped (fast, so
// every commit has been streamed), the replica promoted. The replica
// accepts writes on timeline 2 with every committed row, and the switch
// point its timeline history file records is the last WAL position it
// replayed (pg_last_wal_replay_lsn(), static after promotion): what
// dbrouter reads when the history file is not readable.
func TestPostgresPromote(t *testing.T) {
	pg := testinfra.PostgresExclusive(t)
	ctx := ctxT(t, 120*time.Second)
	if _, err := pg.Primary.Exec(ctx, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)"); err != nil {
		t.Fatal(err)
	}
	if tli, err := pg.Cluster.Primary.Timeline(ctx); err != nil || tli != 1 {
		t.Fatalf("primary timeline %d, %v; want 1", tli, err)
	}
	pg.WaitReplicaCaughtUp()
	if tli, err := pg.Cluster.Replica.Timeline(ctx); err != nil || tli != 1 {
		t.Fatalf("replica timeline %d, %v; want 1 (received)", tli, err)
	}
	pg.StopPrimary(testinfra.StopFast)
	pg.PromoteReplica()
	if tli, err := pg.Cluster.Replica.Timeline(ctx); err != nil || tli != 2 {
		t.Fatalf("promoted replica's timeline %d, %v; want 2", tli, err)
	}
	if _, err := pg.Replica.Exec(ctx, "INSERT INTO t VALUES (101)"); err != nil {
		t.Fatalf("write on the promoted replica: %v", err)
	}
	var n int
	if err := pg.Replica.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 101 {
		t.Fatalf("promoted replica has %d rows, %v; want 101", n, err)
	}
	var history, replay string
	if err := pg.Replica.QueryRow(ctx, "SELECT pg_read_file('pg_wal/00000002.history'), pg_last_wal_replay_lsn()::text").Scan(&history, &replay); err != nil {
		t.Fatal(err)
	}
	// "1\t0/3000148\tno recovery target specified\n"
	fields := strings.Fields(history)
	if len(fields) < 2 || fields[0] != "1" || fields[1] != replay {
		t.Fatalf("history %q, replay LSN %s: want timeline 1 switching at the replay LSN", history, replay)
	}
	if err := pg.Cluster.Replica.Promote(ctx); err == nil {
		t.Fatal("promoting a primary succeeded")
	}
}
