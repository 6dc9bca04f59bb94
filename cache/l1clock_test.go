package cache

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The L1 reads a coarse clock (l1ClockTick), but what a Get serves is
// decided on the precise time: a value is a miss 1ns past its expiry,
// though the L1 still holds it; and the L1 lets go of it within a few
// ticks after that, so the memory of expired entries is still freed.
func TestCoarseL1ClockServesOnThePreciseTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCache(t, Options{TTL: time.Second, NoJitter: true, NoStale: true, NoEarlyRefresh: true})
		ctx := context.Background()
		var loads atomic.Int32
		load := func(ctx context.Context, key string) (string, error) {
			return "v" + strconv.Itoa(int(loads.Add(1))), nil
		}
		if v, err := c.Get(ctx, "k", load); err != nil || v != "v1" {
			t.Fatal(v, err)
		}
		time.Sleep(time.Second - time.Nanosecond)
		if v, _ := c.Get(ctx, "k", load); v != "v1" {
			t.Fatalf("1ns before expiry: %q, want the cached v1", v)
		}
		time.Sleep(time.Nanosecond)
		if v, _ := c.Get(ctx, "k", load); v != "v2" || loads.Load() != 2 {
			t.Fatalf("at expiry: %q after %d loads, want a miss loading v2", v, loads.Load())
		}
		if err := c.Set(ctx, "gone", "x"); err != nil {
			t.Fatal(err)
		}
		// Past expiry + 2 ticks of the L1's clock + its 1s sweep, both
		// entries are gone from the L1 without being read.
		time.Sleep(time.Second + 2*l1ClockTick + 2*time.Second)
		if n := c.Stats().Entries; n != 0 {
			t.Fatalf("%d entries left in the L1 after they expired, want 0", n)
		}
	})
}

// Many goroutines hit keys that expire every 2ms, while Close stops the
// L1's clock halfway: no Get serves a value that expired, before or after
// Close. The loader stamps its value when it starts and the entry's TTL
// runs from when the fill stores it, so a value may be served up to the
// load's length past its stamp's TTL: slack allows for that. A hit on the
// L1's coarse clock (a tick is 1s) would serve values hundreds of TTLs
// old.
func TestHammerCoarseL1Clock(t *testing.T) {
	const ttl, slack = 2 * time.Millisecond, 100 * time.Millisecond
	c, err := New[string](Options{TTL: ttl, NoJitter: true, NoStale: true, NoEarlyRefresh: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	load := func(ctx context.Context, key string) (string, error) {
		return key + "@" + strconv.FormatInt(c.now(), 10), nil
	}
	var wg sync.WaitGroup
	var gets atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 3000; i++ {
				k := "k" + strconv.Itoa((g+i)%20)
				before := c.now()
				v, err := c.Get(context.Background(), k, load)
				if err != nil {
					t.Errorf("%s: %v", k, err)
					return
				}
				key, at, _ := strings.Cut(v, "@")
				loaded, _ := strconv.ParseInt(at, 10, 64)
				if key != k || loaded+int64(ttl+slack) <= before {
					t.Errorf("Get(%s) at %d = %q: loaded %v before, past its %v TTL", k, before, v, time.Duration(before-loaded), ttl+slack)
					return
				}
				if gets.Add(1) == 16*3000/2 {
					c.Close()
				}
			}
		}()
	}
	wg.Wait()
}
