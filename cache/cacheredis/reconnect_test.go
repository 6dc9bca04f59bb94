package cacheredis

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cachetest"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// Redis is restarted between a Set on instance A and a Get on instance B:
// the invalidation A published reached no one (B's subscription was still
// reconnecting), yet B does not keep serving its old L1 copy: its
// subscription reports the reconnect and B drops its L1. L1TTL is an hour
// here, so only the reconnect can save B.
func TestRedisRestartBetweenSetAndGet(t *testing.T) {
	r := testinfra.Redis(t)
	// B reaches Redis through a dialer the test can cut, so that B's
	// subscription is still down when A publishes after the restart.
	var cut atomic.Bool
	bClient := redis.NewClient(&redis.Options{Addr: r.Addr(), ContextTimeoutEnabled: true,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if cut.Load() {
				return nil, errors.New("test: instance B's network is cut")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}})
	t.Cleanup(func() { bClient.Close() })
	o := cache.Options{TTL: time.Hour, L1TTL: time.Hour}
	a := cachetest.Instances(t, 1, newStore(t, Options{Client: r.Client}), o)[0]
	b := cachetest.Instances(t, 1, newStore(t, Options{Client: bClient}), o)[0]
	ctx := context.Background()
	var db atomic.Value
	db.Store("old")
	load := func(context.Context, string) (string, error) { return db.Load().(string), nil }
	for _, c := range []*cache.Cache[string]{a, b} {
		if v, err := c.Get(ctx, "k", load); err != nil || v != "old" {
			t.Fatalf("warm-up: %q, %v", v, err)
		}
	}
	cut.Store(true)
	r.Stop()
	r.Start()
	db.Store("new")
	eventually(t, "A's Set reaches the restarted Redis", func() bool { return a.Set(ctx, "k", "new") == nil })
	cut.Store(false)
	eventually(t, "B serves the value A set, not its L1 copy from before the restart", func() bool {
		v, err := b.Get(ctx, "k", load)
		return err == nil && v == "new"
	})
	if st := b.Stats(); st.Resubscribes == 0 {
		t.Fatalf("B's stats show no resubscription: %+v", st)
	}
}
