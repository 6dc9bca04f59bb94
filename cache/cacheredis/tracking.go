package cacheredis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/pause"
)

// Server-assisted invalidation (Options.Tracking). Each subscriber owns
// one RESP2 connection that, on connect, turns CLIENT TRACKING on for
// itself in BCAST mode for the prefix, redirected to itself, and then
// subscribes to __redis__:invalidate (where Redis sends a RESP2 client's
// invalidations) and to the Store's channel. BCAST rather than the
// default per-key mode: per-key tracking belongs to the connection that
// read the key, so every pooled connection would need tracking on, would
// forget its keys silently when go-redis closes it (idle reaping, a read
// cut by a timeout), and would need its REDIRECT reissued whenever the
// invalidation connection reconnects, which go-redis's pool cannot do.
// BCAST ties everything to the one connection the Store watches; the
// price is that every instance hears of every write under the prefix
// (lease and counter keys too), not only of the keys it holds.

// invalidateChannel is where Redis sends a RESP2 client's invalidations.
const invalidateChannel = "__redis__:invalidate"

// trackingPing is how long the tracking connection may be silent before
// it is pinged; a ping unanswered for as long again counts as a lost
// connection (so a dead peer is noticed within 2 x trackingPing).
const trackingPing = time.Second

// Tracking reports whether Redis invalidates the subscribers' L1 copies
// itself (Options.Tracking); see cache.Tracker.
func (s *Store) Tracking() bool { return s.tc != nil }

// trackedMessage maps a Redis key Redis reported as changed to the
// cache's message: "|k|<key>" for a value ({prefix:key}), "|n|<name>" for
// a namespace version counter ({prefix:name}:version), "" for a lease or
// a key of another store whose prefix starts with this one's. A value key
// always ends in "}", a lease or counter never does.
func (s *Store) trackedMessage(rk string) string {
	rest, ok := strings.CutPrefix(rk, s.open)
	switch {
	case !ok:
		return ""
	case strings.HasSuffix(rest, "}"):
		return "|k|" + rest[:len(rest)-1]
	case strings.HasSuffix(rest, "}:version"):
		return "|n|" + strings.TrimSuffix(rest, "}:version")
	}
	return ""
}

// trackingClient is a client on the Store's Redis whose connections speak
// RESP2 and track the prefix (BCAST) with their invalidations redirected
// to themselves, before anything else is sent on them.
func (s *Store) trackingClient() *redis.Client {
	o := s.tc.Options()
	user := o.OnConnect
	prefix := s.open
	return redis.NewClient(&redis.Options{
		Network: o.Network, Addr: o.Addr, ClientName: o.ClientName, Dialer: o.Dialer, Protocol: 2,
		Username: o.Username, Password: o.Password, CredentialsProvider: o.CredentialsProvider,
		CredentialsProviderContext: o.CredentialsProviderContext, StreamingCredentialsProvider: o.StreamingCredentialsProvider,
		DB: o.DB, TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled, PoolSize: 1, DisableIdentity: o.DisableIdentity, IdentitySuffix: o.IdentitySuffix,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			if user != nil {
				if err := user(ctx, cn); err != nil {
					return err
				}
			}
			id, err := cn.ClientID(ctx).Result()
			if err != nil {
				return fmt.Errorf("CLIENT ID: %w", err)
			}
			if err := cn.Do(ctx, "CLIENT", "TRACKING", "ON", "REDIRECT", id, "BCAST", "PREFIX", prefix).Err(); err != nil {
				return fmt.Errorf("CLIENT TRACKING ON (Redis >= 6 is needed): %w", err)
			}
			return nil
		},
	})
}

// trackSession opens a tracking connection and returns once Redis has
// confirmed both subscriptions: from then on every change under the
// prefix is reported on it.
func (s *Store) trackSession(tc *redis.Client) (*redis.PubSub, error) {
	ctx, cancel := context.WithTimeout(context.Background(), max(s.timeout, time.Second))
	defer cancel()
	ps := tc.Subscribe(ctx, s.channel, invalidateChannel)
	for confirmed := 0; confirmed < 2; {
		m, err := ps.Receive(ctx)
		if err != nil {
			ps.Close()
			return nil, fmt.Errorf("cacheredis: tracking keys under %q: %w", s.open, err)
		}
		if sub, ok := m.(*redis.Subscription); ok && sub.Kind == "subscribe" {
			confirmed++
		}
	}
	return ps, nil
}

// SubscribeTracking is Subscribe that, with Options.Tracking, also
// delivers the cache's message for each key Redis reports changed, calls
// lost when the tracking connection is lost (a read error, a ping
// unanswered for 2 x 1s, a FLUSHALL) and back once tracking holds again
// on a new connection; see cache.Tracker. Without Options.Tracking it is
// SubscribeReconnects(fn, back).
func (s *Store) SubscribeTracking(fn func(msg string), lost, back func()) (func(), error) {
	if s.tc == nil {
		return s.SubscribeReconnects(fn, back)
	}
	tc := s.trackingClient()
	ps, err := s.trackSession(tc)
	if err != nil {
		tc.Close()
		return nil, err
	}
	var (
		mu      sync.Mutex
		cur     = ps
		stopped = make(chan struct{})
		done    = make(chan struct{})
	)
	onLost := func(err error) {
		s.log.Warn("cacheredis: lost the tracking connection", slog.Any("error", err))
		if lost != nil {
			lost()
		}
	}
	go func() {
		defer close(done)
		for {
			err := s.receiveTracked(ps, fn)
			ps.Close()
			select {
			case <-stopped:
				return
			default:
			}
			onLost(err)
			g := pause.Growing{Min: 10 * time.Millisecond, Max: time.Second}
			for {
				if ps, err = s.trackSession(tc); err == nil {
					break
				}
				s.log.Debug("cacheredis: tracking is not back yet", slog.Any("error", err))
				if !g.Wait(stopped) {
					return
				}
			}
			mu.Lock()
			select {
			case <-stopped:
				mu.Unlock()
				ps.Close()
				return
			default:
				cur = ps
			}
			mu.Unlock()
			s.log.Info("cacheredis: tracking is back")
			if back != nil {
				back()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			close(stopped)
			cur.Close()
			mu.Unlock()
			<-done
			tc.Close()
		})
	}, nil
}

// receiveTracked delivers what arrives on the tracking connection ps
// until it fails, and returns why: a read error, an unanswered ping, or
// a message go-redis cannot parse (a FLUSHALL's invalidation has no
// keys: treating it as a loss drops the L1, which is what it means).
func (s *Store) receiveTracked(ps *redis.PubSub, fn func(msg string)) error {
	ctx := context.Background()
	pinged := false
	for {
		m, err := ps.ReceiveTimeout(ctx, trackingPing)
		if err != nil {
			var ne net.Error
			if !pinged && errors.As(err, &ne) && ne.Timeout() {
				if err := ps.Ping(ctx); err != nil {
					return err
				}
				pinged = true
				continue
			}
			return err
		}
		pinged = false
		if m, ok := m.(*redis.Message); ok {
			if m.Channel != invalidateChannel {
				fn(m.Payload)
				continue
			}
			for _, k := range m.PayloadSlice {
				if msg := s.trackedMessage(k); msg != "" {
					fn(msg)
				}
			}
		}
	}
}
