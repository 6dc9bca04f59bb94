package cacheredis

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cachetest"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

func TestMain(m *testing.M) {
	if os.Getenv(fleetEnv) != "" {
		os.Exit(fleetChild())
	}
	testinfra.Main(m)
}

// newStore is New for tests, with testinfra.CallTimeout unless set.
func newStore(t testing.TB, o Options) *Store {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = testinfra.CallTimeout
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreConformanceStandalone(t *testing.T) {
	r := testinfra.Redis(t)
	cachetest.RunStore(t, func(t *testing.T) cache.Store { return newStore(t, Options{Client: r.Client}) })
}

func TestStoreConformanceCluster(t *testing.T) {
	c := testinfra.RedisCluster(t)
	cachetest.RunStore(t, func(t *testing.T) cache.Store {
		return newStore(t, Options{Client: c.Client, Prefix: c.Prefix + "cache"})
	})
}

func TestBadOptions(t *testing.T) {
	r := testinfra.Redis(t)
	plain := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { plain.Close() })
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, "Options.Client is required"},
		{Options{Client: r.Client, Timeout: -1}, "Options.Timeout must be > 0"},
		{Options{Client: plain}, "set ContextTimeoutEnabled: true"},
	} {
		if _, err := New(c.o); !errors.Is(err, cache.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v; want ErrInvalid saying %q", c.o, err, c.want)
		}
	}
}

// Every call fails fast, within Timeout, on a stopped or paused Redis.
func TestStoreDownOrPaused(t *testing.T) {
	r := testinfra.Redis(t)
	s := newStore(t, Options{Client: r.Client, Timeout: 50 * time.Millisecond})
	ctx := context.Background()
	calls := map[string]func() error{
		"Get":    func() error { _, err := s.Get(ctx, []string{"a", "b"}); return err },
		"Set":    func() error { return s.Set(ctx, "a", []byte("v"), time.Minute) },
		"Delete": func() error { return s.Delete(ctx, "a") },
		"Lease":  func() error { _, err := s.Lease(ctx, []string{"a"}, time.Minute); return err },
		"Fill": func() error {
			_, err := s.Fill(ctx, []cache.Fill{{Key: "a", Token: "t", Data: []byte("v"), TTL: time.Minute}})
			return err
		},
		"Version": func() error { _, err := s.Version(ctx, "ns"); return err },
		"Publish": func() error { return s.Publish(ctx, "m") },
	}
	for _, outage := range []struct {
		name       string
		start, end func()
	}{{"paused", r.Pause, r.Resume}, {"stopped", r.Stop, r.Start}} {
		outage.start()
		for name, call := range calls {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			done := make(chan error, 1)
			go func() { done <- call() }()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("%s with Redis %s: no error", name, outage.name)
				}
			case <-cctx.Done():
				t.Errorf("%s with Redis %s: still running after 2s (Timeout is 50ms)", name, outage.name)
			}
			cancel()
		}
		outage.end()
	}
	// Back: the store works again (the first calls may still meet the
	// connections the outage broke).
	var err error
	t.Cleanup(func() {
		if t.Failed() && err != nil {
			t.Logf("the last Set failed with: %v", err)
		}
	})
	poll.Until(t, 10*time.Second, "the store works again after the restart", func() bool {
		err = s.Set(ctx, "a", []byte("v"), time.Minute)
		return err == nil
	})
}

func TestInstancesStandalone(t *testing.T) {
	r := testinfra.Redis(t)
	cachetest.RunCache(t, func(t *testing.T) cache.Store { return newStore(t, Options{Client: r.Client}) })
}

func TestInstancesCluster(t *testing.T) {
	c := testinfra.RedisCluster(t)
	cachetest.RunCache(t, func(t *testing.T) cache.Store {
		return newStore(t, Options{Client: c.Client, Prefix: c.Prefix + "cache"})
	})
}
