package bulkhead

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/valuecall"
	"github.com/scalekit-go/scalekit/priority"
)

// ErrRejected is matched by every rejection: ErrQueueFull, ErrMaxWait and
// ErrShed.
var ErrRejected = errors.New("bulkhead: rejected")

// ErrQueueFull is returned at once when MaxConcurrent calls run and
// MaxWaiting wait, none of a lower class than the caller's.
var ErrQueueFull = fmt.Errorf("bulkhead: full, wait queue full: %w", ErrRejected)

// ErrMaxWait is returned when a call waited MaxWait without getting a
// slot.
var ErrMaxWait = fmt.Errorf("bulkhead: full, no slot within MaxWait: %w", ErrRejected)

// ErrShed is returned to a waiting call whose place in the full queue was
// taken by a call of a higher priority class.
var ErrShed = fmt.Errorf("bulkhead: shed for a call of higher priority: %w", ErrRejected)

// ErrInvalid is wrapped by errors about bad options.
var ErrInvalid = errors.New("bulkhead: invalid")

// Options configures New. The zero value works: 10 calls at once, 10
// more waiting up to 1s each.
type Options struct {
	// Name identifies the bulkhead in logs and metrics. Default: "".
	Name string
	// MaxConcurrent is the most calls running at once, >= 1. Default: 10.
	MaxConcurrent int
	// MaxWaiting is the most calls waiting for a slot, >= 0. Default:
	// MaxConcurrent. NoQueue makes it 0.
	MaxWaiting int
	// NoQueue rejects every call that finds MaxConcurrent calls running,
	// at once. Default: false.
	NoQueue bool
	// MaxWait is the longest a call waits for a slot, > 0. Default: 1s.
	MaxWait time.Duration
	// Logger receives rejections, at Debug level. Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = 10
	}
	if o.NoQueue {
		o.MaxWaiting = 0
	} else if o.MaxWaiting == 0 {
		o.MaxWaiting = o.MaxConcurrent
	}
	if o.MaxWait == 0 {
		o.MaxWait = time.Second
	}
	o.Logger = logx.Or(o.Logger)
	switch {
	case o.MaxConcurrent < 1:
		return o, fmt.Errorf("%w: Options.MaxConcurrent must be >= 1 (0: 10), got %d", ErrInvalid, o.MaxConcurrent)
	case o.MaxWaiting < 0:
		return o, fmt.Errorf("%w: Options.MaxWaiting must be >= 0 (0: MaxConcurrent; NoQueue for none), got %d", ErrInvalid, o.MaxWaiting)
	case o.MaxWait < 0:
		return o, fmt.Errorf("%w: Options.MaxWait must be > 0 (0: 1s), got %v", ErrInvalid, o.MaxWait)
	}
	return o, nil
}

// waiter is a call waiting for a slot.
type waiter struct {
	ch    chan struct{} // gets one value when state leaves waiting
	class priority.Class
	state state // under Bulkhead.mu
}

type state uint8

const (
	waiting state = iota
	granted       // a slot was handed over
	shed          // displaced by a call of a higher class
)

// Bulkhead limits the calls running at once. It is safe for concurrent
// use.
type Bulkhead struct {
	o Options

	mu       sync.Mutex
	inflight int
	queued   int
	queues   [len(priority.Classes)][]*waiter // FIFO per class, by Class.Index

	admitted, waited, full, maxWait, shedN, cancelled atomic.Uint64
	rejected                                          [len(priority.Classes)]atomic.Uint64
}

// New returns a Bulkhead, or an error naming the bad option.
func New(o Options) (*Bulkhead, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Bulkhead{o: o}, nil
}

// Name is Options.Name.
func (b *Bulkhead) Name() string { return b.o.Name }

// Do runs fn when a slot is free, waiting for one as the package doc
// says, and returns its error; or returns ErrQueueFull, ErrMaxWait, ErrShed
// (all matching ErrRejected) or, when ctx ends while waiting, ctx's error,
// without running fn. The slot is freed when fn returns or panics.
func (b *Bulkhead) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := b.acquire(ctx); err != nil {
		return err
	}
	defer b.release()
	return fn(ctx)
}

// DoValue is Do for calls that return a value.
func DoValue[T any](ctx context.Context, b *Bulkhead, fn func(ctx context.Context) (T, error)) (T, error) {
	return valuecall.Do(ctx, b.Do, fn)
}

// Acquire is the two-step form of Do for code that cannot pass a
// function: it takes a slot, or returns Do's errors; release frees the
// slot and is safe to call more than once. Unlike Do it allocates.
func (b *Bulkhead) Acquire(ctx context.Context) (release func(), err error) {
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			b.release()
		}
	}, nil
}

