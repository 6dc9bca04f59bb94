package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotFound is the error Load returns for a key the fetch did not return.
var ErrNotFound = errors.New("batch: not found")

// ErrInvalid is wrapped by errors about bad Options.
var ErrInvalid = errors.New("batch: invalid options")

// PanicError is what every waiter of a batch gets when its fetch panics.
type PanicError struct {
	Value any    // what the fetch panicked with
	Stack []byte // the fetch goroutine's stack
}

// Error reports the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("batch: fetch panicked: %v", e.Value) }

// Result is one key's outcome from a fetch that reports per-key errors.
type Result[V any] struct {
	Value V
	Err   error
}

// Options configures a Loader. The zero value works.
type Options struct {
	// Wait is how long a batch collects keys after its first key before it
	// is fetched. Default: 1ms.
	Wait time.Duration
	// Idle, when set, flushes a batch as soon as no new key has joined it
	// for Idle (callers went quiet), still no later than Wait after its
	// first key. Default: 0, off: batches wait the full Wait.
	Idle time.Duration
	// MaxBatch is the most keys one fetch gets; a batch that reaches it is
	// fetched at once. Default: 100.
	MaxBatch int
	// MaxConcurrent bounds the fetches running at once; further full
	// batches wait for a slot. Default: 16.
	MaxConcurrent int
	// Partition, when set, keeps callers whose ctx gives different
	// partitions (tenant, credentials) in different batches, so one fetch
	// never mixes callers that must not share one. Default: nil, one
	// partition.
	Partition func(ctx context.Context) string
	// Logger receives fetch panics. Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Wait == 0 {
		o.Wait = time.Millisecond
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 100
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = 16
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case o.Wait < 0:
		return o, fmt.Errorf("%w: Options.Wait must be >= 0, got %v", ErrInvalid, o.Wait)
	case o.Idle < 0 || o.Idle > o.Wait:
		return o, fmt.Errorf("%w: Options.Idle must be in [0, Wait=%v], got %v", ErrInvalid, o.Wait, o.Idle)
	case o.MaxBatch < 1:
		return o, fmt.Errorf("%w: Options.MaxBatch must be >= 1, got %d", ErrInvalid, o.MaxBatch)
	case o.MaxConcurrent < 1:
		return o, fmt.Errorf("%w: Options.MaxConcurrent must be >= 1, got %d", ErrInvalid, o.MaxConcurrent)
	}
	return o, nil
}

// Loader coalesces the Loads of many goroutines into few fetches: the keys
// asked for within a short window (or until MaxBatch) go to one fetch, each
// key once; a Load of a key already being fetched joins that fetch. It is
// not a cache: once a fetch is done its keys are fetched again by the next
// batch (see WithMemo for a per-request memo). It is safe for concurrent use.
type Loader[K comparable, V any] struct {
	fetchMap func(ctx context.Context, keys []K) (map[K]V, error)
	fetchRes func(ctx context.Context, keys []K) (map[K]Result[V], error)
	o        Options
	sem      chan struct{}

	mu    sync.Mutex
	parts map[string]*partition[K, V]
	// Counted under mu (held anyway): no contended atomic per Load.
	loads, deduped uint64

	st stats
}

// partition is the batching state of one Options.Partition value.
type partition[K comparable, V any] struct {
	open  *pendingBatch[K, V]
	where map[K]slot[K, V] // keys of the open and in-flight batches
}

type slot[K comparable, V any] struct {
	b *pendingBatch[K, V]
	i int
}

// pendingBatch is one fetch's worth of keys. Every caller of any of its
// keys waits on done; results are at the key's index.
type pendingBatch[K comparable, V any] struct {
	part   *partition[K, V]
	keys   []K
	vals   []V
	errs   []error
	done   chan struct{}
	opened time.Time
	ctx    context.Context // first caller's values, no cancellation
	cancel context.CancelFunc
	// waiters is incremented under Loader.mu; callers leaving early
	// decrement it (leave). Callers of a completed batch do not.
	waiters atomic.Int32
	flushed bool // guarded by Loader.mu
	wait    *time.Timer
	idle    *time.Timer
}

// New returns a Loader over fetch, which gets distinct keys and returns the
// values it found; keys missing from its map get ErrNotFound, and its error
// goes to every key of the batch.
func New[K comparable, V any](fetch func(ctx context.Context, keys []K) (map[K]V, error), opts Options) (*Loader[K, V], error) {
	if fetch == nil {
		return nil, fmt.Errorf("%w: fetch must not be nil", ErrInvalid)
	}
	return build(fetch, nil, opts)
}

