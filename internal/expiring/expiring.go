// Package expiring is the map of the in-memory stores (cache.MemoryStore,
// idempotency.MemoryStore): each entry lives until a deadline, an expired
// entry is gone when read, and every 1024th write sweeps out the expired
// entries nobody reads any more.
package expiring

import "time"

// sweepEvery is how many Sets pass between sweeps.
const sweepEvery = 1024

// Map maps string keys to values that expire. The zero value is an empty
// map. It is not safe for concurrent use: its owner's lock guards it.
type Map[V any] struct {
	m      map[string]entry[V]
	writes int
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// Get returns key's value, unless it is missing or expired at now (an
// expired entry is dropped).
func (m *Map[V]) Get(key string, now time.Time) (V, bool) {
	e, ok := m.m[key]
	if ok && !now.Before(e.expires) {
		delete(m.m, key)
		var zero V
		return zero, false
	}
	return e.v, ok
}

// Set stores v under key until now+ttl, and sweeps on every 1024th call.
func (m *Map[V]) Set(key string, v V, now time.Time, ttl time.Duration) {
	if m.m == nil {
		m.m = map[string]entry[V]{}
	}
	m.m[key] = entry[V]{v, now.Add(ttl)}
	if m.writes++; m.writes%sweepEvery == 0 {
		for k, e := range m.m {
			if !now.Before(e.expires) {
				delete(m.m, k)
			}
		}
	}
}

// Delete removes key.
func (m *Map[V]) Delete(key string) { delete(m.m, key) }

// Len is the number of entries held, expired ones not yet dropped
// included.
func (m *Map[V]) Len() int { return len(m.m) }
