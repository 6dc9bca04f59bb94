// Package turns lets concurrent calls share round trips without a timer
// (ratelimitredis's coalesced decisions, queueredis's Enqueues). A call
// that finds one of Max turns free goes at once, alone, on its own
// goroutine: under no load nothing waits. Calls that find every turn
// taken wait in a queue; a turn that ends takes the calls waiting at the
// queue's front (a batch, in arrival order) with it, and is freed only
// when none waits. Under load each round trip carries every call that
// arrived while the others were out.
//
//	w, alone := t.Go(func() *call { return &call{...} })
//	if alone {
//		... one round trip for this call ...
//		if batch := t.Next(); batch != nil {
//			go t.Drain(batch, send) // send this batch and every next one
//		}
//		return
//	}
//	... wait for w's answer ...
package turns

import (
	"runtime"
	"sync"
)

// Config is a Turns' limits.
type Config[W any] struct {
	// Max is how many turns may be out at once (>= 1).
	Max int
	// MaxBatch bounds the calls of one batch (>= 1).
	MaxBatch int
	// Size and MaxBytes, when Size is set, bound a batch's total Size too
	// (a batch takes at least one call).
	Size     func(W) int
	MaxBytes int
	// Drop, when set, is asked about each waiting call as a batch is
	// taken: true leaves the call out of every batch (its caller left;
	// Drop may answer it), and it does not count toward the limits.
	Drop func(W) bool
	// Yield runs between two batches of Drain. Default: runtime.Gosched.
	Yield func()
}

// Turns is the turns and the queue of waiting calls W. Its zero value is
// not usable: use New.
type Turns[W any] struct {
	cfg      Config[W]
	mu       sync.Mutex
	inFlight int
	queue    []W
}

// New returns Turns with cfg.
func New[W any](cfg Config[W]) *Turns[W] {
	cfg.Max, cfg.MaxBatch = max(1, cfg.Max), max(1, cfg.MaxBatch)
	if cfg.Yield == nil {
		cfg.Yield = runtime.Gosched
	}
	return &Turns[W]{cfg: cfg}
}

// Go takes a free turn (alone: the caller goes now, and ends its turn
// with Next) or, when every turn is out, queues the call mk makes and
// returns it. It is atomic: a call queued is in the next batch a turn
// takes.
func (t *Turns[W]) Go(mk func() W) (w W, alone bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inFlight < t.cfg.Max && len(t.queue) == 0 {
		t.inFlight++
		return w, true
	}
	w = mk()
	t.queue = append(t.queue, w)
	return w, false
}

// Next ends a turn: it returns the next batch of waiting calls for the
// turn to send, or nil, freeing the turn, when none waits.
func (t *Turns[W]) Next() []W {
	t.mu.Lock()
	defer t.mu.Unlock()
	var batch []W
	size, n := 0, 0
	for _, w := range t.queue {
		if len(batch) == t.cfg.MaxBatch || (t.cfg.Size != nil && len(batch) > 0 && size+t.cfg.Size(w) > t.cfg.MaxBytes) {
			break
		}
		n++
		if t.cfg.Drop != nil && t.cfg.Drop(w) {
			continue
		}
		batch = append(batch, w)
		if t.cfg.Size != nil {
			size += t.cfg.Size(w)
		}
	}
	left := copy(t.queue, t.queue[n:])
	clear(t.queue[left:]) // taken: not kept alive by the array
	t.queue = t.queue[:left]
	if len(batch) == 0 { // then none waits: dropped calls do not stop the loop
		t.inFlight--
		return nil
	}
	return batch
}

// Drain sends batch (a batch Next returned) with send, then each next
// batch of the turn, until none waits and the turn is free. Between two
// batches it yields once (Config.Yield): the callers the last batch
// answered run first, and those that call again queue in time for the
// next batch instead of finding a turn free and going alone. It costs no
// timer, and no wait when nothing else is runnable. Measured: coalesced
// limiter decisions at 32 goroutines 9 -> 15 calls a batch; queueredis
// Enqueues at 16 goroutines ~70k -> ~83k jobs/s, client CPU per job 9.7
// -> 7.8 µs.
func (t *Turns[W]) Drain(batch []W, send func([]W)) {
	for batch != nil {
		send(batch)
		t.cfg.Yield()
		batch = t.Next()
	}
}

// TakeAll removes and returns every waiting call (not those of a turn
// out), for a turn that failed to fail them too.
func (t *Turns[W]) TakeAll() []W {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := t.queue
	t.queue = nil
	return all
}

// Out reports how many turns are out and how many calls wait.
func (t *Turns[W]) Out() (turns, waiting int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inFlight, len(t.queue)
}
