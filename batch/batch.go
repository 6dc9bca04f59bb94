package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/internal/logx"
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
	// Tracer sees each fetch with the ctx of every caller whose key it
	// fetches (the otel module's Tracer.Batch makes a span per fetch
	// linked to each caller's span). Default: none (one nil check per
	// Load).
	Tracer Tracer
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
	o.Logger = logx.Or(o.Logger)
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

	mu sync.Mutex
	// one is the only partition when Options.Partition is nil (no map
	// lookup per Load); parts holds them by name otherwise.
	one   *partition[K, V]
	parts map[string]*partition[K, V]
	// Counted under mu (held anyway): no contended atomic per Load.
	loads, deduped uint64

	st stats
}

// partition is the batching state of one Options.Partition value.
type partition[K comparable, V any] struct {
	open *pendingBatch[K, V]
	// where maps the keys of the open and in-flight batches to their
	// batch. Completing a batch takes no lock and deletes nothing: it
	// empties the batch's joinable, and a Load finding an empty one
	// starts a new batch, overwriting the stale slot. Stale slots of
	// keys not asked for again are swept once where holds sweepAt slots.
	where   map[K]slot[K, V]
	sweepAt int
	// last is the size of the last detached batch: the next batch starts
	// with room for that many keys instead of growing its slice.
	last int
	// timer flushes the open batch when it is due (fire). One timer
	// serves every batch of the partition: a batch that fills up before
	// its window ends costs no timer operation, and a fire that finds a
	// younger batch open re-arms the timer for that batch's deadline.
	timer *time.Timer
	armed bool // timer is set or firing; guarded by Loader.mu
	// spare is a batch made ahead, outside Loader.mu, by run: opening a
	// batch then allocates nothing while holding the lock.
	spare atomic.Pointer[pendingBatch[K, V]]
}

// slot is where a key is: in the batch j holds, at index i.
type slot[K comparable, V any] struct {
	j *joinable[K, V]
	i int
}

// joinable holds a batch while Loads of its keys may join it: until it
// completes or every caller has left it. It is apart from the batch so
// that stale slots keep only it alive, not the batch's keys and values.
type joinable[K comparable, V any] struct {
	b atomic.Pointer[pendingBatch[K, V]]
}

// minSweep is the fewest slots a partition's where holds before stale
// ones are swept; after a sweep, twice the live ones.
const minSweep = 1024

// pendingBatch is one fetch's worth of keys. Every caller of any of its
// keys waits on done; results are at the key's index. A batch is never
// reused: callers read its results after done closes, for as long as they
// like.
type pendingBatch[K comparable, V any] struct {
	part   *partition[K, V]
	keys   []K
	done   chan struct{}
	opened time.Time
	joined time.Time       // when the last key joined; kept only with Options.Idle
	first  detached        // the first caller's ctx, set when the batch opens
	ctx    context.Context // the fetch's: first's values, own cancellation
	cancel context.CancelFunc
	join   *joinable[K, V] // emptied when the batch completes or is abandoned
	// waiters is incremented under Loader.mu; callers leaving early
	// decrement it (leave). Callers of a completed batch do not.
	waiters atomic.Int32
	flushed bool // guarded by Loader.mu
	// callers are the ctxs of the Loads of the batch's keys while it was
	// open, kept only with Options.Tracer; guarded by Loader.mu.
	callers []context.Context

	// The results, written before done closes and read-only after: err
	// is the whole batch's (fetch error, panic, cancellation); otherwise
	// key i has vals[i] and errs[i], errs being nil while no key has one.
	err  error
	vals []V
	errs []error
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
	l := &Loader[K, V]{fetchMap: fm, fetchRes: fr, o: o, sem: make(chan struct{}, o.MaxConcurrent)}
	if o.Partition == nil {
		l.one = newPartition[K, V]()
	} else {
		l.parts = map[string]*partition[K, V]{}
	}
	return l, nil
}

// newBatch makes a batch with room for n keys, to open with its first
// key's ctx in first.
func newBatch[K comparable, V any](p *partition[K, V], n int) *pendingBatch[K, V] {
	b := &pendingBatch[K, V]{part: p, keys: make([]K, 0, n), done: make(chan struct{}), join: &joinable[K, V]{}}
	b.ctx, b.cancel = context.WithCancel(&b.first)
	return b
}

