// Package lane batches one queue's completions and fetches into rounds,
// one round trip at a time, for the queue backends (queuepg, queueredis).
//
//	ln := lane.New(lane.Config[*myComplete, *myFetch]{
//		MaxCompletions: 1000, MaxFetch: 256,
//		Round: func(cs []*myComplete, f *myFetch) { /* one round trip; answer each */ },
//	})
//	ln.Complete(c) // or ln.Fetch(f); then lane.Wait(ctx, c.done)
//
// A lane with nothing in flight starts a drain goroutine at once, so an
// idle queue pays no delay; requests that come while a round is in flight
// wait for it and leave together in the next one. Each round takes up to
// MaxCompletions live completions (and MaxBytes of them, by Size) plus
// one live fetch, grown by its FetchRequest.Grow to at most MaxFetch just
// before it leaves. Requests whose ctx ended before their round are
// dropped and answered their ctx's error. The drain stops when nothing
// waits. The backend owns the pending types, their reply channels and
// the round itself.
package lane

import (
	"context"
	"sync"

	"github.com/scalekit-go/scalekit/queue"
)

// Request is one completion or fetch waiting for its round.
type Request interface {
	// Context is its caller's context: once it ended, the lane drops
	// the request before its round.
	Context() context.Context
	// Drop answers the request with err (its ctx's error); it must not
	// block (a buffered reply channel).
	Drop(err error)
}

// Fetch is a fetch waiting for its round.
type Fetch interface {
	Request
	// FetchRequest is the request the lane grows (FetchRequest.Grow)
	// in place just before its round.
	FetchRequest() *queue.FetchRequest
}

// Config is a lane's limits and round.
type Config[C Request, F Fetch] struct {
	// MaxCompletions bounds the completions of one round (> 0).
	MaxCompletions int
	// MaxBytes bounds the Size of one round's completions (a round
	// takes at least one); Size nil: no such bound.
	MaxBytes int
	Size     func(C) int
	// MaxFetch bounds what FetchRequest.Grow may add to a fetch: Max
	// grows to at most MaxFetch.
	MaxFetch int
	// Yield, when not nil, runs once (without the lane's lock) before a
	// round that would carry completions but no fetch, so a fetch about
	// to come may ride along.
	Yield func()
	// Round runs one round: the completions cs and the fetch f (F's zero
	// value, nil for a pointer, when none), and answers each. Rounds of
	// one lane never overlap.
	Round func(cs []C, f F)
}

// Lane is one queue's batch of completions C and fetches F (see the
// package doc). Its zero value is not usable: use New.
type Lane[C Request, F Fetch] struct {
	cfg Config[C, F]

	mu        sync.Mutex
	running   bool   // a goroutine runs rounds (drain) until the lane is empty
	rounds    uint64 // rounds taken so far
	completes []C
	fetches   []F
}

// New returns an empty lane with cfg.
func New[C Request, F Fetch](cfg Config[C, F]) *Lane[C, F] {
	return &Lane[C, F]{cfg: cfg}
}

// Complete adds the completion c and starts a drain if none runs.
func (l *Lane[C, F]) Complete(c C) {
	l.submit(func() { l.completes = append(l.completes, c) })
}

// Fetch adds the fetch f and starts a drain if none runs.
func (l *Lane[C, F]) Fetch(f F) {
	l.submit(func() { l.fetches = append(l.fetches, f) })
}

// submit adds work to l (under its lock, by add) and starts a drain if
// none runs.
func (l *Lane[C, F]) submit(add func()) {
	l.mu.Lock()
	add()
	start := !l.running
	l.running = true
	l.mu.Unlock()
	if start {
		go l.drain()
	}
}

// Wait waits for a reply on done (buffered: a round never blocks on a
// caller that left) or for ctx to end (zero T and ctx's error).
func Wait[T any](ctx context.Context, done <-chan T) (T, error) {
	select {
	case rep := <-done:
		return rep, nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// WaitErr is Wait for a reply that is an error: the reply, or ctx's
// error once ctx ended.
func WaitErr(ctx context.Context, done <-chan error) error {
	err, cerr := Wait(ctx, done)
	if cerr != nil {
		return cerr
	}
	return err
}

// TakeAll removes and returns every request waiting (not those of the
// round in flight), for a round that fails them too.
func (l *Lane[C, F]) TakeAll() ([]C, []F) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := append([]C(nil), l.completes...)
	clear(l.completes)
	l.completes = l.completes[:0]
	fs := l.fetches
	l.fetches = nil
	return cs, fs
}

// Rounds is how many rounds l has taken so far.
func (l *Lane[C, F]) Rounds() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rounds
}

// Waiting is how many completions and fetches wait for a round.
func (l *Lane[C, F]) Waiting() (completes, fetches int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.completes), len(l.fetches)
}

// Running reports whether a drain runs.
func (l *Lane[C, F]) Running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running
}

// drain runs l's rounds until nothing waits. Requests whose caller left
// (its ctx ended) before their round are dropped: their caller got an
// error, and a fetch for nobody would lease jobs to nobody (a dropped
// completion leaves its lease to expire, as a Complete that failed does).
func (l *Lane[C, F]) drain() {
	yielded := false
	for {
		l.mu.Lock()
		if l.cfg.Yield != nil && len(l.fetches) == 0 && len(l.completes) > 0 && !yielded {
			yielded = true
			l.mu.Unlock()
			l.cfg.Yield()
			continue
		}
		yielded = false
		var cs []C
		size := 0
		n := 0
		for _, p := range l.completes {
			if len(cs) == l.cfg.MaxCompletions || (l.cfg.Size != nil && size+l.cfg.Size(p) > l.cfg.MaxBytes && len(cs) > 0) {
				l.completes[n] = p
				n++
				continue
			}
			if err := p.Context().Err(); err != nil {
				p.Drop(err)
				continue
			}
			cs = append(cs, p)
			if l.cfg.Size != nil {
				size += l.cfg.Size(p)
			}
		}
		clear(l.completes[n:])
		l.completes = l.completes[:n]
		var f F
		found := false
		for !found && len(l.fetches) > 0 {
			f = l.fetches[0]
			var zero F
			l.fetches[0] = zero
			l.fetches = l.fetches[1:]
			if err := f.Context().Err(); err != nil {
				f.Drop(err)
				f = zero
				continue
			}
			found = true
		}
		if len(cs) == 0 && !found { // (a completion left over means cs is not empty)
			l.running = false
			l.mu.Unlock()
			return
		}
		l.rounds++
		l.mu.Unlock()
		if found {
			if r := f.FetchRequest(); r.Grow != nil && r.Max < l.cfg.MaxFetch {
				r.Max += max(0, min(r.Grow(l.cfg.MaxFetch-r.Max), l.cfg.MaxFetch-r.Max))
			}
		}
		l.cfg.Round(cs, f)
	}
}
