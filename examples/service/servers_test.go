package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/scalekit-go/scalekit/scalekittest"
)

// The tests run the service on real servers started with scalekittest, as
// your own integration tests can: one PostgreSQL primary with a streaming
// replica for the whole test binary (it takes seconds to start), a
// database of its own for each test, and a redis-server for each test (it
// takes milliseconds).

var shared struct {
	once sync.Once
	pg   *scalekittest.PostgresCluster
	err  error
}

var dbSeq atomic.Int64

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.pg != nil {
		shared.pg.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// skipOrFail skips a test on a machine without the server binaries, saying
// what to install, unless SCALEKIT_REQUIRE_SERVERS=1 (CI) makes that a
// failure.
func skipOrFail(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, scalekittest.ErrMissingBinary) && os.Getenv("SCALEKIT_REQUIRE_SERVERS") != "1" {
		t.Skip(err)
	}
	t.Fatal(err)
}

// startRedis starts a redis-server for this test, stopped at cleanup.
func startRedis(t *testing.T) *scalekittest.RedisServer {
	t.Helper()
	s, err := scalekittest.StartRedis(context.Background(), scalekittest.RedisOptions{})
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testDB is a database of this test's own on the shared primary and its
// replica.
type testDB struct {
	t       *testing.T
	cluster *scalekittest.PostgresCluster
	// Primary is a pool on the primary's copy of the database, for the
	// test's own checks.
	Primary                *pgxpool.Pool
	PrimaryURL, ReplicaURL string
}

// startPostgres creates a database for this test on the shared primary
// (starting the primary and its replica on first use); it is dropped, and
// replay resumed, at cleanup.
func startPostgres(t *testing.T) *testDB {
	t.Helper()
	shared.once.Do(func() {
		shared.pg, shared.err = scalekittest.StartPostgres(context.Background(), scalekittest.PostgresOptions{})
	})
	if shared.err != nil {
		skipOrFail(t, shared.err)
	}
	c := shared.pg
	name := fmt.Sprintf("service_%d", dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	primary, replica, err := c.NewPools(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	replica.Close()
	t.Cleanup(func() {
		primary.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.ResumeReplay(ctx); err != nil {
			t.Errorf("resume replay: %v", err)
		}
		if err := c.DropDatabase(ctx, name); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return &testDB{t: t, cluster: c, Primary: primary, PrimaryURL: c.Primary.URL(name), ReplicaURL: c.Replica.URL(name)}
}

// PauseReplay makes the replica fall behind: it receives the primary's
// writes but applies none until ResumeReplay.
func (d *testDB) PauseReplay() { d.do(d.cluster.PauseReplay) }

// ResumeReplay lets the replica catch up.
func (d *testDB) ResumeReplay() { d.do(d.cluster.ResumeReplay) }

// WaitReplicaCaughtUp waits until the replica has applied everything the
// primary had written at the call.
func (d *testDB) WaitReplicaCaughtUp() { d.do(d.cluster.WaitReplicaCaughtUp) }

func (d *testDB) do(fn func(context.Context) error) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := fn(ctx); err != nil {
		d.t.Fatal(err)
	}
}

// eventually checks cond every 10ms until it holds, and fails the test
// naming what it waited for when timeout passes first.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
	}
}