// detached is context.WithoutCancel(Context) kept inside the batch, so it
// can be set after the fetch's ctx was derived from it: it has Context's
// values, no deadline and no cancellation. (The cancelCtx derived from it
// answers the context package's own lookups, such as Cause, itself.)
type detached struct{ context.Context }

func (*detached) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*detached) Done() <-chan struct{}       { return nil }
func (*detached) Err() error                  { return nil }
func (d *detached) String() string {
	if s, ok := d.Context.(fmt.Stringer); ok {
		return s.String() + ".WithoutCancel"
	}
	return fmt.Sprintf("%T.WithoutCancel", d.Context)
}

func newPartition[K comparable, V any]() *partition[K, V] {
	return &partition[K, V]{where: map[K]slot[K, V]{}, sweepAt: minSweep}
}

// Load returns key's value, fetched in a batch with the keys other callers
// ask for meanwhile. If ctx ends first Load returns ctx.Err() at once; the
// batch goes on for the other callers, and its fetch's ctx is cancelled only
// when every caller waiting on it has gone. When ctx cannot end (its Done is
// nil) and key fills the batch (MaxBatch), the fetch runs on the caller's
// goroutine, which would otherwise only wait for it.
func (l *Loader[K, V]) Load(ctx context.Context, key K) (V, error) {
	m := memoFrom(ctx)
	if m != nil {
		if v, err, ok := m.get(l, key); ok {
			// A memoized ErrNotFound, or a Prime of nil, holds a nil
			// interface: with V an interface type v.(V) would panic, the
			// comma-ok form gives the zero V.
			vv, _ := v.(V)
			return vv, err
		}
	}
	b, i, full := l.enqueue(ctx, key)
	cancelled := ctx.Done()
	switch {
	case cancelled == nil && full:
		// This caller filled the batch and cannot leave early: it fetches
		// the batch itself, as it would only wait for another goroutine
		// to do so.
		l.run(b)
	case cancelled == nil:
		<-b.done // a plain receive is cheaper than a select
	default:
		if full {
			go l.run(b)
		}
		select {
		case <-b.done:
		case <-cancelled:
			l.st.cancelled.Add(1)
			l.leave(b)
			var zero V
			return zero, ctx.Err()
		}
	}
	// Completed: the waiter count no longer matters, so leaving costs
	// nothing (a decrement per waiter would contend on the batch).
	v, err := b.result(i)
	if m != nil && memoizable(err) {
		m.put(l, key, v, err)
	}
	return v, err
}

// LoadMany loads keys (in one batch when they fit) and returns values and
// errors in the order of keys; errs[i] is nil when vals[i] was found.
func (l *Loader[K, V]) LoadMany(ctx context.Context, keys []K) ([]V, []error) {
	vals := make([]V, len(keys))
	errs := make([]error, len(keys))
	type pend struct {
		i, at int // index in keys, in b
		b     *pendingBatch[K, V]
	}
	waits := make([]pend, 0, len(keys))
	// A caller that cannot leave runs the last batch its keys fill itself,
	// as Load does; held is that batch, not yet started.
	inline := ctx.Done() == nil
	var held *pendingBatch[K, V]
	m := memoFrom(ctx)
	for i, k := range keys {
		if m != nil {
			if v, err, ok := m.get(l, k); ok {
				vals[i], _ = v.(V) // nil interface: the zero V (see Load)
				errs[i] = err
				continue
			}
		}
		b, at, full := l.enqueue(ctx, k)
		waits = append(waits, pend{i, at, b})
		if full {
			if inline {
				b, held = held, b
			}
			if b != nil {
				go l.run(b)
			}
		}
	}
	if held != nil {
		l.run(held)
	}
	for n, w := range waits {
		select {
		case <-w.b.done:
			vals[w.i], errs[w.i] = w.b.result(w.at)
			if m != nil && memoizable(errs[w.i]) {
				m.put(l, keys[w.i], vals[w.i], errs[w.i])
			}
		case <-ctx.Done():
			l.st.cancelled.Add(1)
			for _, rest := range waits[n:] {
				l.leave(rest.b)
				errs[rest.i] = ctx.Err()
			}
			return vals, errs
		}
	}
	return vals, errs
}

