package queueredis

import (
	"context"
	"errors"
	"fmt"

	lanes "github.com/scalekit-go/scalekit/internal/lane"
	"github.com/scalekit-go/scalekit/internal/turns"
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
const enqueueTurns = 2

// enqueueLane is one queue's turn-taking of Enqueues.
type enqueueLane struct {
	queue string
	names enqueueNames // its keys' names (Backend.enqueueKeys)
	turns *turns.Turns[*pendingEnqueue]
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
	l, _ := b.enqueues.LoadOrStore(q, &enqueueLane{queue: q, names: b.enqueueNamesFor(q), turns: turns.New(turns.Config[*pendingEnqueue]{
		Max: enqueueTurns, MaxBatch: maxEnqueueBatch, MaxBytes: maxEnqueueBytes,
		Size: func(p *pendingEnqueue) int { return len(p.m.Payload) },
		// One whose ctx ended before its batch is answered its ctx's
		// error and not sent.
		Drop: func(p *pendingEnqueue) bool {
			if err := p.ctx.Err(); err != nil {
				p.done <- err
				return true
			}
			return false
		},
	})})
	return l.(*enqueueLane)
}

// enqueue stores m alone at once when a turn is free, else in a batch.
func (b *Backend) enqueue(ctx context.Context, m *queue.Message) error {
	l := b.enqueueLane(m.Queue)
	p, alone := l.turns.Go(func() *pendingEnqueue { return &pendingEnqueue{ctx: ctx, m: m, done: make(chan error, 1)} })
	if !alone {
		return lanes.WaitErr(ctx, p.done)
	}
	callFailed, err := b.enqueueOne(ctx, &l.names, m)
	if callFailed && ctx.Err() == nil {
		// Redis failed: the Enqueues that came meanwhile fail with it,
		// as after a batch (enqueueBatch).
		l.fail(err)
	}
	if batch := l.turns.Next(); batch != nil {
		go b.drainEnqueues(l, batch)
	}
	return err
}

// drainEnqueues sends batch, then the next ones of the turn, until none
// waits (turns.Drain, which yields between two batches).
func (b *Backend) drainEnqueues(l *enqueueLane, batch []*pendingEnqueue) {
	l.turns.Drain(batch, func(batch []*pendingEnqueue) { b.enqueueBatch(l, batch) })
}

// fail answers err to every Enqueue waiting.
func (l *enqueueLane) fail(err error) {
	for _, p := range l.turns.TakeAll() {
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
