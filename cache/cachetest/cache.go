package cachetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/internal/poll"
)

// RunCache runs the multi-instance suite as subtests of t: several Caches
// (separate L1s) over one Store behave as one cache. newStore is called
// once per subtest and its Store shared by that subtest's instances.
func RunCache(t *testing.T, newStore StoreFactory) {
	t.Run("StampedeAcrossInstances", func(t *testing.T) { stampede(t, newStore(t)) })
	t.Run("StaleWhileRevalidateAcrossInstances", func(t *testing.T) { staleAcross(t, newStore(t)) })
	t.Run("SetReachesEveryInstance", func(t *testing.T) { setReaches(t, newStore(t)) })
	t.Run("DeleteReachesEveryInstance", func(t *testing.T) { deleteReaches(t, newStore(t)) })
	t.Run("NamespaceInvalidate", func(t *testing.T) { namespaceInvalidate(t, newStore(t)) })
	t.Run("GetManyAcrossInstances", func(t *testing.T) { getManyAcross(t, newStore(t)) })
	t.Run("FillFencedBySet", func(t *testing.T) { fillFenced(t, newStore(t)) })
	t.Run("LeaseHolderDies", func(t *testing.T) { holderDies(t, newStore(t)) })
	t.Run("LoadSlowerThanLeaseTTL", func(t *testing.T) { slowLoad(t, newStore(t)) })
	t.Run("GetManyRefreshesStaleKeysInOneBatch", func(t *testing.T) { getManyStale(t, newStore(t)) })
	t.Run("InvalidationsKeptWhileStoreDown", func(t *testing.T) { keptWhileDown(t, newStore(t)) })
	t.Run("PendingInvalidationsOverflow", func(t *testing.T) { pendingOverflow(t, newStore(t)) })
	t.Run("GetAndGetManyAgree", func(t *testing.T) { agree(t, newStore) })
}

