// Command service is a small "users, posts and payments" API wired from
// every scalekit package: a cache over replica reads through dbrouter,
// read-your-writes tokens, batched author loads, idempotent payments that
// call a flaky provider through a policy pipeline (a bulkhead shedding by
// priority class, an adaptive throttler, timeouts, retries within a
// budget, a breaker) and commit the
// payment, its idempotency record and its receipt job in one transaction,
// background jobs, a periodic job refreshing a materialized view
// CONCURRENTLY, per-client rate limits, SLOs, Prometheus metrics,
// health probes and a graceful shutdown. Its GETs are edge-cacheable
// (edge.go: Cache-Control from the cache's own instants, ETags and 304s,
// surrogate keys), and with PURGE_URL (a Varnish with xkey) PUT /users/{id}
// purges the user's key through a job enqueued in its transaction. With
// CONSOLE_TOKEN, the operations page (package console) is at
// /admin/, for requests with "Authorization: Bearer $CONSOLE_TOKEN".
// With -shards 2 the users and their posts are spread over two PostgreSQL
// clusters by user ID (package shard, shards.go), with one read-your-writes
// token per cluster and the feed merged from both.
//
//	go run -C examples ./service              # starts its own Redis and PostgreSQL (primary + replica)
//	REDIS_URL=redis://127.0.0.1:6379/0 DATABASE_URL=postgres://... DATABASE_REPLICA_URLS=postgres://... go run -C examples ./service
//	go run -C examples ./service -shards 2    # two PostgreSQL clusters (primary + replica each), users sharded by ID
//
// With nothing configured it starts throwaway servers from the binaries on
// the machine (redis-server, PostgreSQL's initdb/postgres/pg_basebackup),
// or, when they are missing, says what to install and runs on in-memory
// backends. Ctrl-C drains and stops everything.
//
// To copy it, read in this order: Run (main.go) starts, serves and stops
// in four steps; wire (wire.go) builds each primitive in a small step that
// handles every error and registers its metrics and health checks;
// app.go holds what start-up opened, the shutdown registration and the
// HTTP handlers; edge.go the edge caching; repo.go the SQL; shards.go the
// sharded mode; infra.go the
// throwaway servers (package scalekittest).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/scalekit-go/scalekit/requestid"
)

func main() {
	cfg := configFromFlags()
	// SIGINT and SIGTERM start the graceful shutdown (package shutdown
	// catches them); a second one exits at once.
	if err := Run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

// Run starts the service and blocks until a signal (or ctx) shuts it down
// gracefully.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}

	// 1. The servers it runs on: Redis and PostgreSQL at cfg's URLs, or
	// throwaway local ones (infra.go), stopped when Run returns.
	in, err := startInfra(ctx, cfg, out)
	if err != nil {
		return err
	}
	defer in.close()

	// 2. Every primitive, wired from the stores up (wire.go). Until the
	// service serves, a failure closes here what was opened; from then on
	// the shutdown coordinator closes it.
	a := &app{cfg: cfg, log: cfg.Logger, in: in, out: out}
	serving := false
	defer func() {
		if !serving {
			a.closeAll()
		}
	}()
	if err := a.wire(ctx); err != nil {
		return err
	}

	// 3. The graceful shutdown: readiness off, the drain delay, the HTTP
	// server and the worker stopped, then every resource closed, the
	// first opened last.
	coord, err := a.shutdownCoordinator()
	if err != nil {
		return err
	}

	// 4. Serve: the HTTP API and the job worker, as cfg.Role says, until
	// SIGINT, SIGTERM or the end of ctx starts the shutdown.
	if err := a.serve(ctx, coord, out); err != nil {
		return err
	}
	serving = true
	a.health.MarkStarted()
	err = coord.Wait(ctx)
	fmt.Fprintln(out, "stopped")
	return err
}

// configFromFlags reads the command line and the environment.
func configFromFlags() Config {
	cfg := Config{}
	flag.StringVar(&cfg.Addr, "addr", envOr("ADDR", "127.0.0.1:8080"), "listen address (env ADDR)")
	flag.StringVar(&cfg.RedisURL, "redis", os.Getenv("REDIS_URL"), "Redis URL (env REDIS_URL); empty: start one")
	flag.StringVar(&cfg.DatabaseURL, "database", os.Getenv("DATABASE_URL"), "PostgreSQL primary URL (env DATABASE_URL); empty: start a primary and a replica")
	replicas := flag.String("replicas", os.Getenv("DATABASE_REPLICA_URLS"), "comma-separated replica URLs (env DATABASE_REPLICA_URLS)")
	flag.StringVar(&cfg.Role, "role", "all", "api, worker or all")
	flag.BoolVar(&cfg.Memory, "memory", false, "run on in-memory backends only (no Redis, no PostgreSQL)")
	flag.Float64Var(&cfg.RatePerClient, "rate-per-client", 2000, "requests per second allowed per client address")
	flag.DurationVar(&cfg.DrainDelay, "drain-delay", 2*time.Second, "time between failing readiness and stopping the server")
	flag.BoolVar(&cfg.NoPipeline, "no-pipeline", false, "call the payment provider through the retries and the breaker only, without the bulkhead, throttler and timeouts (for comparison)")
	flag.DurationVar(&cfg.ProviderLatency, "provider-latency", 5*time.Millisecond, "the fake payment provider's latency per charge (POST /admin/chaos?provider_slow=5 slows it)")
	flag.IntVar(&cfg.ProviderConcurrency, "provider-concurrency", 4, "charges the fake payment provider serves at once (and the pipeline's bulkhead admits)")
	flag.StringVar(&cfg.PurgeURL, "purge-url", os.Getenv("PURGE_URL"), "the edge cache's purge address, a Varnish with xkey (env PURGE_URL); empty: no purges")
	flag.StringVar(&cfg.ConsoleToken, "console-token", os.Getenv("CONSOLE_TOKEN"), "bearer token of the operations page at /admin/ (env CONSOLE_TOKEN); empty: no console")
	flag.IntVar(&cfg.Shards, "shards", 1, "PostgreSQL clusters the users and their posts are sharded over by user ID; more than 1 starts that many primaries with a replica each, unless -database is set")
	shardDBs := flag.String("shard-databases", os.Getenv("SHARD_DATABASE_URLS"), "with -shards N and -database: the other N-1 clusters, ';' between clusters, each 'primary,replica,...' (env SHARD_DATABASE_URLS)")
	flag.StringVar(&cfg.PprofAddr, "pprof", os.Getenv("PPROF_ADDR"), "serve net/http/pprof on this loopback address, e.g. 127.0.0.1:6060 (env PPROF_ADDR); empty: off")
	flag.IntVar(&cfg.DBPoolSize, "db-pool-size", 0, "connections each PostgreSQL pool opens at most, unless its URL sets pool_max_conns; 0: pgxpool's default")
	flag.Parse()
	if *replicas != "" {
		cfg.ReplicaURLs = strings.Split(*replicas, ",")
	}
	if *shardDBs != "" {
		for _, c := range strings.Split(*shardDBs, ";") {
			urls := strings.Split(c, ",")
			cfg.ShardDatabases = append(cfg.ShardDatabases, Database{URL: urls[0], ReplicaURLs: urls[1:]})
		}
	}
	// Every line logged with a request's context carries its request_id.
	cfg.Logger = slog.New(requestid.NewLogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	return cfg
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
