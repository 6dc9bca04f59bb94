package cacheredis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
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
	bClient, cut := cuttable(t, r)
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

// A Set and a Delete on instance A while Redis does not answer (paused,
// A's breaker open) are not lost: once Redis answers again, A deletes the
// keys from Redis and publishes their invalidations, so instance B stops
// serving its old copies (L1TTL and TTL are an hour here).
func TestInvalidationsKeptWhileRedisDown(t *testing.T) {
	r := testinfra.Redis(t)
	br, err := breaker.New(breaker.Options{ConsecutiveFailures: 1, OpenTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	o := cache.Options{TTL: time.Hour, L1TTL: time.Hour}
	b := cachetest.Instances(t, 1, newStore(t, Options{Client: r.Client}), o)[0]
	o.Breaker = br
	a := cachetest.Instances(t, 1, newStore(t, Options{Client: r.Client, Timeout: 50 * time.Millisecond}), o)[0]
	ctx := context.Background()
	var db sync.Map
	db.Store("set", "old")
	db.Store("deleted", "old")
	load := func(_ context.Context, k string) (string, error) {
		v, ok := db.Load(k)
		if !ok {
			return "", cache.ErrNotFound
		}
		return v.(string), nil
	}
	for _, c := range []*cache.Cache[string]{a, b} {
		for _, k := range []string{"set", "deleted"} {
			if v, err := c.Get(ctx, k, load); err != nil || v != "old" {
				t.Fatalf("warm-up %s: %q, %v", k, v, err)
			}
		}
	}
	r.Pause()
	db.Store("set", "new")
	db.Delete("deleted")
	if err := a.Set(ctx, "set", "new"); err == nil {
		t.Fatal("Set with Redis paused returned no error")
	}
	if err := a.Delete(ctx, "deleted"); err == nil {
		t.Fatal("Delete with Redis paused returned no error")
	}
	if st := a.Stats(); st.PendingInvalidations != 2 || st.Circuit != breaker.Open {
		t.Fatalf("with Redis paused: %d pending invalidations, circuit %v; want 2, open", st.PendingInvalidations, st.Circuit)
	}
	r.Resume()
	eventually(t, "B serves the new value and forgets the deleted key", func() bool {
		v, err := b.Get(ctx, "set", load)
		_, derr := b.Get(ctx, "deleted", load)
		return err == nil && v == "new" && errors.Is(derr, cache.ErrNotFound)
	})
	eventually(t, "A has nothing pending", func() bool { return a.Stats().PendingInvalidations == 0 })
	if st := a.Stats(); st.DelayedInvalidations != 2 {
		t.Fatalf("A delivered %d invalidations late, want 2", st.DelayedInvalidations)
	}
}
