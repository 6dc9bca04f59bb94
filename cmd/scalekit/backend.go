package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/queue/queueredis"
)

// config is the flags every command shares: where the queues live and
// how to print.
type config struct {
	redisURL, databaseURL string
	backend               string // "redis" or "postgres": which variable, when both are set
	cluster               bool
	prefix                string
	json                  bool
	timeout               time.Duration

	engine   string // "Redis" or "PostgreSQL", once open
	pgPrefix string
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.redisURL, "redis", "", "Redis URL (default $REDIS_URL): redis://[user:password@]host:port[/db]")
	fs.StringVar(&c.databaseURL, "database", "", "PostgreSQL URL (default $DATABASE_URL): postgres://user:password@host:port/db")
	fs.StringVar(&c.backend, "backend", "", "redis or postgres: which of $REDIS_URL and $DATABASE_URL to use when both are set")
	fs.BoolVar(&c.cluster, "cluster", false, "the Redis URL is a Redis Cluster (implied by several comma-separated hosts or addr= parameters)")
	fs.StringVar(&c.prefix, "prefix", "", `the engine's prefix: Redis key prefix (queueredis.Options.Prefix) or table prefix (queuepg.Options.Prefix) (default "queue")`)
	fs.BoolVar(&c.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&c.timeout, "timeout", DefaultTimeout, "give up on the whole command after this long (a server down or hung)")
}

// open connects to the backend the flags and environment name. It
// returns a *usageError when none or two are named, or a URL is bad.
func (c *config) open(env func(string) string) (queue.Backend, func(), error) {
	redisURL, dbURL := c.redisURL, c.databaseURL
	switch {
	case redisURL != "" && dbURL != "":
		return nil, nil, usagef("-redis and -database both given: choose one backend")
	case redisURL != "" || dbURL != "":
	default:
		re, de := env("REDIS_URL"), env("DATABASE_URL")
		switch c.backend {
		case "":
			switch {
			case re != "" && de != "":
				return nil, nil, usagef("both REDIS_URL and DATABASE_URL are set: choose with -backend redis or -backend postgres")
			case re == "" && de == "":
				return nil, nil, usagef("no backend: set REDIS_URL or DATABASE_URL, or pass -redis URL or -database URL")
			}
			redisURL, dbURL = re, de
		case "redis":
			if redisURL = re; re == "" {
				return nil, nil, usagef("-backend redis: REDIS_URL is not set (or pass -redis URL)")
			}
		case "postgres":
			if dbURL = de; de == "" {
				return nil, nil, usagef("-backend postgres: DATABASE_URL is not set (or pass -database URL)")
			}
		default:
			return nil, nil, usagef("-backend %q: must be redis or postgres", c.backend)
		}
	}
	if redisURL != "" {
		return c.openRedis(redisURL)
	}
	if c.cluster {
		return nil, nil, usagef("-cluster is for Redis; the backend is PostgreSQL")
	}
	return c.openPostgres(dbURL)
}

func (c *config) openRedis(raw string) (queue.Backend, func(), error) {
	c.engine = "Redis"
	if !strings.Contains(raw, "://") {
		return nil, nil, usagef("Redis URL: want redis://[user:password@]host:port[/db] (rediss:// for TLS, unix:///path for a socket)")
	}
	addrs, several, err := clusterURL(raw)
	if err != nil {
		return nil, nil, usagef("Redis URL: %v", err)
	}
	var client redis.UniversalClient
	if c.cluster || several {
		o, err := redis.ParseClusterURL(addrs)
		if err != nil {
			return nil, nil, usagef("Redis Cluster URL: %v", urlErr(err))
		}
		o.ContextTimeoutEnabled, o.DialTimeout = true, c.dialTimeout(o.DialTimeout)
		client = redis.NewClusterClient(o)
	} else {
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, nil, usagef("Redis URL: %v", urlErr(err))
		}
		o.ContextTimeoutEnabled, o.DialTimeout = true, c.dialTimeout(o.DialTimeout)
		client = redis.NewClient(o)
	}
	b, err := queueredis.New(queueredis.Options{Client: client, Prefix: c.prefix, Timeout: c.timeout})
	if err != nil {
		client.Close()
		return nil, nil, usagef("%v", err)
	}
	return b, func() { client.Close() }, nil
}

// dialTimeout is the URL's dial timeout (d; 0 when it sets none, then
// go-redis's default, 5s) within -timeout.
func (c *config) dialTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		d = 5 * time.Second
	}
	return min(d, c.timeout)
}

// clusterURL rewrites a URL with several comma-separated hosts
// (redis://h1:7000,h2:7001/) into go-redis's cluster form
// (redis://h1:7000/?addr=h2:7001); other URLs come back as they are.
// several reports whether the URL names more than one address.
func clusterURL(raw string) (cluster string, several bool, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw, false, errors.New("no scheme")
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	user := ""
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		user, authority = authority[:i+1], authority[i+1:]
	}
	hosts := strings.Split(authority, ",")
	if len(hosts) == 1 {
		u, err := url.Parse(raw)
		return raw, err == nil && u.Query().Has("addr"), nil
	}
	path, query, _ := strings.Cut(tail, "?")
	q := url.Values{}
	for _, h := range hosts[1:] {
		if h == "" {
			return "", false, errors.New("empty host in the comma-separated list")
		}
		q.Add("addr", h)
	}
	if query != "" {
		query = "&" + query
	}
	return scheme + "://" + user + hosts[0] + path + "?" + q.Encode() + query, true, nil
}

// urlErr drops the URL (and the password it may hold) from a parse error.
func urlErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *config) openPostgres(raw string) (queue.Backend, func(), error) {
	c.engine = "PostgreSQL"
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, nil, usagef("PostgreSQL URL: %v", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > c.timeout {
		cfg.ConnConfig.ConnectTimeout = c.timeout
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("PostgreSQL: %w", err)
	}
	c.pgPrefix = cmp.Or(c.prefix, "queue")
	b, err := queuepg.New(queuepg.Options{Pool: pool, Prefix: c.prefix})
	if err != nil {
		pool.Close()
		return nil, nil, usagef("%v", err)
	}
	return b, func() { b.Close(); pool.Close() }, nil
}

// explain turns an operation's error into a message that says what to
// do: a missing job, a server that did not answer in time, tables that
// are not there.
func (c *config) explain(ctx context.Context, err error) string {
	var pe *pgconn.PgError
	var nf *notFound
	switch {
	case errors.As(err, &nf):
		return err.Error()
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("%s did not answer within %v (-timeout): %v", c.engine, c.timeout, err)
	case errors.As(err, &pe) && pe.Code == "42P01":
		return fmt.Sprintf("the queue tables (%s_jobs) do not exist in this database: check -prefix, or run queuepg.Backend.Migrate first (%v)", c.pgPrefix, err)
	}
	return fmt.Sprintf("%s: %v", c.engine, err)
}
