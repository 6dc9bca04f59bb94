package main

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/shard"
)

// Sharding (Config.Shards > 1): the users and their posts are spread over
// several PostgreSQL clusters by user ID, through package shard.
//
//   - A user's row and their posts' rows live on the user's cluster only
//     (shard.Router.For(shard.Int64(userID))); reads by user go to that
//     cluster's replicas, with that cluster's read-your-writes token (the
//     shard.HTTP middleware carries one per cluster, in X-Shard-Tokens
//     and the shard_tokens cookie).
//   - GET /posts asks every cluster for its newest posts and merges the
//     pages (shard.GatherSorted); a page's authors are read from the
//     clusters holding them (shard.Router.Each with their keys).
//   - The user.changed job a write enqueues in its transaction goes to
//     the queue of the user's cluster: every cluster has the queue's
//     tables and a worker for the "invalidations" queue, so the job
//     commits with the write (the outbox). The other jobs, payments, their
//     idempotency keys and the payment totals stay on the first cluster,
//     as with one cluster.

// maxShards bounds Config.Shards.
const maxShards = 8

// shardCluster is one cluster of the sharded mode: its name in the shard
// map, its router, and (after the first) its queue backend and worker.
type shardCluster struct {
	name    string
	router  *dbrouter.Router
	backend *queuepg.Backend // the first cluster's is a.backend
	worker  *queue.Worker    // nil for the first cluster (a.worker)
}

// shardNames are the clusters' names in the map: shard1, shard2...
func shardName(i int) string { return "shard" + strconv.Itoa(i+1) }

// connectShards opens every cluster through its own dbrouter.Router, the
// shard router over them (an even map of the 1024 virtual shards),
// creates each cluster's schema with its users and their posts, and
// waits until each cluster's replicas have it. a.router is the first
// cluster's: payments, idempotency keys and the queue live there.
func (a *app) connectShards(ctx context.Context) error {
	dbs := append([]Database{{URL: a.in.dbURL, ReplicaURLs: a.in.replicaURLs}}, a.in.shards...)
	clusters := make(map[string]*dbrouter.Router, len(dbs))
	names := make([]string, len(dbs))
	for i, db := range dbs {
		names[i] = shardName(i)
		r, err := dbrouter.Open(ctx, db.URL, db.ReplicaURLs, dbrouter.Options{Logger: a.log, SlowQuery: 200 * time.Millisecond, TokenWait: 50 * time.Millisecond,
			RouteTracer: a.tel.routeTracer(), ConfigurePool: a.configurePool})
		if err != nil {
			return fmt.Errorf("database of %s: %w", names[i], err)
		}
		a.clusters = append(a.clusters, &shardCluster{name: names[i], router: r}) // from here on resources closes it
		clusters[names[i]] = r
	}
	a.router = a.clusters[0].router
	var err error
	if a.shards, err = shard.New(shard.Options{Map: shard.EvenMap(1, shard.DefaultVirtualShards, names...), Clusters: clusters, Logger: a.log}); err != nil {
		return err
	}
	users := map[string][]int64{}
	for id := int64(1); id <= seedUsers; id++ {
		rt, err := a.shards.For(shard.Int64(id))
		if err != nil {
			return err
		}
		users[rt.Cluster] = append(users[rt.Cluster], id)
	}
	for i, c := range a.clusters {
		if err := migrateShard(ctx, c.router.PrimaryPool(), users[c.name], i == 0); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if err := c.router.Fence(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		r := c.router
		a.health.Add(health.Check{Name: "postgres_" + c.name, Timeout: time.Second,
			Func: func(ctx context.Context) error {
				if err := r.PrimaryPool().Ping(ctx); err != nil {
					return err
				}
				return r.Ready(ctx)
			}})
		if err := a.metrics.AddDBRouter(c.name, r); err != nil {
			return err
		}
	}
	a.repo = &shardRepo{db: a.shards, first: &pgRepo{db: a.router}}
	return a.metrics.AddShard("users", a.shards)
}

// migrateShard creates a cluster's schema: users and posts (of the users
// ids, the cluster's), and on the first cluster the payments and their
// totals (idempotent).
func migrateShard(ctx context.Context, pool *pgxpool.Pool, ids []int64, first bool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqlUsersAndPosts); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO users (id, name, email) SELECT i, 'User ' || i, 'user' || i || '@example.com' FROM unnest($1::bigint[]) i ON CONFLICT DO NOTHING`, ids); err != nil {
			return fmt.Errorf("users: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO posts (id, author_id, title) SELECT i, 1 + (i * 7919) % 1000, 'Post ' || i FROM generate_series(1, 5000) i
WHERE 1 + (i * 7919) % 1000 = ANY($1) ON CONFLICT DO NOTHING`, ids); err != nil {
			return fmt.Errorf("posts: %w", err)
		}
		if !first {
			return nil
		}
		// The users are on every cluster: the totals are of the payments
		// alone (a user without payments has no row).
		if _, err := tx.Exec(ctx, sqlPayments+`
CREATE MATERIALIZED VIEW IF NOT EXISTS user_payment_totals AS
  SELECT user_id, count(*) AS payments, sum(amount_cents)::bigint AS amount_cents FROM payments GROUP BY user_id;
CREATE UNIQUE INDEX IF NOT EXISTS user_payment_totals_user_id ON user_payment_totals (user_id);`); err != nil {
			return fmt.Errorf("payments: %w", err)
		}
		return nil
	})
}

