// Package cacheredis is the Redis L2 for package cache: a cache.Store on
// a *redis.Client, *redis.ClusterClient or any redis.UniversalClient,
// shared by every instance of a service.
//
//	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
//	store, err := cacheredis.New(cacheredis.Options{Client: client, Prefix: "myapp"})
//	if err != nil { ... }
//	users, err := cache.New[User](cache.Options{Store: store, TTL: 5 * time.Minute})
//	if err != nil { ... }
//	defer users.Close()
//	u, err := users.Get(ctx, id, loadUser) // L1, then Redis, then loadUser once per fleet
//
// # How it works
//
// Keys: a value lives at {prefix:key} and its fill lease at
// {prefix:key}:lease; the braces are a hash tag, so on Redis Cluster a
// value and its lease share a slot and the token-fenced fill is one
// script. Namespace versions are counters at {prefix:name}:version; they
// start at the Redis TIME in milliseconds, so a counter lost to a restart
// or eviction never reuses a version. Invalidations travel on the
// PUBLISH channel prefix+":invalidate" (classic pub/sub reaches every
// node of a cluster).
//
// A fill lease is renewed by its holder while its load runs
// (RenewLeases, a compare-token-and-PEXPIRE script: cache.LeaseRenewer),
// so a load slower than the lease still fills.
//
// # Redis invalidates the L1s (Options.Tracking)
//
// With Options.Tracking, the L1 coherence comes from Redis itself
// (server-assisted client-side caching): each instance keeps one
// dedicated connection that turns on CLIENT TRACKING in BCAST mode for
// "{prefix:" (redirected to itself, listening on __redis__:invalidate),
// and Redis reports on it every change of a key under the prefix,
// whoever makes it: another instance, a program writing the keys with a
// plain client, an expiry, an eviction, FLUSHALL. The instance drops its
// copy of that key (a namespace's counter key re-reads the namespace);
// measured on one local Redis, the slowest of 3 instances heard of a
// plain client's write within 0.13 ms at the median, 0.25 ms at p99. An
// L1 copy is then trusted for its whole freshness (cache.Options.L1TTL
// defaults to TTL) and Set and Delete publish no message of their own.
// When that connection breaks or stops answering pings (2 x 1s), the
// instance drops its whole L1, keeps new copies for the non-tracking
// L1TTL (TTL/10) while it reconnects, and drops them again when tracking
// holds once more, so no write made meanwhile is served from an old
// copy (cache.Stats.FeedLosses, Resubscribes). Fill leases and fencing
// are unchanged.
//
// Why BCAST rather than per-key tracking: Redis tracks a key for the
// connection that read it, so with go-redis's pool every pooled
// connection would need tracking on, would forget its keys silently
// when closed (idle reaping, a read cut by a timeout) and would need its
// REDIRECT reissued after each reconnect of the invalidation connection,
// none of which the pool allows. BCAST ties tracking to the one
// connection the Store watches; its price is that every instance hears
// of every write under the prefix (leases and counters too), not only of
// the keys it holds, and that an instance's own writes drop its own copy
// (the next read is an L2 hit). Every instance of a fleet must use the
// same mode: a tracking instance's Set publishes no message, so an
// instance without tracking hears of it only after its L1TTL (during a
// rolling switch, as when a message is lost). Tracking needs Redis >= 6
// and a *redis.Client (standalone or failover): Redis Cluster tracks per
// node and New refuses a cluster client with Tracking.
//
// # When Redis is down
//
// Every call is bounded by Options.Timeout (or by the caller's deadline
// when it comes first). A call whose ctx has neither a deadline nor a
// cancellation (the cache's own reads and fills) gets its timeout from a
// pooled context rather than context.WithTimeout's five allocations; a
// go-redis Hook must not keep a command's ctx after the command returns
// (go-redis itself keeps none). A one-key read is a plain GET
// (cache.OneGetter). When Redis is down, slow or
// flapping, calls return errors quickly; cache.Cache puts a circuit
// breaker in front of its Store and keeps serving from its L1 and the
// loader. A subscription that loses its connection is re-established by
// go-redis; messages published meanwhile are lost, so the Store reports
// each reconnect (cache.ReconnectSubscriber) and cache drops its L1 then;
// cache also bounds how long an L1 copy is trusted (cache.Options.L1TTL).
package cacheredis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/redisx"
	"github.com/scalekit-go/scalekit/internal/token"
)

// ErrInvalid is wrapped by errors about bad options.
var ErrInvalid = cache.ErrInvalid

