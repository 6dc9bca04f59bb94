package testinfra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// RequireServersEnv is the environment variable that turns a missing server
// binary from a skip into a failure. CI sets it to 1.
const RequireServersEnv = "SCALEKIT_REQUIRE_SERVERS"

// RequireServers reports whether SCALEKIT_REQUIRE_SERVERS=1.
func RequireServers() bool { return os.Getenv(RequireServersEnv) == "1" }

// skipOrFail reports a start-up error: a missing binary skips the test with
// the reason, unless SCALEKIT_REQUIRE_SERVERS=1; anything else fails it.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrMissingBinary) && !RequireServers() {
		t.Skipf("skipping: %v (the test needs a real server; %s=1 makes this a failure)", err, RequireServersEnv)
	}
	t.Fatalf("%v", err)
}

// shared holds the servers a test binary starts once when its TestMain calls
// Main. Without Main every fixture gets servers of its own.
var shared struct {
	mu      sync.Mutex
	active  bool
	pg      *PostgresCluster
	pgErr   error
	cluster *RedisClusterServer
	clErr   error
	redis   *RedisServer
	rdErr   error
}

// Main runs the tests of a package whose TestMain calls it, sharing one
// Redis Cluster and one PostgreSQL primary + replica among all its tests
// (each test still gets its own database or key prefix), and stops them
// after the last test. When the tests pass it then fails the run if any
// goroutine is left behind (goleak), so a primitive that forgets to stop a
// goroutine cannot pass:
//
//	func TestMain(m *testing.M) { testinfra.Main(m) }
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.active = true
	shared.mu.Unlock()
	code := m.Run()
	closeShared()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "testinfra: goroutines left after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func closeShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg != nil {
		shared.pg.Close()
		shared.pg = nil
	}
	if shared.cluster != nil {
		shared.cluster.Close()
		shared.cluster = nil
	}
	if shared.redis != nil {
		shared.redis.Close()
		shared.redis = nil
	}
	shared.rdErr = nil
	shared.active = false
}

// CallTimeout is the per-call timeout tests give the Redis and PostgreSQL
// engines when a test is not about timeouts: the race detector on a loaded
// 2-core CI machine can hold a healthy call past a production default of
// 100ms. Outage tests set their own short timeouts.
const CallTimeout = 2 * time.Second

var seq atomic.Int64

// RedisFixture is a throwaway redis-server for one test.
type RedisFixture struct {
	// Server is the running server.
	Server *RedisServer
	// Client is connected to database 0; closed at cleanup.
	Client *redis.Client
	t      testing.TB
}

// Redis starts a redis-server for this test (start-up takes milliseconds, so
// every test gets its own and may flush, stop or pause it freely). It is
// stopped at cleanup.
func Redis(t testing.TB) *RedisFixture {
	t.Helper()
	s, err := StartRedis(context.Background(), RedisOptions{})
	if err != nil {
		skipOrFail(t, err)
	}
	f := &RedisFixture{Server: s, Client: s.NewClient(0), t: t}
	t.Cleanup(func() {
		f.Client.Close()
		s.Close()
	})
	return f
}

// SharedRedis returns the address of a redis-server shared by the whole
// test binary, started on first use and stopped by Main after the last
// test (without Main it dies with the test process). It is for Example
// functions, which have no *testing.T; tests that flush, stop or pause
// Redis use Redis(t).
func SharedRedis() (addr string, err error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.redis == nil && shared.rdErr == nil {
		shared.redis, shared.rdErr = StartRedis(context.Background(), RedisOptions{})
	}
	if shared.rdErr != nil {
		return "", shared.rdErr
	}
	return shared.redis.Addr(), nil
}

// Addr is the server's host:port.
func (f *RedisFixture) Addr() string { return f.Server.Addr() }

// Stop shuts the server down; clients get connection errors until Start.
func (f *RedisFixture) Stop() {
	f.t.Helper()
	if err := f.Server.Stop(); err != nil {
		f.t.Fatal(err)
	}
}

// Kill SIGKILLs the server, as a crash would.
func (f *RedisFixture) Kill() {
	f.t.Helper()
	if err := f.Server.Kill(); err != nil {
		f.t.Fatal(err)
	}
}

