package cache

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/clock"
)

func TestGetManyInto(t *testing.T) {
	c := newCache(t, Options{TTL: time.Minute})
	ctx := context.Background()
	if err := c.Set(ctx, "a", "A"); err != nil {
		t.Fatal(err)
	}
	var asked [][]string
	batch := func(ctx context.Context, keys []string) (map[string]string, error) {
		asked = append(asked, slices.Clone(keys))
		return map[string]string{"b": "B"}, nil // "gone" does not exist
	}
	keys := []string{"a", "b", "gone"}
	vals := []string{"junk", "junk", "junk", "untouched"}
	found := []bool{true, true, true, true}
	if err := c.GetManyInto(ctx, keys, vals, found, batch); err != nil {
		t.Fatal(err)
	}
	if want := []string{"A", "B", "", "untouched"}; !slices.Equal(vals, want) {
		t.Fatalf("vals = %q, want %q", vals, want)
	}
	if want := []bool{true, true, false, true}; !slices.Equal(found, want) {
		t.Fatalf("found = %v, want %v", found, want)
	}
	if len(asked) != 1 || !slices.Equal(asked[0], []string{"b", "gone"}) {
		t.Fatalf("the batch loader saw %q, want one call for [b gone]", asked)
	}
	// Again, found nil: everything from the L1 (a remembered ErrNotFound
	// for "gone"), no load.
	clear(vals)
	if err := c.GetManyInto(ctx, keys, vals[:3], nil, batch); err != nil {
		t.Fatal(err)
	}
	if want := []string{"A", "B", ""}; !slices.Equal(vals[:3], want) || len(asked) != 1 {
		t.Fatalf("vals = %q after %d loads, want %q after 1", vals[:3], len(asked), want)
	}
	// It agrees with GetMany.
	m, err := c.GetMany(ctx, keys, batch)
	if err != nil || len(m) != 2 || m["a"] != "A" || m["b"] != "B" {
		t.Fatalf("GetMany = %v, %v", m, err)
	}
}

// Slices shorter than the keys are a clear error, not a panic, and load
// nothing.
func TestGetManyIntoShortSlices(t *testing.T) {
	c := newCache(t, Options{TTL: time.Minute})
	loads := 0
	batch := func(ctx context.Context, keys []string) (map[string]string, error) { loads++; return nil, nil }
	for _, tc := range []struct {
		name  string
		vals  []string
		found []bool
	}{{"vals", make([]string, 1), nil}, {"found", make([]string, 2), make([]bool, 1)}} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.GetManyInto(context.Background(), []string{"a", "b"}, tc.vals, tc.found, batch)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "len("+tc.name+")") || loads != 0 {
				t.Fatalf("err %v after %d loads, want ErrInvalid naming %s and no load", err, loads, tc.name)
			}
			err = c.Namespace("n").GetManyInto(context.Background(), []string{"a", "b"}, tc.vals, tc.found, batch)
			if !errors.Is(err, ErrInvalid) || loads != 0 {
				t.Fatalf("namespace: err %v after %d loads, want ErrInvalid and no load", err, loads)
			}
		})
	}
}

func TestNamespaceGetManyInto(t *testing.T) {
	c := newCache(t, Options{TTL: time.Minute})
	ctx := context.Background()
	users := c.Namespace("user")
	if err := users.Set(ctx, "1", "one"); err != nil {
		t.Fatal(err)
	}
	batch := func(ctx context.Context, ids []string) (map[string]string, error) {
		if !slices.Equal(ids, []string{"2"}) {
			t.Errorf("the loader saw %q, want the plain ids [2]", ids)
		}
		return map[string]string{"2": "two"}, nil
	}
	vals, found := make([]string, 2), make([]bool, 2)
	if err := users.GetManyInto(ctx, []string{"1", "2"}, vals, found, batch); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vals, []string{"one", "two"}) || !slices.Equal(found, []bool{true, true}) {
		t.Fatalf("vals %q found %v", vals, found)
	}
}

// A hit takes the quick path only before the entry's quiet instant: in
// the early window a hit of GetManyInto (as of Get) still draws XFetch's
// early refresh, and one outside it does not.
func TestQuietHitsKeepEarlyRefreshes(t *testing.T) {
	c, at := earlyCache(t)
	ctx := context.Background()
	var loads atomic.Int32
	batch := func(ctx context.Context, keys []string) (map[string]string, error) {
		loads.Add(1)
		at.Add(int64(time.Millisecond)) // a 1ms load: XFetch may start 30 x 1ms x Beta before expiry, inside the 50ms window
		return map[string]string{"k": "v"}, nil
	}
	vals := make([]string, 1)
	if err := c.GetManyInto(ctx, []string{"k"}, vals, nil, batch); err != nil {
		t.Fatal(err)
	}
	expiry := at.Load() + int64(time.Second)
	at.Store(expiry - int64(40*time.Millisecond)) // in the window, but 40 load times away: -ln(r) > 30 is never drawn
	if err := c.GetManyInto(ctx, []string{"k"}, vals, nil, batch); err != nil || vals[0] != "v" {
		t.Fatal(vals, err)
	}
	if st := c.Stats(); st.EarlyRefreshes != 0 {
		t.Fatalf("40 load times before expiry: %d early refreshes, want none", st.EarlyRefreshes)
	}
	at.Store(expiry - int64(20*time.Millisecond)) // 20 load times: r = 1e-300 draws it
	if err := c.GetManyInto(ctx, []string{"k"}, vals, nil, batch); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); loads.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if st := c.Stats(); st.EarlyRefreshes != 1 || loads.Load() != 2 {
		t.Fatalf("20 load times before expiry: %d early refreshes, %d loads; want 1 and 2", st.EarlyRefreshes, loads.Load())
	}
}

// A GetMany (or GetManyInto) over keys the L1 holds reads the clock once
// and answers the whole batch as of then: before, every key read it (a
// quarter of a 100-key GetMany's time), so with a clock that moves 10s a
// read and a 30s TTL the later keys of a batch were misses.
func TestGetManyReadsTheClockOnce(t *testing.T) {
	var reads atomic.Int64
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	moving := atomic.Bool{}
	c := newCache(t, Options{TTL: 30 * time.Second, NoEarlyRefresh: true, Jitter: 0, Clock: clock.Func(func() time.Time {
		n := reads.Add(1)
		if !moving.Load() {
			return base
		}
		return base.Add(time.Duration(n) * 10 * time.Second)
	})})
	ctx := context.Background()
	keys := make([]string, 10)
	for i := range keys {
		keys[i] = string(rune('a' + i))
		if err := c.Set(ctx, keys[i], strings.ToUpper(keys[i])); err != nil {
			t.Fatal(err)
		}
	}
	fail := func(context.Context, []string) (map[string]string, error) { return nil, errors.New("must not load") }
	for _, into := range []bool{false, true} {
		reads.Store(0)
		moving.Store(true)
		var err error
		if into {
			err = c.GetManyInto(ctx, keys, make([]string, len(keys)), nil, fail)
		} else {
			var m map[string]string
			m, err = c.GetMany(ctx, keys, fail)
			if len(m) != len(keys) {
				t.Errorf("GetMany = %v", m)
			}
		}
		moving.Store(false)
		if n := reads.Load(); err != nil || n != 1 {
			t.Errorf("into=%v: %v after %d clock reads, want 1", into, err, n)
		}
	}
}
