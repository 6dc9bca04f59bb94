package cache

import (
	"context"
	"sync"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/token"
)

// MemoryStoreOptions configures NewMemoryStore. The zero value works.
type MemoryStoreOptions struct {
	// Clock replaces the system clock (see package clock); nil is the real time.
	Clock clock.Clock
}

// MemoryStore is a Store in process memory: several Caches sharing one
// behave like instances sharing a Redis (one lease per key, fills,
// invalidation messages), which is what it is for: tests, and programs
// that run several caches in one process. Expired keys are dropped when
// read and by a sweep every 1024 writes.
type MemoryStore struct {
	clk clock.Clock

	mu       sync.Mutex
	vals     map[string]memItem
	leases   map[string]memItem // data holds the token
	counters map[string]int64
	subs     map[int]func(string)
	nextSub  int
	writes   int
}

type memItem struct {
	data    []byte
	expires int64 // Unix ns
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(o MemoryStoreOptions) *MemoryStore {
	return &MemoryStore{clk: o.Clock, vals: map[string]memItem{}, leases: map[string]memItem{}, counters: map[string]int64{}, subs: map[int]func(string){}}
}

func (s *MemoryStore) now() time.Time { return clock.Now(s.clk) }

func (s *MemoryStore) live(m map[string]memItem, key string, now int64) (memItem, bool) {
	it, ok := m[key]
	if ok && now >= it.expires {
		delete(m, key)
		return memItem{}, false
	}
	return it, ok
}

func (s *MemoryStore) wrote(now int64) {
	s.writes++
	if s.writes%1024 != 0 {
		return
	}
	for _, m := range []map[string]memItem{s.vals, s.leases} {
		for k, it := range m {
			if now >= it.expires {
				delete(m, k)
			}
		}
	}
}

// Get returns copies of the stored data; see Store.
func (s *MemoryStore) Get(_ context.Context, keys []string) ([][]byte, error) {
	now := s.now().UnixNano()
	out := make([][]byte, len(keys))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range keys {
		if it, ok := s.live(s.vals, k, now); ok {
			out[i] = append([]byte(nil), it.data...)
		}
	}
	return out, nil
}

// Set stores data and voids the lease; see Store.
func (s *MemoryStore) Set(_ context.Context, key string, data []byte, ttl time.Duration) error {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals[key] = memItem{data: append([]byte(nil), data...), expires: now + int64(ttl)}
	delete(s.leases, key)
	s.wrote(now)
	return nil
}

// Delete removes keys and their leases; see Store.
func (s *MemoryStore) Delete(_ context.Context, keys ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.vals, k)
		delete(s.leases, k)
	}
	return nil
}

// Lease takes the fill leases of keys; see Store.
func (s *MemoryStore) Lease(_ context.Context, keys []string, ttl time.Duration) ([]string, error) {
	now := s.now().UnixNano()
	out := make([]string, len(keys))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, key := range keys {
		if _, held := s.live(s.leases, key, now); held {
			continue
		}
		out[i] = token.New()
		s.leases[key] = memItem{data: []byte(out[i]), expires: now + int64(ttl)}
		s.wrote(now)
	}
	return out, nil
}

// Fill stores each fill whose token holds its lease; see Store.
func (s *MemoryStore) Fill(_ context.Context, fills []Fill) ([]bool, error) {
	now := s.now().UnixNano()
	out := make([]bool, len(fills))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range fills {
		if it, held := s.live(s.leases, f.Key, now); !held || string(it.data) != f.Token {
			continue
		}
		delete(s.leases, f.Key)
		s.vals[f.Key] = memItem{data: append([]byte(nil), f.Data...), expires: now + int64(f.TTL)}
		s.wrote(now)
		out[i] = true
	}
	return out, nil
}

// Release gives the lease back if token holds it; see Store.
func (s *MemoryStore) Release(_ context.Context, key, token string) error {
	now := s.now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if it, held := s.live(s.leases, key, now); held && string(it.data) == token {
		delete(s.leases, key)
	}
	return nil
}

// RenewLeases extends the leases its tokens hold; see LeaseRenewer.
func (s *MemoryStore) RenewLeases(_ context.Context, keys, tokens []string, ttl time.Duration) ([]bool, error) {
	now := s.now().UnixNano()
	out := make([]bool, len(keys))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, key := range keys {
		if it, held := s.live(s.leases, key, now); held && string(it.data) == tokens[i] {
			it.expires = now + int64(ttl)
			s.leases[key] = it
			out[i] = true
		}
	}
	return out, nil
}

func (s *MemoryStore) counter(name string) int64 {
	v, ok := s.counters[name]
	if !ok {
		v = s.now().UnixMilli()
		s.counters[name] = v
	}
	return v
}

// Version returns counter name; see Store.
func (s *MemoryStore) Version(_ context.Context, name string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counter(name), nil
}

// Incr adds one to counter name; see Store.
func (s *MemoryStore) Incr(_ context.Context, name string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.counter(name) + 1
	s.counters[name] = v
	return v, nil
}

// Publish calls every subscriber with msg before it returns.
func (s *MemoryStore) Publish(_ context.Context, msg string) error {
	s.mu.Lock()
	fns := make([]func(string), 0, len(s.subs))
	for _, fn := range s.subs {
		fns = append(fns, fn)
	}
	s.mu.Unlock()
	for _, fn := range fns {
		fn(msg)
	}
	return nil
}

// Subscribe registers fn; see Store.
func (s *MemoryStore) Subscribe(fn func(msg string)) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}, nil
}

var (
	_ Store        = (*MemoryStore)(nil)
	_ LeaseRenewer = (*MemoryStore)(nil)
)