// Start brings a stopped server back on the same port (empty).
func (f *RedisFixture) Start() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.Server.Start(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// Pause freezes the server (SIGSTOP): requests hang until Resume.
func (f *RedisFixture) Pause() {
	f.t.Helper()
	if err := f.Server.Pause(); err != nil {
		f.t.Fatal(err)
	}
}

// Resume continues a paused server.
func (f *RedisFixture) Resume() {
	f.t.Helper()
	if err := f.Server.Resume(); err != nil {
		f.t.Fatal(err)
	}
}

// ClusterFixture is a Redis Cluster client for one test.
type ClusterFixture struct {
	// Server is the cluster; with Main it is shared by the test binary.
	Server *RedisClusterServer
	// Client is a cluster client; closed at cleanup.
	Client *redis.ClusterClient
	// Prefix is unique to the test: put it before every key (it comes before
	// any {hash tag}, so it never changes a key's slot). Keys with it are
	// deleted at cleanup.
	Prefix string
}

// RedisCluster returns a client on a 3-master Redis Cluster. With Main the
// cluster is started once per test binary and shared; otherwise the test
// gets its own. Tests isolate their keys with Prefix.
func RedisCluster(t testing.TB) *ClusterFixture {
	t.Helper()
	ctx := context.Background()
	var srv *RedisClusterServer
	shared.mu.Lock()
	if shared.active {
		if shared.cluster == nil && shared.clErr == nil {
			shared.cluster, shared.clErr = StartRedisCluster(ctx, ClusterOptions{})
		}
		srv = shared.cluster
		err := shared.clErr
		shared.mu.Unlock()
		if err != nil {
			skipOrFail(t, err)
		}
	} else {
		shared.mu.Unlock()
		var err error
		if srv, err = StartRedisCluster(ctx, ClusterOptions{}); err != nil {
			skipOrFail(t, err)
		}
		t.Cleanup(func() { srv.Close() })
	}
	return clusterFixture(t, srv)
}

// OwnRedisCluster returns a client on a 3-master Redis Cluster started for
// this test alone, for a test that changes the Cluster (moves a slot).
func OwnRedisCluster(t testing.TB) *ClusterFixture {
	t.Helper()
	srv, err := StartRedisCluster(context.Background(), ClusterOptions{})
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() { srv.Close() })
	return clusterFixture(t, srv)
}

// clusterFixture is srv's fixture: a client and a prefix, the prefix's
// keys deleted at cleanup.
func clusterFixture(t testing.TB, srv *RedisClusterServer) *ClusterFixture {
	f := &ClusterFixture{Server: srv, Client: srv.NewClient(), Prefix: fmt.Sprintf("t%d:", seq.Add(1))}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = f.Client.ForEachMaster(cctx, func(ctx context.Context, c *redis.Client) error {
			iter := c.Scan(ctx, 0, f.Prefix+"*", 1000).Iterator()
			for iter.Next(ctx) {
				c.Del(ctx, iter.Val())
			}
			return iter.Err()
		})
		f.Client.Close()
	})
	return f
}

// PostgresFixture is a database of its own on a PostgreSQL primary with a
// streaming replica.
type PostgresFixture struct {
	// Cluster is the primary + replica; with Postgres and Main it is shared
	// by the test binary.
	Cluster *PostgresCluster
	// Database is this test's database, created for it and dropped at
	// cleanup.
	Database string
	// Primary is a pool on the primary's copy of Database.
	Primary *pgxpool.Pool
	// Replica is a pool on the replica's copy of Database.
	Replica *pgxpool.Pool
	// PrimaryURL and ReplicaURL are connection strings for Database.
	PrimaryURL, ReplicaURL string

	t testing.TB
}

// Postgres returns a fresh database on a primary with a streaming replica.
// With Main the servers are started once per test binary (start-up takes
// seconds) and shared; otherwise the test gets servers of its own. A test
// that stops, pauses or kills a shared server must not run in parallel with
// other tests of its binary; the fixture restores replay and restarts stopped
// servers at cleanup. Tests that want servers to themselves use
// PostgresExclusive.
func Postgres(t testing.TB) *PostgresFixture {
	t.Helper()
	shared.mu.Lock()
	if !shared.active {
		shared.mu.Unlock()
		return PostgresExclusive(t)
	}
	if shared.pg == nil && shared.pgErr == nil {
		shared.pg, shared.pgErr = StartPostgres(context.Background(), PostgresOptions{})
	}
	c, err := shared.pg, shared.pgErr
	shared.mu.Unlock()
	if err != nil {
		skipOrFail(t, err)
	}
	return newPostgresFixture(t, c)
}

// PostgresExclusive starts a primary and streaming replica for this test
// alone, stopped at cleanup.
func PostgresExclusive(t testing.TB) *PostgresFixture {
	t.Helper()
	c, err := StartPostgres(context.Background(), PostgresOptions{})
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() { c.Close() })
	return newPostgresFixture(t, c)
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

