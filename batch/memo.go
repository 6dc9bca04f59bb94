package batch

import (
	"context"
	"net/http"
	"sync"
)

type memoCtxKey struct{}

type memoKey struct {
	loader any
	key    any
}

type memoVal struct {
	val any
	err error
}

// memo is a per-request store of definite answers (values and
// ErrNotFound), shared by every Loader used with the request's ctx.
type memo struct {
	mu sync.Mutex
	m  map[memoKey]memoVal
}

// WithMemo returns a ctx carrying a fresh per-request memo: within it every
// Loader answers a key it has already answered from the memo instead of
// fetching it again, so the same key is fetched once per request. Errors
// other than ErrNotFound, and panics, are never memoized. The memo lives as
// long as the ctx; it is not a cache shared between requests (that is the
// cache package's job).
func WithMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoCtxKey{}, &memo{m: map[memoKey]memoVal{}})
}

// MemoMiddleware gives every request its own memo (WithMemo).
func MemoMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(WithMemo(r.Context())))
	})
}

func memoFrom(ctx context.Context) *memo {
	m, _ := ctx.Value(memoCtxKey{}).(*memo)
	return m
}

func (m *memo) get(loader, key any) (any, error, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[memoKey{loader, key}]
	return v.val, v.err, ok
}

func (m *memo) put(loader, key, val any, err error) {
	m.mu.Lock()
	m.m[memoKey{loader, key}] = memoVal{val, err}
	m.mu.Unlock()
}

// Prime stores key's value in ctx's memo (see WithMemo), so Loads of key
// with this ctx return value without a fetch. It reports false when ctx has
// no memo.
func (l *Loader[K, V]) Prime(ctx context.Context, key K, value V) bool {
	m := memoFrom(ctx)
	if m == nil {
		return false
	}
	m.put(l, key, value, nil)
	return true
}

// Clear forgets key in ctx's memo, so the next Load fetches it again (after
// a write, say). Without a memo it does nothing.
func (l *Loader[K, V]) Clear(ctx context.Context, key K) {
	if m := memoFrom(ctx); m != nil {
		m.mu.Lock()
		delete(m.m, memoKey{l, key})
		m.mu.Unlock()
	}
}
