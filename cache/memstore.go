package cache

import (
	"context"
	"sync"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/expiring"
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
	vals     expiring.Map[[]byte]
	leases   expiring.Map[string] // the token
	counters map[string]int64
	subs     map[int]func(string)
	nextSub  int
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(o MemoryStoreOptions) *MemoryStore {
	return &MemoryStore{clk: o.Clock, counters: map[string]int64{}, subs: map[int]func(string){}}
}

func (s *MemoryStore) now() time.Time { return clock.Now(s.clk) }

// Get returns copies of the stored data; see Store.
func (s *MemoryStore) Get(_ context.Context, keys []string) ([][]byte, error) {
	now := s.now()
	out := make([][]byte, len(keys))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range keys {
		if data, ok := s.vals.Get(k, now); ok {
			out[i] = append([]byte(nil), data...)
		}
	}
	return out, nil
}

// GetOne is Get of one key; see OneGetter.
func (s *MemoryStore) GetOne(_ context.Context, key string) ([]byte, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if data, ok := s.vals.Get(key, now); ok {
		return append([]byte(nil), data...), nil
	}
	return nil, nil
}

// Set stores data and voids the lease; see Store.
func (s *MemoryStore) Set(_ context.Context, key string, data []byte, ttl time.Duration) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals.Set(key, append([]byte(nil), data...), now, ttl)
	s.leases.Delete(key)
	return nil
}

// Delete removes keys and their leases; see Store.
func (s *MemoryStore) Delete(_ context.Context, keys ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.vals.Delete(k)
		s.leases.Delete(k)
	}
	return nil
}

// Lease takes the fill leases of keys; see Store.
func (s *MemoryStore) Lease(_ context.Context, keys []string, ttl time.Duration) ([]string, error) {
	now := s.now()
	out := make([]string, len(keys))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, key := range keys {
		if _, held := s.leases.Get(key, now); held {
			continue
		}
		out[i] = token.New()
		s.leases.Set(key, out[i], now, ttl)
	}
	return out, nil
}

// Fill stores each fill whose token holds its lease; see Store.
func (s *MemoryStore) Fill(_ context.Context, fills []Fill) ([]bool, error) {
	now := s.now()
	out := make([]bool, len(fills))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range fills {
		if tok, held := s.leases.Get(f.Key, now); !held || tok != f.Token {
			continue
		}
		s.leases.Delete(f.Key)
		s.vals.Set(f.Key, append([]byte(nil), f.Data...), now, f.TTL)
		out[i] = true
	}
	return out, nil
}

// Release gives the lease back if token holds it; see Store.
func (s *MemoryStore) Release(_ context.Context, key, token string) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, held := s.leases.Get(key, now); held && tok == token {
		s.leases.Delete(key)
	}
	return nil
}

// RenewLeases extends the leases its tokens hold; see LeaseRenewer.
func (s *MemoryStore) RenewLeases(_ context.Context, keys, tokens []string, ttl time.Duration) ([]bool, error) {
	now := s.now()
	out := make([]bool, len(keys))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, key := range keys {
		if tok, held := s.leases.Get(key, now); held && tok == tokens[i] {
			s.leases.Set(key, tok, now, ttl)
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
	_ OneGetter    = (*MemoryStore)(nil)
)