func (b *Bulkhead) acquire(ctx context.Context) error {
	b.mu.Lock()
	if b.inflight < b.o.MaxConcurrent {
		b.inflight++ // a free slot means nobody waits: release hands slots over
		b.mu.Unlock()
		b.admitted.Add(1)
		return nil
	}
	class := priority.From(ctx)
	if b.queued >= b.o.MaxWaiting && !b.shedLowerLocked(class) {
		b.mu.Unlock()
		return b.reject(ctx, class, ErrQueueFull, &b.full)
	}
	w := &waiter{ch: make(chan struct{}, 1), class: class}
	q := &b.queues[class.Index()]
	*q = append(*q, w)
	b.queued++
	b.mu.Unlock()

	t := time.NewTimer(b.o.MaxWait)
	defer t.Stop()
	var err error
	select {
	case <-w.ch:
	case <-t.C:
		err = ErrMaxWait
	case <-ctx.Done():
		err = ctx.Err()
	}
	b.mu.Lock()
	switch w.state {
	case granted:
		b.mu.Unlock()
		if err != nil && ctx.Err() != nil {
			b.release() // handed a slot as ctx ended: give it on
			b.cancelled.Add(1)
			return ctx.Err()
		}
		b.admitted.Add(1)
		b.waited.Add(1)
		return nil
	case shed:
		b.mu.Unlock()
		return b.reject(ctx, class, ErrShed, &b.shedN)
	}
	b.removeLocked(w)
	b.mu.Unlock()
	if err == ErrMaxWait {
		return b.reject(ctx, class, ErrMaxWait, &b.maxWait)
	}
	b.cancelled.Add(1)
	return err
}

// shedLowerLocked rejects the newest waiting call of the lowest class
// below class, making room for one more; it reports false when there is
// none.
func (b *Bulkhead) shedLowerLocked(class priority.Class) bool {
	for i := range class.Index() {
		q := b.queues[i]
		if len(q) == 0 {
			continue
		}
		w := q[len(q)-1]
		q[len(q)-1] = nil
		b.queues[i] = q[:len(q)-1]
		b.queued--
		w.state = shed
		w.ch <- struct{}{}
		return true
	}
	return false
}

// removeLocked takes w, still waiting, out of its queue.
func (b *Bulkhead) removeLocked(w *waiter) {
	q := b.queues[w.class.Index()]
	for i, x := range q {
		if x == w {
			b.queues[w.class.Index()] = append(q[:i], q[i+1:]...)
			b.queued--
			return
		}
	}
}

// release frees a slot: it goes to the first waiting call of the highest
// class, if any.
func (b *Bulkhead) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.queues) - 1; i >= 0; i-- {
		q := b.queues[i]
		if len(q) == 0 {
			continue
		}
		w := q[0]
		q[0] = nil
		b.queues[i] = q[1:]
		b.queued--
		w.state = granted
		w.ch <- struct{}{}
		return // the slot passes to w: inflight unchanged
	}
	b.inflight--
}

func (b *Bulkhead) reject(ctx context.Context, class priority.Class, err error, n *atomic.Uint64) error {
	n.Add(1)
	b.rejected[class.Index()].Add(1)
	if b.o.Logger.Enabled(ctx, slog.LevelDebug) {
		b.o.Logger.LogAttrs(ctx, slog.LevelDebug, "bulkhead: rejected", slog.String("bulkhead", b.o.Name),
			slog.String("class", class.String()), slog.Any("error", err))
	}
	return err
}

// Stats is a snapshot of a Bulkhead.
type Stats struct {
	// MaxConcurrent and MaxWaiting are the Options'.
	MaxConcurrent, MaxWaiting int
	// InFlight is how many calls hold a slot now; Waiting how many wait.
	InFlight, Waiting int
	// Admitted counts calls given a slot, at once or after waiting;
	// Waited those that waited.
	Admitted, Waited uint64
	// QueueFull, MaxWait and Shed count rejections by reason (ErrQueueFull,
	// ErrMaxWait, ErrShed).
	QueueFull, MaxWait, Shed uint64
	// Cancelled counts waiting calls whose ctx ended first.
	Cancelled uint64
	// Rejected counts rejections by the caller's class.
	Rejected priority.Counts
}

// Stats returns a snapshot.
func (b *Bulkhead) Stats() Stats {
	b.mu.Lock()
	in, q := b.inflight, b.queued
	b.mu.Unlock()
	return Stats{
		MaxConcurrent: b.o.MaxConcurrent, MaxWaiting: b.o.MaxWaiting,
		InFlight: in, Waiting: q,
		Admitted: b.admitted.Load(), Waited: b.waited.Load(),
		QueueFull: b.full.Load(), MaxWait: b.maxWait.Load(), Shed: b.shedN.Load(), Cancelled: b.cancelled.Load(),
		Rejected: priority.Counts{
			Sheddable: b.rejected[priority.Sheddable.Index()].Load(),
			Default:   b.rejected[priority.Default.Index()].Load(),
			Critical:  b.rejected[priority.Critical.Index()].Load(),
		},
	}
}