// Options configures New. Client is required.
type Options struct {
	// Client is the Redis. Its options need ContextTimeoutEnabled (or a
	// ReadTimeout no longer than Timeout), or New refuses it.
	Client redis.UniversalClient
	// Prefix starts every key. Default: "cache".
	Prefix string
	// Channel is the invalidation channel. Default: Prefix + ":invalidate".
	Channel string
	// Timeout bounds every call. Default: 100ms.
	Timeout time.Duration
	// Logger receives subscription problems. Default: discard.
	Logger *slog.Logger
	// Tracking makes Redis itself invalidate the instances' L1 copies
	// (server-assisted client-side caching, CLIENT TRACKING in BCAST
	// mode): each subscriber holds one dedicated connection on which
	// Redis reports every change of a key under the prefix, whoever makes
	// it (this Store, another program writing the keys directly, an
	// expiry, an eviction, FLUSHALL), and the cache drops its L1 copy of
	// that key. When that connection is lost (or stops answering its
	// pings) the cache drops its whole L1 at once and again when tracking
	// is back, so no write made meanwhile is served from an old copy; an
	// L1 copy is then kept for its whole freshness (cache.Options.L1TTL
	// defaults to TTL) and a repeated read is an L1 hit. It needs
	// Redis >= 6 and a *redis.Client (standalone, or Sentinel's failover
	// client): Redis Cluster tracks per node and is refused. Turn it on
	// for every instance of a fleet: with it Set and Delete publish no
	// message, which instances without it rely on.
	Tracking bool
}

// Store is a cache.Store on Redis. It is safe for concurrent use.
type Store struct {
	c       redis.UniversalClient
	tc      *redis.Client // Options.Tracking: the client tracking connections are made from
	prefix  string
	open    string // "{" + prefix + ":", the start of every key
	channel string
	timeout time.Duration
	log     *slog.Logger
}

// New returns a Store, or an error naming the option to fix.
func New(o Options) (*Store, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("%w: cacheredis: Options.Client is required", ErrInvalid)
	}
	if o.Prefix == "" {
		o.Prefix = "cache"
	}
	if o.Channel == "" {
		o.Channel = o.Prefix + ":invalidate"
	}
	if o.Timeout == 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("%w: cacheredis: Options.Timeout must be > 0, got %v", ErrInvalid, o.Timeout)
	}
	if err := redisx.CheckClientTimeouts(o.Client, o.Timeout); err != nil {
		return nil, fmt.Errorf("%w: cacheredis: Options.Client: %v", ErrInvalid, err)
	}
	o.Logger = logx.Or(o.Logger)
	s := &Store{c: o.Client, prefix: o.Prefix, open: "{" + o.Prefix + ":", channel: o.Channel, timeout: o.Timeout, log: o.Logger}
	if o.Tracking {
		c, ok := o.Client.(*redis.Client)
		if !ok {
			return nil, fmt.Errorf("%w: cacheredis: Options.Tracking needs a *redis.Client (standalone Redis or a failover client), not %T: Redis Cluster tracks keys per node, which this Store does not support", ErrInvalid, o.Client)
		}
		s.tc = c
	}
	return s, nil
}

// key is k's Redis key, {prefix:k}; lease its fill lease's.
func (s *Store) key(k string) string   { return s.open + k + "}" }
func (s *Store) lease(k string) string { return s.open + k + "}:lease" }

// ctx bounds a call by the Store's timeout (see callCtx); the caller
// calls end on the second result when the call is over.
func (s *Store) ctx(ctx context.Context) (context.Context, *callCtx) {
	return bound(ctx, s.timeout)
}

// GetOne reads one key (GET); see cache.OneGetter.
func (s *Store) GetOne(ctx context.Context, key string) ([]byte, error) {
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	b, err := s.c.Get(ctx, s.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

// Get reads keys in one pipelined round trip (one per node on a cluster).
func (s *Store) Get(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if len(keys) == 1 {
		b, err := s.GetOne(ctx, keys[0])
		out[0] = b
		return out, err
	}
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, s.key(k))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for i, c := range cmds {
		b, err := c.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, err
		default:
			out[i] = b
		}
	}
	return out, nil
}

var setScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
`)

// Set stores data and voids the key's lease, in one script.
func (s *Store) Set(ctx context.Context, key string, data []byte, ttl time.Duration) error {
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	return setScript.Run(ctx, s.c, []string{s.key(key), s.lease(key)}, data, ms(ttl)).Err()
}

// Delete removes keys and their leases in one pipelined round trip.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, s.key(k), s.lease(k))
		}
		return nil
	})
	return err
}

// Lease is SET {prefix:key}:lease token NX PX ttl for each key, in one
// pipelined round trip (one per node on a cluster).
func (s *Store) Lease(ctx context.Context, keys []string, ttl time.Duration) ([]string, error) {
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	tokens := make([]string, len(keys))
	cmds := make([]*redis.StatusCmd, len(keys))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			tokens[i] = token.New()
			cmds[i] = p.SetArgs(ctx, s.lease(k), tokens[i], redis.SetArgs{Mode: "NX", TTL: max(time.Millisecond, ttl)})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for i, c := range cmds {
		switch err := c.Err(); {
		case errors.Is(err, redis.Nil):
			tokens[i] = ""
		case err != nil:
			return nil, err
		}
	}
	return tokens, nil
}

var fillScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
`)

