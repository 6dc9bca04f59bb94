package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/scalekit-go/scalekit/scalekittest"
)

// infra is what the service runs on: URLs, and the throwaway servers it
// started itself (nil when given URLs).
type infra struct {
	redisURL, dbURL string
	replicaURLs     []string
	redis           *scalekittest.RedisServer
	pg              *scalekittest.PostgresCluster
	// shards are the clusters after the first (dbURL, replicaURLs) with
	// Config.Shards > 1, and shardPG those the service started itself.
	shards  []Database
	shardPG []*scalekittest.PostgresCluster
}

// startInfra fills in what cfg leaves empty by starting local servers
// from the binaries on the machine. A missing binary is not an error: the
// service then says what to install and uses in-memory backends.
func startInfra(ctx context.Context, cfg Config, out io.Writer) (*infra, error) {
	in := &infra{redisURL: cfg.RedisURL, dbURL: cfg.DatabaseURL, replicaURLs: cfg.ReplicaURLs, shards: cfg.ShardDatabases}
	if cfg.Memory {
		fmt.Fprintln(out, "-memory: in-process rate limits, cache, idempotency keys and queue; users, posts and payments in memory")
		if cfg.Shards > 1 {
			fmt.Fprintln(out, "-shards needs PostgreSQL: one store in memory")
		}
		return in, nil
	}
	if in.redisURL == "" {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		r, err := scalekittest.StartRedis(sctx, scalekittest.RedisOptions{})
		if err != nil {
			fmt.Fprintf(out, "no Redis (%v)\n  install redis-server (apt-get install redis-server) or set REDIS_URL; using in-process rate limits, cache, idempotency and queue\n", err)
		} else {
			in.redis, in.redisURL = r, r.URL()
			fmt.Fprintf(out, "started redis-server at %s\n", r.Addr())
		}
	}
	if in.dbURL == "" {
		sctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		defer cancel()
		pg, err := scalekittest.StartPostgres(sctx, scalekittest.PostgresOptions{})
		if err != nil {
			fmt.Fprintf(out, "no PostgreSQL (%v)\n  install PostgreSQL (apt-get install postgresql) or set DATABASE_URL; keeping users, posts and payments in memory\n", err)
			if cfg.Shards > 1 {
				fmt.Fprintln(out, "  -shards needs PostgreSQL: one store in memory")
			}
		} else {
			in.pg, in.dbURL = pg, pg.Primary.URL("postgres")
			in.replicaURLs = []string{pg.Replica.URL("postgres")}
			fmt.Fprintf(out, "started PostgreSQL primary at %s and a streaming replica at %s\n", pg.Primary.Addr(), pg.Replica.Addr())
			if err := in.startShards(ctx, cfg.Shards, out); err != nil {
				in.close()
				return nil, err
			}
		}
	}
	return in, nil
}

// startShards starts the clusters after the first, a primary and a
// streaming replica each, for Config.Shards.
func (in *infra) startShards(ctx context.Context, shards int, out io.Writer) error {
	for i := 2; i <= shards; i++ {
		sctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		pg, err := scalekittest.StartPostgres(sctx, scalekittest.PostgresOptions{})
		cancel()
		if err != nil {
			return fmt.Errorf("starting the PostgreSQL cluster of shard %d: %w", i, err)
		}
		in.shardPG = append(in.shardPG, pg)
		in.shards = append(in.shards, Database{URL: pg.Primary.URL("postgres"), ReplicaURLs: []string{pg.Replica.URL("postgres")}})
		fmt.Fprintf(out, "started shard %d: PostgreSQL primary at %s and a streaming replica at %s\n", i, pg.Primary.Addr(), pg.Replica.Addr())
	}
	return nil
}

func (in *infra) close() {
	if in.redis != nil {
		in.redis.Close()
	}
	if in.pg != nil {
		in.pg.Close()
	}
	for _, pg := range in.shardPG {
		pg.Close()
	}
}