// NewWithResults is New for a fetch that reports an error per key: a key
// whose Result has Err gets that error; a key missing from the map gets
// ErrNotFound; an error from fetch itself goes to every key of the batch.
func NewWithResults[K comparable, V any](fetch func(ctx context.Context, keys []K) (map[K]Result[V], error), opts Options) (*Loader[K, V], error) {
	if fetch == nil {
		return nil, fmt.Errorf("%w: fetch must not be nil", ErrInvalid)
	}
	return build(nil, fetch, opts)
}

func build[K comparable, V any](fm func(context.Context, []K) (map[K]V, error), fr func(context.Context, []K) (map[K]Result[V], error), opts Options) (*Loader[K, V], error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Loader[K, V]{fetchMap: fm, fetchRes: fr, o: o, sem: make(chan struct{}, o.MaxConcurrent), parts: map[string]*partition[K, V]{}}, nil
}

// Load returns key's value, fetched in a batch with the keys other callers
// ask for meanwhile. If ctx ends first Load returns ctx.Err() at once; the
// batch goes on for the other callers, and its fetch's ctx is cancelled only
// when every caller waiting on it has gone.
func (l *Loader[K, V]) Load(ctx context.Context, key K) (V, error) {
	m := memoFrom(ctx)
	if m != nil {
		if v, err, ok := m.get(l, key); ok {
			return v.(V), err
		}
	}
	sl := l.enqueue(ctx, key)
	if ctx.Done() == nil { // cannot be cancelled: a plain receive is cheaper
		<-sl.b.done
	}
	select {
	case <-sl.b.done:
		// Completed: the waiter count no longer matters, so leaving costs
		// nothing (a decrement per waiter would contend on the batch).
		v, err := sl.b.vals[sl.i], sl.b.errs[sl.i]
		if m != nil && memoizable(err) {
			m.put(l, key, v, err)
		}
		return v, err
	case <-ctx.Done():
		l.st.cancelled.Add(1)
		l.leave(sl.b)
		var zero V
		return zero, ctx.Err()
	}
}

// LoadMany loads keys (in one batch when they fit) and returns values and
// errors in the order of keys; errs[i] is nil when vals[i] was found.
func (l *Loader[K, V]) LoadMany(ctx context.Context, keys []K) ([]V, []error) {
	vals := make([]V, len(keys))
	errs := make([]error, len(keys))
	type pend struct {
		i  int
		sl slot[K, V]
	}
	var waits []pend
	m := memoFrom(ctx)
	for i, k := range keys {
		if m != nil {
			if v, err, ok := m.get(l, k); ok {
				vals[i], errs[i] = v.(V), err
				continue
			}
		}
		waits = append(waits, pend{i, l.enqueue(ctx, k)})
	}
	for n, w := range waits {
		select {
		case <-w.sl.b.done:
			vals[w.i], errs[w.i] = w.sl.b.vals[w.sl.i], w.sl.b.errs[w.sl.i]
			if m != nil && memoizable(errs[w.i]) {
				m.put(l, keys[w.i], vals[w.i], errs[w.i])
			}
		case <-ctx.Done():
			l.st.cancelled.Add(1)
			for _, rest := range waits[n:] {
				l.leave(rest.sl.b)
				errs[rest.i] = ctx.Err()
			}
			return vals, errs
		}
	}
	return vals, errs
}

// enqueue finds key in an open or in-flight batch of its partition, or adds
// it to the open one, and registers the caller as a waiter of that batch.
func (l *Loader[K, V]) enqueue(ctx context.Context, key K) slot[K, V] {
	name := ""
	if l.o.Partition != nil {
		name = l.o.Partition(ctx)
	}
	l.mu.Lock()
	l.loads++
	p := l.parts[name]
	if p == nil {
		p = &partition[K, V]{where: map[K]slot[K, V]{}}
		l.parts[name] = p
	}
	if sl, ok := p.where[key]; ok {
		sl.b.waiters.Add(1)
		l.deduped++
		l.mu.Unlock()
		return sl
	}
	b := p.open
	if b == nil {
		bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		b = &pendingBatch[K, V]{part: p, done: make(chan struct{}), opened: time.Now(), ctx: bctx, cancel: cancel}
		p.open = b
		b.wait = time.AfterFunc(l.o.Wait, func() { l.flushBatch(b) })
	}
	b.waiters.Add(1)
	sl := slot[K, V]{b, len(b.keys)}
	b.keys = append(b.keys, key)
	p.where[key] = sl
	if len(b.keys) >= l.o.MaxBatch {
		l.detach(b)
		l.mu.Unlock()
		go l.run(b)
		return sl
	}
	if l.o.Idle > 0 {
		if b.idle == nil {
			b.idle = time.AfterFunc(l.o.Idle, func() { l.flushBatch(b) })
		} else {
			b.idle.Reset(l.o.Idle)
		}
	}
	l.mu.Unlock()
	return sl
}