// Instances returns n caches over store with options o (Store set), closed
// at cleanup.
func Instances(t testing.TB, n int, store cache.Store, o cache.Options) []*cache.Cache[string] {
	t.Helper()
	o.Store = store
	out := make([]*cache.Cache[string], n)
	for i := range out {
		c, err := cache.New[string](o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out[i] = c
	}
	return out
}

// counting is a loader that counts its calls, takes d and returns
// "<key>#<call>".
func counting(calls *atomic.Int64, d time.Duration) cache.Loader[string] {
	return func(ctx context.Context, key string) (string, error) {
		n := calls.Add(1)
		time.Sleep(d)
		return key + "#" + strconv.FormatInt(n, 10), nil
	}
}

// tracks reports whether store's server invalidates the L1 copies
// itself (cache.Tracker): then an instance's own writes drop its own copy
// too, whenever their invalidation arrives.
func tracks(store cache.Store) bool {
	tr, ok := store.(cache.Tracker)
	return ok && tr.Tracking()
}

func mustGet(t testing.TB, c *cache.Cache[string], key string, load cache.Loader[string]) string {
	t.Helper()
	v, err := c.Get(context.Background(), key, load)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

// eventually polls cond for up to 5s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 5*time.Second, what, cond)
}

// 8 instances x 100 goroutines hit one key right after it expired: the
// loader runs once in the whole fleet.
func stampede(t *testing.T, store cache.Store) {
	const instances, goroutines = 8, 100
	caches := Instances(t, instances, store, cache.Options{TTL: 300 * time.Millisecond, NoStale: true, NoJitter: true, NoEarlyRefresh: true})
	key := Key(t, "hot")
	var calls atomic.Int64
	load := counting(&calls, 50*time.Millisecond)
	for _, c := range caches {
		mustGet(t, c, key, load)
	}
	if calls.Load() != 1 {
		t.Fatalf("warm-up: %d loads for 8 instances, want 1 (the others read the Store)", calls.Load())
	}
	time.Sleep(350 * time.Millisecond) // past the TTL everywhere
	calls.Store(0)
	start := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for _, c := range caches {
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				v, err := c.Get(context.Background(), key, load)
				if err != nil || v != key+"#1" {
					bad.Add(1)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	t.Logf("%d instances x %d goroutines on an expired key: the loader ran %d time(s)", instances, goroutines, calls.Load())
	if calls.Load() != 1 {
		t.Fatalf("the loader ran %d times across %d instances, want exactly 1", calls.Load(), instances)
	}
	if bad.Load() > 0 {
		t.Fatalf("%d callers did not get the one loaded value", bad.Load())
	}
	var waits uint64
	for _, c := range caches {
		waits += c.Stats().LeaseWaits
	}
	// The others either waited for the holder's fill or, coming later,
	// found it in the Store already.
	if waits > instances-1 {
		t.Fatalf("%d instances waited for the lease holder's fill, at most %d should", waits, instances-1)
	}
	t.Logf("%d of the other %d instances waited for the fill; the rest found it in the Store", waits, instances-1)
}

// Past TTL but within StaleFor, every instance serves the old value at
// once and one instance in the fleet refreshes.
func staleAcross(t *testing.T, store cache.Store) {
	caches := Instances(t, 4, store, cache.Options{TTL: 200 * time.Millisecond, StaleFor: time.Minute, NoJitter: true, NoEarlyRefresh: true})
	key := Key(t, "k")
	var calls atomic.Int64
	load := counting(&calls, 30*time.Millisecond)
	for _, c := range caches {
		mustGet(t, c, key, load)
	}
	time.Sleep(250 * time.Millisecond)
	for _, c := range caches {
		for i := 0; i < 20; i++ {
			if v := mustGet(t, c, key, load); v != key+"#1" && v != key+"#2" {
				t.Fatalf("stale read got %q", v)
			}
		}
	}
	eventually(t, "the refreshed value reaches every instance", func() bool {
		for _, c := range caches {
			if mustGet(t, c, key, load) != key+"#2" {
				return false
			}
		}
		return true
	})
	if calls.Load() != 2 {
		t.Fatalf("%d loads, want 2: the first and one refresh for the fleet", calls.Load())
	}
}

func setReaches(t *testing.T, store cache.Store) {
	caches := Instances(t, 3, store, cache.Options{TTL: time.Hour})
	key := Key(t, "k")
	var calls atomic.Int64
	load := counting(&calls, 0)
	for _, c := range caches {
		mustGet(t, c, key, load)
	}
	if err := caches[0].Set(context.Background(), key, "new"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every instance sees the Set", func() bool {
		for _, c := range caches {
			if mustGet(t, c, key, load) != "new" {
				return false
			}
		}
		return true
	})
	if calls.Load() != 1 {
		t.Fatalf("%d loads: the Set value should come from the Store", calls.Load())
	}
	if st := caches[1].Stats(); st.Invalidations == 0 {
		t.Fatalf("instance 1 applied no invalidation: %+v", st)
	}
}

func deleteReaches(t *testing.T, store cache.Store) {
	caches := Instances(t, 3, store, cache.Options{TTL: time.Hour})
	key := Key(t, "k")
	var calls atomic.Int64
	load := counting(&calls, 0)
	for _, c := range caches {
		mustGet(t, c, key, load)
	}
	if err := caches[2].Delete(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every instance drops the deleted value", func() bool {
		for _, c := range caches {
			if mustGet(t, c, key, load) == key+"#1" {
				return false
			}
		}
		return true
	})
	if calls.Load() != 2 {
		t.Fatalf("%d loads, want 2 (one after the Delete, shared through the Store)", calls.Load())
	}
}

func namespaceInvalidate(t *testing.T, store cache.Store) {
	caches := Instances(t, 3, store, cache.Options{TTL: time.Hour, VersionTTL: time.Hour})
	name := Key(t, "user")
	gen := atomic.Int64{}
	gen.Store(1)
	var calls atomic.Int64
	load := func(ctx context.Context, id string) (string, error) {
		calls.Add(1)
		return fmt.Sprintf("%s@gen%d", id, gen.Load()), nil
	}
	ctx := context.Background()
	for _, c := range caches {
		for _, id := range []string{"1", "2", "3"} {
			if v, err := c.Namespace(name).Get(ctx, id, load); err != nil || v != id+"@gen1" {
				t.Fatalf("Get(%s) = %q, %v", id, v, err)
			}
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("%d loads for 3 ids on 3 instances, want 3", calls.Load())
	}
	gen.Store(2)
	if err := caches[0].Namespace(name).Invalidate(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no instance returns a value from before Invalidate", func() bool {
		for _, c := range caches {
			for _, id := range []string{"1", "2", "3"} {
				if v, err := c.Namespace(name).Get(ctx, id, load); err != nil || v != id+"@gen2" {
					return false
				}
			}
		}
		return true
	})
	if calls.Load() != 6 {
		t.Fatalf("%d loads, want 6: each id once per version for the whole fleet", calls.Load())
	}
}

func getManyAcross(t *testing.T, store cache.Store) {
	caches := Instances(t, 2, store, cache.Options{TTL: time.Hour})
	p := Key(t, "")
	keys := []string{p + "1", p + "2", p + "3", p + "missing"}
	var batches, loaded atomic.Int64
	batch := func(ctx context.Context, ks []string) (map[string]string, error) {
		batches.Add(1)
		loaded.Add(int64(len(ks)))
		m := map[string]string{}
		for _, k := range ks {
			if k != p+"missing" {
				m[k] = "v" + k
			}
		}
		return m, nil
	}
	ctx := context.Background()
	for round := 0; round < 2; round++ {
		for i, c := range caches {
			got, err := c.GetMany(ctx, keys, batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 || got[p+"2"] != "v"+p+"2" {
				t.Fatalf("instance %d round %d: %v, want 3 values and no missing key", i, round, got)
			}
		}
	}
	if batches.Load() != 1 || loaded.Load() != 4 {
		t.Fatalf("%d batch calls for %d keys, want 1 call for 4 (the rest from the Store and the L1s, the missing key remembered)", batches.Load(), loaded.Load())
	}
	if _, err := caches[1].Get(ctx, p+"missing", func(context.Context, string) (string, error) { return "x", nil }); err != cache.ErrNotFound {
		t.Fatalf("Get of the missing key: %v, want the remembered ErrNotFound", err)
	}
}

// A load that read the database before a Set must not write the old value
// over it, in the Store or in its own L1.
func fillFenced(t *testing.T, store cache.Store) {
	caches := Instances(t, 2, store, cache.Options{TTL: time.Hour})
	a, b := caches[0], caches[1]
	key := Key(t, "k")
	started, finish := make(chan struct{}), make(chan struct{})
	slow := func(ctx context.Context, k string) (string, error) {
		close(started)
		<-finish
		return "old", nil
	}
	got := make(chan string, 1)
	go func() { got <- mustGet(t, a, key, slow) }()
	<-started
	if err := b.Set(context.Background(), key, "new"); err != nil {
		t.Fatal(err)
	}
	close(finish)
	if v := <-got; v != "old" {
		t.Fatalf("the caller that asked before the Set got %q, want the value it loaded", v)
	}
	never := func(context.Context, string) (string, error) { return "", fmt.Errorf("must not load") }
	eventually(t, "both instances serve the Set value", func() bool {
		return mustGet(t, a, key, never) == "new" && mustGet(t, b, key, never) == "new"
	})
	if st := a.Stats(); st.FillsRefused != 1 {
		t.Fatalf("instance a: %d fills refused, want 1", st.FillsRefused)
	}
}

// An instance holding a lease dies: the others wait for at most LeaseTTL,
// then one of them loads.
func holderDies(t *testing.T, store cache.Store) {
	key := Key(t, "k")
	if toks, err := store.Lease(context.Background(), []string{key}, 200*time.Millisecond); err != nil || toks[0] == "" {
		t.Fatalf("taking the lease for the dead holder: %q %v", toks, err)
	}
	caches := Instances(t, 2, store, cache.Options{TTL: time.Hour, LeaseTTL: 200 * time.Millisecond})
	var calls atomic.Int64
	load := counting(&calls, 0)
	var wg sync.WaitGroup
	for _, c := range caches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v := mustGet(t, c, key, load); v != key+"#1" {
				t.Errorf("got %q, want the one load after the dead holder's lease expired", v)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("%d loads after the holder died, want 1", calls.Load())
	}
}

// A load that takes 3 x LeaseTTL on one of 4 instances keeps its lease
// (renewed while it runs) and fills: the loader runs once, the value
// lands in the Store, and every instance holds it in its L1.
func slowLoad(t *testing.T, store cache.Store) {
	// A lease of 1s, renewed every 333ms, survives a renewal held up by
	// 600ms on a loaded machine (300ms did not, on a loaded 2-core CI).
	const leaseTTL = time.Second
	caches := Instances(t, 4, store, cache.Options{TTL: time.Hour, LeaseTTL: leaseTTL})
	key := Key(t, "slow")
	var calls atomic.Int64
	load := counting(&calls, 3*leaseTTL)
	var wg sync.WaitGroup
	for i, c := range caches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 { // the first instance takes the lease
				eventually(t, "instance 0's load starts", func() bool { return calls.Load() > 0 })
			}
			if v, err := c.Get(context.Background(), key, load); err != nil || v != key+"#1" {
				t.Errorf("instance %d: Get = %q, %v; want the one load's value", i, v, err)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("a load taking 3 x LeaseTTL ran %d times on 4 instances, want 1 (its lease renewed while it runs)", n)
	}
	if rec := get1(t, store, key); rec == nil {
		t.Fatal("the slow load's value is not in the Store: its fill was refused")
	}
	never := func(context.Context, string) (string, error) { return "", fmt.Errorf("must not load") }
	for i, c := range caches {
		before := c.Stats()
		if v := mustGet(t, c, key, never); v != key+"#1" {
			t.Fatalf("instance %d: %q", i, v)
		}
		// With a tracking Store, the server's invalidation of the fill
		// may have dropped the copy: an L2 hit is as good.
		if st := c.Stats(); st.Hits != before.Hits+1 && !(tracks(store) && st.L2Hits == before.L2Hits+1) {
			t.Fatalf("instance %d did not serve the value from its L1: %+v", i, st)
		}
	}
	var refused uint64
	for _, c := range caches {
		refused += c.Stats().FillsRefused
	}
	if refused != 0 {
		t.Fatalf("%d fills refused, want 0", refused)
	}
}

// GetMany over a page of stale keys serves them at once and refreshes
// them in the background with one BatchLoader call, not one per key.
func getManyStale(t *testing.T, store cache.Store) {
	const n = 50
	// TTL is long enough that the refreshed values stay fresh while the
	// test polls for them on a loaded machine (a second expiry would
	// rightly start a third batch).
	const ttl = time.Second
	caches := Instances(t, 2, store, cache.Options{TTL: ttl, StaleFor: time.Minute, NoJitter: true, NoEarlyRefresh: true})
	p := Key(t, "")
	keys := make([]string, n)
	for i := range keys {
		keys[i] = p + strconv.Itoa(i)
	}
	var batches atomic.Int64
	var sizes sync.Map // batch number -> number of keys
	batch := func(ctx context.Context, ks []string) (map[string]string, error) {
		b := batches.Add(1)
		sizes.Store(b, len(ks))
		m := map[string]string{}
		for _, k := range ks {
			m[k] = k + "#" + strconv.FormatInt(b, 10)
		}
		return m, nil
	}
	ctx := context.Background()
	for _, c := range caches {
		if got, err := c.GetMany(ctx, keys, batch); err != nil || len(got) != n {
			t.Fatalf("warm-up: %d values, %v", len(got), err)
		}
	}
	if batches.Load() != 1 {
		t.Fatalf("warm-up: %d batch calls on 2 instances, want 1", batches.Load())
	}
	time.Sleep(ttl + 50*time.Millisecond) // past the TTL, within StaleFor
	for _, c := range caches {
		got, err := c.GetMany(ctx, keys, batch)
		if err != nil || len(got) != n {
			t.Fatalf("stale page: %d values, %v", len(got), err)
		}
		for _, k := range keys {
			if v := got[k]; v != k+"#1" && v != k+"#2" {
				t.Fatalf("stale page: %q = %q", k, v)
			}
		}
	}
	eventually(t, "the refreshed values reach both instances", func() bool {
		for _, c := range caches {
			got, err := c.GetMany(ctx, keys, batch)
			if err != nil {
				return false
			}
			for _, k := range keys {
				if got[k] == "" || got[k] == k+"#1" {
					return false
				}
			}
		}
		return true
	})
	// One refresh batch per instance at most, each key refreshed once for
	// the fleet. On a Store that leases many keys atomically (memory, one
	// Redis) one instance wins them all: 2 calls in all. On Redis Cluster
	// leases are taken per node, so the two instances' refreshes may split
	// the page between them; a key is still loaded once.
	b := batches.Load()
	refreshed := 0
	var got []string
	sizes.Range(func(k, v any) bool {
		got = append(got, fmt.Sprintf("#%d: %d keys", k, v))
		if k.(int64) > 1 {
			refreshed += v.(int)
		}
		return true
	})
	if b < 2 || b > 1+int64(len(caches)) || refreshed != n {
		t.Fatalf("%d batch calls (%v), %d keys refreshed: a page of %d stale keys must be refreshed with one batch call per instance, each key once, not one call per key", b, got, refreshed, n)
	}
}

// Outage wraps a Store for one instance: while Down is set, every call
// of that instance fails (as when its network to the Store is cut); the
// Store itself and the other instances go on.
type Outage struct {
	cache.Store
	Down atomic.Bool
}

var errDown = errors.New("cachetest: the Store is unreachable (Outage.Down)")

func (o *Outage) err() error {
	if o.Down.Load() {
		return errDown
	}
	return nil
}

// Get fails while Down.
func (o *Outage) Get(ctx context.Context, keys []string) ([][]byte, error) {
	if err := o.err(); err != nil {
		return nil, err
	}
	return o.Store.Get(ctx, keys)
}

// GetOne fails while Down; it is the Store's GetOne when it has one
// (cache.OneGetter), else its Get of one key.
func (o *Outage) GetOne(ctx context.Context, key string) ([]byte, error) {
	if err := o.err(); err != nil {
		return nil, err
	}
	if g, ok := o.Store.(cache.OneGetter); ok {
		return g.GetOne(ctx, key)
	}
	recs, err := o.Store.Get(ctx, []string{key})
	switch {
	case err != nil:
		return nil, err
	case len(recs) != 1:
		return nil, fmt.Errorf("cachetest: the Store returned %d records for 1 key", len(recs))
	}
	return recs[0], nil
}

// Set fails while Down.
func (o *Outage) Set(ctx context.Context, key string, data []byte, ttl time.Duration) error {
	if err := o.err(); err != nil {
		return err
	}
	return o.Store.Set(ctx, key, data, ttl)
}

// Delete fails while Down.
func (o *Outage) Delete(ctx context.Context, keys ...string) error {
	if err := o.err(); err != nil {
		return err
	}
	return o.Store.Delete(ctx, keys...)
}

// Lease fails while Down.
func (o *Outage) Lease(ctx context.Context, keys []string, ttl time.Duration) ([]string, error) {
	if err := o.err(); err != nil {
		return nil, err
	}
	return o.Store.Lease(ctx, keys, ttl)
}

// Fill fails while Down.
func (o *Outage) Fill(ctx context.Context, fills []cache.Fill) ([]bool, error) {
	if err := o.err(); err != nil {
		return nil, err
	}
	return o.Store.Fill(ctx, fills)
}

// Release fails while Down.
func (o *Outage) Release(ctx context.Context, key, token string) error {
	if err := o.err(); err != nil {
		return err
	}
	return o.Store.Release(ctx, key, token)
}

// Version fails while Down.
func (o *Outage) Version(ctx context.Context, name string) (int64, error) {
	if err := o.err(); err != nil {
		return 0, err
	}
	return o.Store.Version(ctx, name)
}

// Incr fails while Down.
func (o *Outage) Incr(ctx context.Context, name string) (int64, error) {
	if err := o.err(); err != nil {
		return 0, err
	}
	return o.Store.Incr(ctx, name)
}

// Publish fails while Down.
func (o *Outage) Publish(ctx context.Context, msg string) error {
	if err := o.err(); err != nil {
		return err
	}
	return o.Store.Publish(ctx, msg)
}

// A Set and a Delete on an instance that cannot reach the Store (its
// breaker open) are kept and delivered when the Store answers again: the
// other instance stops serving its old copies.
func keptWhileDown(t *testing.T, store cache.Store) {
	out := &Outage{Store: store}
	o := cache.Options{TTL: time.Hour, PollInterval: time.Millisecond}
	b := Instances(t, 1, store, o)[0]
	a := Instances(t, 1, out, o)[0]
	set, del := Key(t, "set"), Key(t, "del")
	var db sync.Map
	db.Store(set, "old")
	db.Store(del, "old")
	load := func(_ context.Context, k string) (string, error) {
		if v, ok := db.Load(k); ok {
			return v.(string), nil
		}
		return "", cache.ErrNotFound
	}
	ctx := context.Background()
	for _, c := range []*cache.Cache[string]{a, b} {
		for _, k := range []string{set, del} {
			if v, err := c.Get(ctx, k, load); err != nil || v != "old" {
				t.Fatalf("warm-up %s: %q, %v", k, v, err)
			}
		}
	}
	out.Down.Store(true)
	for range 5 { // enough failures to open the default breaker
		_, _ = a.Namespace(Key(t, "probe")).Get(ctx, "x", load)
	}
	db.Store(set, "new")
	db.Delete(del)
	if err := a.Set(ctx, set, "new"); err == nil {
		t.Fatal("Set with the Store down returned no error")
	}
	if err := a.Delete(ctx, del); err == nil {
		t.Fatal("Delete with the Store down returned no error")
	}
	if st := a.Stats(); st.PendingInvalidations != 2 {
		t.Fatalf("%d invalidations pending with the Store down, want 2: %+v", st.PendingInvalidations, st)
	}
	out.Down.Store(false)
	eventually(t, "the other instance serves the new value and forgets the deleted key", func() bool {
		v, err := b.Get(ctx, set, load)
		_, derr := b.Get(ctx, del, load)
		return err == nil && v == "new" && errors.Is(derr, cache.ErrNotFound)
	})
	eventually(t, "nothing is pending", func() bool { return a.Stats().PendingInvalidations == 0 })
}

// Past MaxPendingInvalidations the kept keys collapse into one flush:
// the namespace is bumped and every instance drops its L1, so nothing old
// is served, and Stats counts the overflow.
func pendingOverflow(t *testing.T, store cache.Store) {
	out := &Outage{Store: store}
	o := cache.Options{TTL: time.Hour, VersionTTL: time.Hour, PollInterval: time.Millisecond, MaxPendingInvalidations: 2}
	b := Instances(t, 1, store, o)[0]
	a := Instances(t, 1, out, o)[0]
	name := Key(t, "user")
	var gen atomic.Int64
	gen.Store(1)
	load := func(_ context.Context, id string) (string, error) { return fmt.Sprintf("%s@%d", id, gen.Load()), nil }
	ctx := context.Background()
	ids := []string{"1", "2", "3", "4"}
	for _, c := range []*cache.Cache[string]{a, b} {
		for _, id := range ids {
			if v, err := c.Namespace(name).Get(ctx, id, load); err != nil || v != id+"@1" {
				t.Fatalf("warm-up: %q, %v", v, err)
			}
		}
	}
	out.Down.Store(true)
	gen.Store(2)
	for _, id := range ids {
		_ = a.Namespace(name).Delete(ctx, id)
	}
	if st := a.Stats(); st.PendingOverflows != 1 {
		t.Fatalf("4 Deletes with MaxPendingInvalidations 2: %d overflows, want 1", st.PendingOverflows)
	}
	out.Down.Store(false)
	eventually(t, "the other instance serves nothing from before the Deletes", func() bool {
		for _, id := range ids {
			if v, err := b.Namespace(name).Get(ctx, id, load); err != nil || v != id+"@2" {
				return false
			}
		}
		return true
	})
	eventually(t, "nothing is pending", func() bool { return a.Stats().PendingInvalidations == 0 })
}
