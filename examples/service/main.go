// Command service is a small "users, posts and payments" API wired from
// every scalekit package: a cache over replica reads through dbrouter,
// read-your-writes tokens, batched author loads, idempotent payments that
// call a flaky provider through a breaker and a retry budget and commit the
// payment, its idempotency record and its receipt job in one transaction,
// background jobs, per-client rate limits, SLOs, Prometheus metrics,
// health probes and a graceful shutdown.
//
//	go run ./examples/service              # starts its own Redis and PostgreSQL (primary + replica)
//	REDIS_URL=redis://127.0.0.1:6379/0 DATABASE_URL=postgres://... DATABASE_REPLICA_URLS=postgres://... go run ./examples/service
//
// With nothing configured it starts throwaway servers from the binaries on
// the machine (redis-server, PostgreSQL's initdb/postgres/pg_basebackup),
// or, when they are missing, says what to install and runs on in-memory
// backends. Ctrl-C drains and stops everything.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

func main() {
	cfg := Config{}
	flag.StringVar(&cfg.Addr, "addr", envOr("ADDR", "127.0.0.1:8080"), "listen address (env ADDR)")
	flag.StringVar(&cfg.RedisURL, "redis", os.Getenv("REDIS_URL"), "Redis URL (env REDIS_URL); empty: start one")
	flag.StringVar(&cfg.DatabaseURL, "database", os.Getenv("DATABASE_URL"), "PostgreSQL primary URL (env DATABASE_URL); empty: start a primary and a replica")
	replicas := flag.String("replicas", os.Getenv("DATABASE_REPLICA_URLS"), "comma-separated replica URLs (env DATABASE_REPLICA_URLS)")
	flag.StringVar(&cfg.Role, "role", "all", "api, worker or all")
	flag.BoolVar(&cfg.Memory, "memory", false, "run on in-memory backends only (no Redis, no PostgreSQL)")
	flag.Float64Var(&cfg.RatePerClient, "rate-per-client", 2000, "requests per second allowed per client address")
	flag.DurationVar(&cfg.DrainDelay, "drain-delay", 2*time.Second, "time between failing readiness and stopping the server")
	flag.Parse()
	if *replicas != "" {
		cfg.ReplicaURLs = strings.Split(*replicas, ",")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// SIGINT and SIGTERM start the graceful shutdown (package shutdown
	// catches them); a second one exits at once.
	if err := Run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