// buildShardQueues gives every cluster after the first a queue (its
// tables on the cluster's primary) and a worker for the invalidations
// queue: the user.changed job of a write commits in the write's
// transaction, on the user's cluster.
func (a *app) buildShardQueues(ctx context.Context) error {
	if len(a.clusters) == 0 {
		return nil
	}
	a.clusters[0].backend, _ = a.backend.(*queuepg.Backend)
	for _, c := range a.clusters[1:] {
		var err error
		if c.backend, err = queuepg.New(queuepg.Options{Pool: c.router.PrimaryPool(), SweepInterval: time.Minute, Logger: a.log}); err != nil {
			return err
		}
		if err := c.backend.Migrate(ctx); err != nil {
			return fmt.Errorf("%s: queue: %w", c.name, err)
		}
		if c.worker, err = queue.NewWorker(queue.WorkerOptions{Backend: c.backend, Logger: a.log,
			Middleware: append([]func(queue.AttemptFunc) queue.AttemptFunc{queue.RequestIDWorker()}, a.tel.attempt()...),
			Queues:     map[string]queue.Options{"invalidations": {Concurrency: 2}}}); err != nil {
			return err
		}
		if err := a.handleUserChanged(c.worker); err != nil {
			return err
		}
		if err := a.metrics.AddQueueWorker("worker_"+c.name, c.worker); err != nil {
			return err
		}
	}
	return nil
}

// userQueue is the PostgreSQL queue a write of user id enqueues its jobs
// in, in the write's transaction: the user's cluster's (false without
// PostgreSQL).
func (a *app) userQueue(id int64) (*queuepg.Backend, bool) {
	if a.shards == nil {
		b, ok := a.backend.(*queuepg.Backend)
		return b, ok
	}
	rt, err := a.shards.For(shard.Int64(id))
	if err != nil {
		return nil, false
	}
	for _, c := range a.clusters {
		if c.name == rt.Cluster {
			return c.backend, c.backend != nil
		}
	}
	return nil, false
}

// sessionToken is the client's read-your-writes token of the database
// holding user id (zero without one): of the user's cluster when sharded.
func (a *app) sessionToken(ctx context.Context, id int64) dbrouter.Token {
	r := a.router
	if a.shards != nil {
		rt, err := a.shards.For(shard.Int64(id))
		if err != nil {
			return dbrouter.Token{}
		}
		r, ctx = rt.Router, rt.Context(ctx)
	}
	tok, _ := r.SessionToken(ctx) // a GET writes nothing: no round trip
	return tok
}

// shardRepo is the data on several clusters: users and posts on their
// user's cluster, payments on the first.
type shardRepo struct {
	db    *shard.Router
	first *pgRepo
}

// on returns the repo and ctx of user id's cluster: ctx carries that
// cluster's read-your-writes session (shard.HTTP's middleware).
func (s *shardRepo) on(ctx context.Context, id int64) (*pgRepo, context.Context, error) {
	rt, err := s.db.For(shard.Int64(id))
	if err != nil {
		return nil, ctx, err
	}
	return &pgRepo{db: rt.Router}, rt.Context(ctx), nil
}

// user reads user id on its cluster. A ctx with dbrouter.Primary (the
// user.changed job's) keeps it: Route.Context keeps dbrouter's intents.
func (s *shardRepo) user(ctx context.Context, id int64) (userCopy, error) {
	p, ctx, err := s.on(ctx, id)
	if err != nil {
		return userCopy{}, err
	}
	return p.user(ctx, id)
}

func (s *shardRepo) updateUser(ctx context.Context, id int64, name, email string, up userUpdate) (userCopy, error) {
	p, ctx, err := s.on(ctx, id)
	if err != nil {
		return userCopy{}, err
	}
	return p.updateUser(ctx, id, name, email, up)
}

// posts is the newest limit posts of all clusters: each cluster's newest
// limit, merged.
func (s *shardRepo) posts(ctx context.Context, limit int) ([]Post, error) {
	return shard.GatherSorted(ctx, s.db, shard.EachOptions{Timeout: 5 * time.Second}, limit,
		func(a, b Post) int { return cmp.Compare(b.ID, a.ID) }, // ORDER BY id DESC
		func(ctx context.Context, t shard.Target) ([]Post, error) {
			return (&pgRepo{db: t.Router}).posts(ctx, limit)
		})
}

// authors reads each cluster's share of ids there, the clusters at once.
func (s *shardRepo) authors(ctx context.Context, ids []int64) (map[int64]Author, error) {
	keys := make([]shard.Key, len(ids))
	for i, id := range ids {
		keys[i] = shard.Int64(id)
	}
	var mu sync.Mutex
	out := make(map[int64]Author, len(ids))
	err := s.db.Each(ctx, shard.EachOptions{Keys: keys, Timeout: 5 * time.Second}, func(ctx context.Context, t shard.Target) error {
		mine := make([]int64, len(t.Keys))
		for i, k := range t.Keys {
			mine[i] = ids[k]
		}
		got, err := (&pgRepo{db: t.Router}).authors(ctx, mine)
		mu.Lock()
		defer mu.Unlock()
		for id, a := range got {
			out[id] = a
		}
		return err
	})
	return out, err
}

func (s *shardRepo) insertPayment(ctx context.Context, p Payment) error {
	return s.first.insertPayment(ctx, p)
}

func (s *shardRepo) refreshPaymentTotals(ctx context.Context) error {
	return s.first.refreshPaymentTotals(ctx)
}
