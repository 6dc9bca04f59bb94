package queueredis

import (
	"context"
	"errors"
	"fmt"
	"sync"

	lanes "github.com/scalekit-go/scalekit/internal/lane"
	"github.com/scalekit-go/scalekit/queue"
)

// The Enqueues of one queue from one Backend take turns: when none is in
// flight, an Enqueue sends its own script (enqueueScript) at once, so a
// lone caller pays no delay; the ones that come while a script is in
// flight wait for it and then leave together, in arrival order, in one
// enqueueManyScript (as EnqueueMany would store them one after the
// other), so concurrent enqueues cost one round trip and one script call
// per batch instead of one each. Each caller still gets its own job's
// result.

// maxEnqueueBatch and maxEnqueueBytes bound one batch of waiting
// Enqueues (a script runs alone on its Redis).
const (
	maxEnqueueBatch = 256
	maxEnqueueBytes = 1 << 20
)

// enqueueTurns is how many scripts of one queue's Enqueues are in flight
// at most: with one, Redis would idle while each batch's replies come
// back and its callers are answered.
var enqueueTurns = 2

// enqueueLane is one queue's turn-taking of Enqueues.
type enqueueLane struct {
	queue    string
	names    enqueueNames // its keys' names (Backend.enqueueKeys)
	mu       sync.Mutex
	inFlight int // scripts of the queue's Enqueues in flight (at most enqueueTurns)
	waiting  []*pendingEnqueue
}

// pendingEnqueue is one Enqueue waiting for its batch.
type pendingEnqueue struct {
	ctx  context.Context
	m    *queue.Message
	done chan error // buffered: the batch never blocks on a caller that left
}

// enqueueLane returns queue q's lane of Enqueues.
func (b *Backend) enqueueLane(q string) *enqueueLane {
	if l, ok := b.enqueues.Load(q); ok {
		return l.(*enqueueLane)
	}
	l, _ := b.enqueues.LoadOrStore(q, &enqueueLane{queue: q, names: b.enqueueNamesFor(q)})
	return l.(*enqueueLane)
}

// enqueue stores m alone at once when a turn is free, else in a batch.
func (b *Backend) enqueue(ctx context.Context, m *queue.Message) error {
	l := b.enqueueLane(m.Queue)
	l.mu.Lock()
	if l.inFlight < enqueueTurns && len(l.waiting) == 0 {
		l.inFlight++
		l.mu.Unlock()
		callFailed, err := b.enqueueOne(ctx, m)
		if callFailed && ctx.Err() == nil {
			// Redis failed: the Enqueues that came meanwhile fail with it,
			// as after a batch (enqueueBatch).
			l.fail(err)
		}
		if batch := l.next(); batch != nil {
			go b.drainEnqueues(l, batch)
		}
		return err
	}
	p := &pendingEnqueue{ctx: ctx, m: m, done: make(chan error, 1)}
	l.waiting = append(l.waiting, p)
	l.mu.Unlock()
	return lanes.WaitErr(ctx, p.done)
}

// drainEnqueues sends batch, then the next ones of the turn, until none
// waits.
func (b *Backend) drainEnqueues(l *enqueueLane, batch []*pendingEnqueue) {
	for ; batch != nil; batch = l.next() {
		b.enqueueBatch(l, batch)
	}
}

// next ends a turn: it returns the next batch of waiting Enqueues for the
// turn to send, or nil, freeing the turn, when none waits. One whose ctx
// ended is answered its ctx's error and not sent.
func (l *enqueueLane) next() []*pendingEnqueue {
	l.mu.Lock()
	defer l.mu.Unlock()
	var batch []*pendingEnqueue
	size, n := 0, 0
	for _, p := range l.waiting {
		if len(batch) == maxEnqueueBatch || (len(batch) > 0 && size+len(p.m.Payload) > maxEnqueueBytes) {
			break
		}
		n++
		if err := p.ctx.Err(); err != nil {
			p.done <- err
			continue
		}
		batch = append(batch, p)
		size += len(p.m.Payload)
	}
	left := copy(l.waiting, l.waiting[n:])
	clear(l.waiting[left:]) // answered: not kept alive by the array
	l.waiting = l.waiting[:left]
	if len(batch) == 0 { // (then none waits: the ones that left do not count)
		l.inFlight--
		return nil
	}
	return batch
}

// fail answers err to every Enqueue waiting.
func (l *enqueueLane) fail(err error) {
	l.mu.Lock()
	waiting := l.waiting
	l.waiting = nil
	l.mu.Unlock()
	for _, p := range waiting {
		p.done <- err
	}
}

// enqueueBatch stores a batch of one queue's messages in one
// enqueueManyScript and answers each. When the script fails, the
// Enqueues that came meanwhile fail with it, as a round of completions
// does (batch.go): on a Redis that did not answer within Timeout each
// would wait another Timeout.
func (b *Backend) enqueueBatch(l *enqueueLane, batch []*pendingEnqueue) {
	args := make([]any, 0, 2+enqueueFields*len(batch))
	args = append(args, b.base(l.queue)...)
	for _, p := range batch {
		args = appendJobArgs(args, p.m, false)
	}
	tctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	v, err := enqueueManyScript.Run(tctx, b.c, b.keys(l.queue, "", ""), args...).Result()
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || tctx.Err() != nil {
			err = fmt.Errorf("queueredis: Enqueue: Redis did not answer within %v: %w", b.timeout, err)
		} else {
			err = fmt.Errorf("queueredis: Enqueue: %w", err)
		}
		for _, p := range batch {
			p.done <- err
		}
		l.fail(err)
		return
	}
	r, _ := v.([]any)
	for i, p := range batch {
		status, _ := at[string](r, 2*i)
		detail, _ := at[string](r, 2*i+1)
		res, ok := enqueueResult(p.m, status, detail)
		if !ok || len(r) != 2*len(batch) {
			p.done <- fmt.Errorf("queueredis: Enqueue: unexpected reply %v", v)
			continue
		}
		p.done <- res.Err
	}
}