// enqueue finds key in an open or in-flight batch of its partition, or adds
// it to the open one, and registers the caller as a waiter of that batch;
// key's result will be b.result(i). It reports full when key filled the
// batch (MaxBatch): the batch is then detached and the caller must run it.
func (l *Loader[K, V]) enqueue(ctx context.Context, key K) (b *pendingBatch[K, V], i int, full bool) {
	name := ""
	if l.o.Partition != nil {
		name = l.o.Partition(ctx)
	}
	l.mu.Lock()
	l.loads++
	p := l.one
	if p == nil {
		p = l.parts[name]
		if p == nil {
			p = newPartition[K, V]()
			l.parts[name] = p
		}
	}
	if sl, ok := p.where[key]; ok {
		if b := sl.j.b.Load(); b != nil {
			b.waiters.Add(1)
			l.deduped++
			if l.o.Tracer != nil && !b.flushed {
				b.callers = append(b.callers, ctx)
			}
			l.mu.Unlock()
			return b, sl.i, false
		}
		// Stale: its batch is done. The slot is overwritten below.
	} else if len(p.where) >= p.sweepAt {
		p.sweep()
	}
	b = p.open
	if b == nil {
		if b = p.spare.Swap(nil); b == nil {
			b = newBatch(p, p.last)
		}
		b.first.Context = ctx
		b.opened = time.Now()
		b.joined = b.opened
		b.join.b.Store(b)
		p.open = b
	} else if l.o.Idle > 0 {
		b.joined = time.Now()
	}
	b.waiters.Add(1)
	i = len(b.keys)
	b.keys = append(b.keys, key)
	if l.o.Tracer != nil {
		b.callers = append(b.callers, ctx)
	}
	p.where[key] = slot[K, V]{b.join, i}
	if len(b.keys) >= l.o.MaxBatch {
		l.detach(b)
		l.mu.Unlock()
		return b, i, true
	}
	if !p.armed {
		// A set timer is due no later than b (it was set for an older
		// batch) and re-arms itself for b when it fires.
		p.armed = true
		d := l.due(b).Sub(b.joined)
		if p.timer == nil {
			p.timer = time.AfterFunc(d, func() { l.fire(p) })
		} else {
			p.timer.Reset(d)
		}
	}
	l.mu.Unlock()
	return b, i, false
}

// sweep deletes the stale slots of where (Loader.mu held). The next sweep
// comes once where holds twice the slots this one left (and at least
// minSweep), which keeps the cost per Load constant.
func (p *partition[K, V]) sweep() {
	for k, sl := range p.where {
		if sl.j.b.Load() == nil {
			delete(p.where, k)
		}
	}
	p.sweepAt = max(minSweep, 2*len(p.where))
}

// due is when b is fetched unless it fills up first: Wait after its first
// key, or Idle after its last one if that is sooner.
func (l *Loader[K, V]) due(b *pendingBatch[K, V]) time.Time {
	t := b.opened.Add(l.o.Wait)
	if l.o.Idle > 0 {
		if i := b.joined.Add(l.o.Idle); i.Before(t) {
			return i
		}
	}
	return t
}

// fire runs when p's timer expires: it fetches the open batch if it is
// due, or sets the timer for when it will be.
func (l *Loader[K, V]) fire(p *partition[K, V]) {
	l.mu.Lock()
	b := p.open
	if b == nil {
		p.armed = false
		l.mu.Unlock()
		return
	}
	if d := time.Until(l.due(b)); d > 0 {
		p.timer.Reset(d)
		l.mu.Unlock()
		return
	}
	p.armed = false
	l.detach(b)
	l.mu.Unlock()
	l.run(b)
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
	b.part.last = len(b.keys)
	return true
}

// Flush fetches every open batch now instead of waiting for its window, and
// returns without waiting for the fetches.
func (l *Loader[K, V]) Flush() {
	l.mu.Lock()
	var bs []*pendingBatch[K, V]
	if p := l.one; p != nil && p.open != nil {
		bs = append(bs, p.open)
	}
	for _, p := range l.parts {
		if p.open != nil {
			bs = append(bs, p.open)
		}
	}
	for _, b := range bs {
		l.detach(b) // open, so not yet detached
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
		b.join.b.Store(nil)
	}
	l.mu.Unlock()
	if last {
		b.cancel()
	}
}