func newPostgresFixture(t testing.TB, c *PostgresCluster) *PostgresFixture {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", seq.Add(1), nonIdent.ReplaceAllString(strings.ToLower(t.Name()), "_"))
	if len(name) > 63 {
		name = name[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	primary, replica, err := c.NewPools(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	f := &PostgresFixture{Cluster: c, Database: name, Primary: primary, Replica: replica,
		PrimaryURL: c.Primary.URL(name), ReplicaURL: c.Replica.URL(name), t: t}
	t.Cleanup(func() {
		primary.Close()
		replica.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// Leave shared servers as the next test expects them.
		for _, s := range []*PGServer{c.Primary, c.Replica} {
			_ = s.Resume()
			if !s.Running() {
				if err := s.Start(ctx); err != nil {
					t.Errorf("testinfra: restart %s at cleanup: %v", s.Name(), err)
				}
			}
		}
		_ = c.ResumeReplay(ctx)
		if err := c.DropDatabase(ctx, name); err != nil {
			t.Logf("testinfra: drop database %s: %v", name, err)
		}
	})
	return f
}

// PauseReplay pauses WAL replay on the replica; see PostgresCluster.PauseReplay.
func (f *PostgresFixture) PauseReplay() { f.do(f.Cluster.PauseReplay) }

// ResumeReplay resumes WAL replay on the replica.
func (f *PostgresFixture) ResumeReplay() { f.do(f.Cluster.ResumeReplay) }

// WaitReplicaCaughtUp waits until the replica has replayed all the primary
// had written at the call.
func (f *PostgresFixture) WaitReplicaCaughtUp() { f.do(f.Cluster.WaitReplicaCaughtUp) }

// StopPrimary stops the primary in the given mode.
func (f *PostgresFixture) StopPrimary(mode StopMode) { f.stop(f.Cluster.Primary, mode) }

// StartPrimary starts a stopped primary on the same port.
func (f *PostgresFixture) StartPrimary() { f.do(f.Cluster.Primary.Start) }

// StopReplica stops the replica in the given mode.
func (f *PostgresFixture) StopReplica(mode StopMode) { f.stop(f.Cluster.Replica, mode) }

// StartReplica starts a stopped replica on the same port.
func (f *PostgresFixture) StartReplica() { f.do(f.Cluster.Replica.Start) }

// PromoteReplica promotes the replica to a primary (pg_ctl promote); see
// PGServer.Promote.
func (f *PostgresFixture) PromoteReplica() { f.do(f.Cluster.Replica.Promote) }

func (f *PostgresFixture) stop(s *PGServer, mode StopMode) {
	f.t.Helper()
	if err := s.Stop(mode); err != nil {
		f.t.Fatal(err)
	}
}

func (f *PostgresFixture) do(fn func(context.Context) error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := fn(ctx); err != nil {
		f.t.Fatal(err)
	}
}

// Varnish starts a throwaway varnishd (with the xkey module and
// scalekittest.VarnishVCL) in front of backend (an origin's ip:port, an
// httptest.Server's Listener.Addr()), stopped at cleanup. A missing
// varnishd or xkey module skips the test with the reason, or fails it
// under SCALEKIT_REQUIRE_SERVERS=1.
func Varnish(t testing.TB, backend string) *VarnishServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := StartVarnish(ctx, VarnishOptions{Backend: backend})
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// OneConnPool is a pool of one connection on f's primary, closed at
// cleanup: its prepared statements and session counters are the code
// under test's, for tests that read them (NewestPrepared).
func (f *PostgresFixture) OneConnPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg := f.Primary.Config().Copy()
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewestPrepared is the name of the statement prepared last on pool's
// connection (a OneConnPool) whose text is LIKE like (the lookup's own
// statement left out), failing t unless there is one and it has a
// generic plan already: EXPLAIN EXECUTE of it shows the plan the
// statement runs from now on.
func NewestPrepared(t testing.TB, pool *pgxpool.Pool, like string) string {
	t.Helper()
	var name string
	var generic int64
	err := pool.QueryRow(context.Background(), `SELECT name, generic_plans FROM pg_prepared_statements
WHERE statement LIKE $1 AND statement NOT LIKE '%pg_prepared_statements%' ORDER BY prepare_time DESC LIMIT 1`, like).Scan(&name, &generic)
	if err != nil {
		t.Fatalf("the statement prepared last LIKE %q: %v", like, err)
	}
	if generic == 0 {
		t.Fatalf("the statement %s (LIKE %q) has no generic plan yet", name, like)
	}
	return name
}
