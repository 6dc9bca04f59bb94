package cache

import (
	"context"
	"fmt"
	"strconv"
	"sync"
)

// Namespace is a group of keys retired together: its keys are
// "<name>:v<N>:<id>", and Invalidate moves every instance to version N+1
// at once (one INCR on the Store), leaving the old keys to expire. Get it
// from Cache.Namespace.
type Namespace[V any] struct {
	c    *Cache[V]
	name string
}

// nsVersion is an instance's cached copy of a namespace version.
type nsVersion struct {
	mu       sync.Mutex
	v        int64
	until    int64 // unix ns
	fetching bool
}

// Namespace returns the namespace name of c. Namespaces are cheap: make
// one per entity type ("user", "post") and keep it.
func (c *Cache[V]) Namespace(name string) *Namespace[V] {
	return &Namespace[V]{c: c, name: name}
}

// Name is the namespace's name.
func (n *Namespace[V]) Name() string { return n.name }

// Key is the cache key of id under the current version, e.g. "user:v7:42".
func (n *Namespace[V]) Key(ctx context.Context, id string) string {
	return n.key(n.version(ctx), id)
}

func (n *Namespace[V]) key(v int64, id string) string {
	return n.name + ":v" + strconv.FormatInt(v, 10) + ":" + id
}

// version is the namespace's version, read from the Store at most once
// per VersionTTL per instance (one caller reads; the others keep using
// the version they have). With the Store down it keeps the last version
// known, or 0 before any.
func (n *Namespace[V]) version(ctx context.Context) int64 {
	c := n.c
	nvAny, ok := c.versions.Load(n.name)
	if !ok {
		nvAny, _ = c.versions.LoadOrStore(n.name, &nsVersion{})
	}
	nv := nvAny.(*nsVersion)
	now := c.now()
	nv.mu.Lock()
	if now < nv.until || (nv.fetching && nv.until > 0) {
		v := nv.v
		nv.mu.Unlock()
		return v
	}
	if c.store == nil {
		if nv.v == 0 {
			nv.v = 1
		}
		nv.until = now + int64(c.o.VersionTTL)
		v := nv.v
		nv.mu.Unlock()
		return v
	}
	nv.fetching = true
	nv.mu.Unlock()
	var v int64
	err := c.l2(ctx, func(ctx context.Context) (err error) { v, err = c.store.Version(ctx, n.name); return err })
	nv.mu.Lock()
	defer nv.mu.Unlock()
	nv.fetching = false
	if err == nil && v >= nv.v {
		nv.v = v
	}
	nv.until = now + int64(c.o.VersionTTL)
	return nv.v
}

// Get is Cache.Get of id in the namespace; loader sees id.
func (n *Namespace[V]) Get(ctx context.Context, id string, loader Loader[V]) (V, error) {
	v, _, err := n.c.get(ctx, n.Key(ctx, id), id, loader)
	return v, err
}

// GetInfo is Cache.GetInfo of id in the namespace; loader sees id.
func (n *Namespace[V]) GetInfo(ctx context.Context, id string, loader Loader[V]) (V, Info, error) {
	v, e, err := n.c.get(ctx, n.Key(ctx, id), id, loader)
	return v, e.info(), err
}

// GetMany is Cache.GetMany of ids in the namespace; batch sees the ids and
// the result is keyed by id.
func (n *Namespace[V]) GetMany(ctx context.Context, ids []string, batch BatchLoader[V]) (map[string]V, error) {
	res := make(map[string]V, len(ids))
	err := n.c.getMany(ctx, n.keys(ctx, ids), ids, batch, manyOut[V]{m: res})
	return res, err
}

// GetManyInto is Cache.GetManyInto of ids in the namespace: vals[i] and
// found[i] answer ids[i]; batch sees the ids.
func (n *Namespace[V]) GetManyInto(ctx context.Context, ids []string, vals []V, found []bool, batch BatchLoader[V]) error {
	out, err := intoOut(len(ids), vals, found)
	if err != nil {
		return err
	}
	return n.c.getMany(ctx, n.keys(ctx, ids), ids, batch, out)
}

// keys are the cache keys of ids at the namespace's current version.
func (n *Namespace[V]) keys(ctx context.Context, ids []string) []string {
	v := n.version(ctx)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = n.key(v, id)
	}
	return keys
}

// Set is Cache.Set of id in the namespace.
func (n *Namespace[V]) Set(ctx context.Context, id string, v V) error {
	return n.c.Set(ctx, n.Key(ctx, id), v)
}

// Delete is Cache.Delete of id in the namespace.
func (n *Namespace[V]) Delete(ctx context.Context, id string) error {
	return n.c.Delete(ctx, n.Key(ctx, id))
}

// Invalidate retires every key of the namespace, on every instance: one
// INCR of its version on the Store, then a message so the other
// instances read the new version now rather than within VersionTTL. The
// old keys are no longer read and expire by their TTL. Without a Store
// the version is this instance's own.
func (n *Namespace[V]) Invalidate(ctx context.Context) error {
	c := n.c
	nvAny, _ := c.versions.LoadOrStore(n.name, &nsVersion{})
	nv := nvAny.(*nsVersion)
	if c.store == nil {
		nv.mu.Lock()
		nv.v = max(nv.v, 1) + 1
		nv.until = c.now() + int64(c.o.VersionTTL)
		nv.mu.Unlock()
		return nil
	}
	var v int64
	if err := c.l2(ctx, func(ctx context.Context) (err error) { v, err = c.store.Incr(ctx, n.name); return err }); err != nil {
		c.pend(n.name, true) // delivered when the Store answers again
		return fmt.Errorf("cache: Invalidate %q: the Store: %w", n.name, err)
	}
	nv.mu.Lock()
	nv.v = max(nv.v, v)
	nv.until = c.now() + int64(c.o.VersionTTL)
	nv.mu.Unlock()
	if c.publish(ctx, "n", n.name) != nil {
		c.pend(n.name, true)
	}
	return nil
}