// Fill runs a compare-token-and-set script per fill: one EVALSHA for a
// single fill, pipelined EVALs (one round trip per node) for several.
func (s *Store) Fill(ctx context.Context, fills []cache.Fill) ([]bool, error) {
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	out := make([]bool, len(fills))
	if len(fills) == 1 {
		f := fills[0]
		n, err := fillScript.Run(ctx, s.c, []string{s.key(f.Key), s.lease(f.Key)}, f.Token, f.Data, ms(f.TTL)).Int()
		out[0] = n == 1
		return out, err
	}
	cmds := make([]*redis.Cmd, len(fills))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, f := range fills {
			cmds[i] = fillScript.Eval(ctx, p, []string{s.key(f.Key), s.lease(f.Key)}, f.Token, f.Data, ms(f.TTL))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return scriptResults(cmds, out)
}

// scriptResults fills out with whether each pipelined script returned 1.
func scriptResults(cmds []*redis.Cmd, out []bool) ([]bool, error) {
	for i, c := range cmds {
		n, err := c.Int()
		if err != nil {
			return nil, err
		}
		out[i] = n == 1
	}
	return out, nil
}

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Release deletes the lease if token holds it.
func (s *Store) Release(ctx context.Context, key, token string) error {
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	return releaseScript.Run(ctx, s.c, []string{s.lease(key)}, token).Err()
}

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// RenewLeases extends each lease its token holds (a compare-and-PEXPIRE
// script per key: one EVALSHA for one key, pipelined EVALs for several);
// see cache.LeaseRenewer.
func (s *Store) RenewLeases(ctx context.Context, keys, tokens []string, ttl time.Duration) ([]bool, error) {
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	out := make([]bool, len(keys))
	if len(keys) == 1 {
		n, err := renewScript.Run(ctx, s.c, []string{s.lease(keys[0])}, tokens[0], ms(ttl)).Int()
		out[0] = n == 1
		return out, err
	}
	cmds := make([]*redis.Cmd, len(keys))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = renewScript.Eval(ctx, p, []string{s.lease(k)}, tokens[i], ms(ttl))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return scriptResults(cmds, out)
}

// counterScript returns (creating it at Redis TIME in ms when missing, so
// no incarnation of it reuses a value) and with ARGV[1] == "1" increments
// the counter.
var counterScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
end
if ARGV[1] == '1' then return redis.call('INCR', KEYS[1]) end
return tonumber(redis.call('GET', KEYS[1]))
`)

// Version reads counter name.
func (s *Store) Version(ctx context.Context, name string) (int64, error) {
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	return counterScript.Run(ctx, s.c, []string{s.key(name) + ":version"}, "0").Int64()
}

// Incr increments counter name.
func (s *Store) Incr(ctx context.Context, name string) (int64, error) {
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	return counterScript.Run(ctx, s.c, []string{s.key(name) + ":version"}, "1").Int64()
}

// Publish sends msg on the invalidation channel.
func (s *Store) Publish(ctx context.Context, msg string) error {
	ctx, cc := s.ctx(ctx)
	defer cc.end()
	return s.c.Publish(ctx, s.channel, msg).Err()
}

// Subscribe listens on the invalidation channel; it returns once Redis
// has confirmed the subscription, so nothing published afterwards is
// missed while the connection holds. fn runs on the subscription's
// goroutine; stop closes the subscription and waits for that goroutine.
func (s *Store) Subscribe(fn func(msg string)) (func(), error) {
	return s.SubscribeReconnects(fn, nil)
}

// SubscribeReconnects is Subscribe that also calls reconnected (when not
// nil) each time go-redis re-establishes the subscription after losing
// its connection: messages published in between are lost, and cache
// drops its L1 then. See cache.ReconnectSubscriber.
func (s *Store) SubscribeReconnects(fn func(msg string), reconnected func()) (func(), error) {
	if s.tc != nil {
		return s.SubscribeTracking(fn, reconnected, reconnected)
	}
	ps := s.c.Subscribe(context.Background(), s.channel)
	ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, time.Second))
	defer cancel()
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return nil, fmt.Errorf("cacheredis: subscribing to %q: %w", s.channel, err)
	}
	// With subscriptions, the channel also carries go-redis's
	// resubscription after a reconnect (the first confirmation was read
	// above): that is how a lost connection shows.
	ch := ps.ChannelWithSubscriptions()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m := range ch {
			switch m := m.(type) {
			case *redis.Message:
				fn(m.Payload)
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					s.log.Info("cacheredis: the invalidation subscription reconnected", slog.String("channel", m.Channel))
					if reconnected != nil {
						reconnected()
					}
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			ps.Close()
			wg.Wait()
		})
	}, nil
}

func ms(d time.Duration) int64 { return max(1, d.Milliseconds()) }

var (
	_ cache.Store        = (*Store)(nil)
	_ cache.LeaseRenewer = (*Store)(nil)
	_ cache.OneGetter    = (*Store)(nil)

	_ cache.ReconnectSubscriber = (*Store)(nil)
	_ cache.Tracker             = (*Store)(nil)
)