// run fetches a detached batch and completes it.
func (l *Loader[K, V]) run(b *pendingBatch[K, V]) {
	defer b.cancel()
	l.st.waitNanos.Add(uint64(time.Since(b.opened)))
	if l.acquire(b) {
		defer func() { <-l.sem }()
	}
	// A waiter that leaves after this check (count reaching 0) finds the
	// batch flushed and cancels b.ctx itself; only 0 needs the lock, as
	// joiners increment under it.
	abandoned := b.waiters.Load() == 0
	if abandoned {
		l.mu.Lock()
		abandoned = b.waiters.Load() == 0
		if abandoned {
			b.join.b.Store(nil)
		}
		l.mu.Unlock()
	}

	if abandoned || b.ctx.Err() != nil {
		b.err = context.Canceled // nobody is waiting for it
	} else {
		l.st.record(len(b.keys))
		if l.o.Tracer != nil {
			l.traceFetch(b)
		} else {
			l.fetchInto(b.ctx, b)
		}
	}
	// Results are in place before done closes. No lock: a Load that still
	// finds b joinable joins a batch about to complete, which is as good
	// as joining it a moment earlier; one that finds it emptied starts a
	// new batch.
	b.join.b.Store(nil)
	close(b.done)
	// Off the waiters' path, make the batch after next ahead (the next is
	// open already, as a rule).
	if p := b.part; p.spare.Load() == nil {
		p.spare.CompareAndSwap(nil, newBatch(p, len(b.keys)))
	}
}

// acquire takes a fetch slot, or gives up when every caller of b has left
// while it queued (and reports false).
func (l *Loader[K, V]) acquire(b *pendingBatch[K, V]) bool {
	select {
	case l.sem <- struct{}{}: // a free slot: no select on b.ctx.Done()
		return true
	default:
	}
	select {
	case l.sem <- struct{}{}:
		return true
	case <-b.ctx.Done():
		return false
	}
}

// fetchInto runs the fetch for b, turning a panic into a *PanicError for
// every key.
func (l *Loader[K, V]) fetchInto(ctx context.Context, b *pendingBatch[K, V]) {
	defer func() {
		if r := recover(); r != nil {
			l.st.panics.Add(1)
			b.err = &PanicError{Value: r, Stack: debug.Stack()}
			l.o.Logger.LogAttrs(b.ctx, slog.LevelError, "batch: fetch panicked", slog.Any("panic", r), slog.Int("keys", len(b.keys)))
		}
	}()
	var err error
	if l.fetchMap != nil {
		var m map[K]V
		if m, err = l.fetchMap(ctx, b.keys); err == nil {
			b.vals = make([]V, len(b.keys))
			for i, k := range b.keys {
				if v, ok := m[k]; ok {
					b.vals[i] = v
				} else {
					b.keyErr(i, ErrNotFound)
				}
			}
		}
	} else {
		var m map[K]Result[V]
		if m, err = l.fetchRes(ctx, b.keys); err == nil {
			b.vals = make([]V, len(b.keys))
			for i, k := range b.keys {
				r, ok := m[k]
				switch {
				case !ok:
					b.keyErr(i, ErrNotFound)
				case r.Err != nil:
					b.keyErr(i, r.Err)
					fallthrough
				default:
					b.vals[i] = r.Value
				}
			}
		}
	}
	if err != nil {
		l.st.fetchErrors.Add(1)
		b.err = err
	}
}

// keyErr sets key i's error (before done closes).
func (b *pendingBatch[K, V]) keyErr(i int, err error) {
	if b.errs == nil {
		b.errs = make([]error, len(b.keys))
	}
	b.errs[i] = err
}

// result is key i's outcome (after done closed).
func (b *pendingBatch[K, V]) result(i int) (V, error) {
	if b.err != nil {
		var zero V
		return zero, b.err
	}
	if b.errs != nil {
		return b.vals[i], b.errs[i]
	}
	return b.vals[i], nil
}

// memoizable: only definite answers are memoized, never transient errors
// or panics.
func memoizable(err error) bool { return err == nil || errors.Is(err, ErrNotFound) }