// detach closes b to new keys (l.mu held); its keys stay joinable until it
// completes. It reports false if b was already detached.
func (l *Loader[K, V]) detach(b *pendingBatch[K, V]) bool {
	if b.flushed {
		return false
	}
	b.flushed = true
	if b.part.open == b {
		b.part.open = nil
	}
	b.wait.Stop()
	if b.idle != nil {
		b.idle.Stop()
	}
	return true
}

func (l *Loader[K, V]) flushBatch(b *pendingBatch[K, V]) {
	l.mu.Lock()
	ok := l.detach(b)
	l.mu.Unlock()
	if ok {
		l.run(b)
	}
}

// Flush fetches every open batch now instead of waiting for its window, and
// returns without waiting for the fetches.
func (l *Loader[K, V]) Flush() {
	l.mu.Lock()
	var bs []*pendingBatch[K, V]
	for _, p := range l.parts {
		if p.open != nil && l.detach(p.open) {
			bs = append(bs, p.open)
		}
	}
	for _, b := range bs {
		b.part.open = nil
	}
	l.mu.Unlock()
	for _, b := range bs {
		go l.run(b)
	}
}

// leave unregisters a waiter. When the last one leaves a batch that is
// being fetched, the fetch's ctx is cancelled and its keys stop taking
// joiners (they would only get the cancellation). An open batch left by
// everyone stays open for new callers; run skips its fetch if it is still
// without waiters then.
func (l *Loader[K, V]) leave(b *pendingBatch[K, V]) {
	if b.waiters.Add(-1) != 0 {
		return
	}
	// Joiners increment under l.mu: re-check there.
	l.mu.Lock()
	last := b.waiters.Load() == 0 && b.flushed
	if last {
		l.forget(b)
	}
	l.mu.Unlock()
	if last {
		b.cancel()
	}
}

// forget stops b's keys from taking joiners (l.mu held).
func (l *Loader[K, V]) forget(b *pendingBatch[K, V]) {
	w := b.part.where
	for _, k := range b.keys {
		if w[k].b == b {
			delete(w, k)
		}
	}
}

// run fetches a detached batch and completes it.
func (l *Loader[K, V]) run(b *pendingBatch[K, V]) {
	defer b.cancel()
	l.st.waitNanos.Add(uint64(time.Since(b.opened)))
	select {
	case l.sem <- struct{}{}:
		defer func() { <-l.sem }()
	case <-b.ctx.Done(): // every caller left while the batch queued
	}
	l.mu.Lock()
	abandoned := b.waiters.Load() == 0
	if abandoned {
		l.forget(b)
	}
	l.mu.Unlock()

	n := len(b.keys)
	b.vals, b.errs = make([]V, n), make([]error, n)
	if abandoned || b.ctx.Err() != nil {
		for i := range b.errs {
			b.errs[i] = context.Canceled // nobody is waiting for it
		}
	} else {
		l.st.record(n)
		l.fetchInto(b)
	}
	// Results are in place before done closes; joiners arriving after
	// forget start a new batch.
	l.mu.Lock()
	l.forget(b)
	l.mu.Unlock()
	close(b.done)
}

// fetchInto runs the fetch for b, turning a panic into a *PanicError for
// every key.
func (l *Loader[K, V]) fetchInto(b *pendingBatch[K, V]) {
	defer func() {
		if r := recover(); r != nil {
			l.st.panics.Add(1)
			err := &PanicError{Value: r, Stack: debug.Stack()}
			l.o.Logger.Error("batch: fetch panicked", slog.Any("panic", r), slog.Int("keys", len(b.keys)))
			var zero V
			for i := range b.errs {
				b.vals[i], b.errs[i] = zero, err
			}
		}
	}()
	var (
		get func(K) (V, error, bool)
		err error
	)
	if l.fetchMap != nil {
		var m map[K]V
		m, err = l.fetchMap(b.ctx, b.keys)
		get = func(k K) (V, error, bool) { v, ok := m[k]; return v, nil, ok }
	} else {
		var m map[K]Result[V]
		m, err = l.fetchRes(b.ctx, b.keys)
		get = func(k K) (V, error, bool) { r, ok := m[k]; return r.Value, r.Err, ok }
	}
	if err != nil {
		l.st.fetchErrors.Add(1)
	}
	for i, k := range b.keys {
		switch v, kerr, ok := get(k); {
		case err != nil:
			b.errs[i] = err
		case !ok:
			b.errs[i] = ErrNotFound
		default:
			b.vals[i], b.errs[i] = v, kerr
		}
	}
}

// memoizable: only definite answers are memoized, never transient errors
// or panics.
func memoizable(err error) bool { return err == nil || errors.Is(err, ErrNotFound) }
