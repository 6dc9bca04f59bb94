package queueredis

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	lanes "github.com/scalekit-go/scalekit/internal/lane"
	"github.com/scalekit-go/scalekit/internal/token"
	"github.com/scalekit-go/scalekit/queue"
)

// The completions and fetches of one queue from one Backend go through
// its lane: one round trip at a time (roundScript) carries every
// completion waiting (up to maxRoundCompletions) and one fetch, grown
// (FetchRequest.Grow) just before it leaves to the worker's slots that
// are free by then. A lane
// with nothing in flight sends a request at once, so an idle queue pays
// no delay; requests that come while a round is in flight wait for it
// and leave together in the next one, so the batches grow with the load
// and the completions ride on the fetches. One queue's keys share a hash
// slot, so a round is one script on Redis Cluster too.

// maxRoundCompletions and maxRoundBytes bound one round: a script runs
// alone on its Redis, and a round of 256 no-op completions takes about a
// millisecond of it.
const (
	maxRoundCompletions = 256
	maxRoundBytes       = 1 << 20
)

// maxRoundFetch bounds what FetchRequest.Grow may add to a fetch.
const maxRoundFetch = 256

// lane is a queue's batch (see above): its keys and its lanes.Lane.
type lane struct {
	queue string
	keys  []string
	*lanes.Lane[*pendingComplete, *pendingFetch]
}

// pendingComplete is one Complete waiting for its round.
type pendingComplete struct {
	ctx    context.Context
	l      *queue.Lease
	output []byte
	done   chan error // buffered: drain never blocks on a caller that left
}

func (p *pendingComplete) Context() context.Context { return p.ctx }
func (p *pendingComplete) Drop(err error)           { p.done <- err }

// pendingFetch is one fetch script waiting for its round.
type pendingFetch struct {
	ctx   context.Context
	r     queue.FetchRequest
	order [3]int
	done  chan fetchReply // buffered
}

func (p *pendingFetch) Context() context.Context          { return p.ctx }
func (p *pendingFetch) Drop(err error)                    { p.done <- fetchReply{err: err} }
func (p *pendingFetch) FetchRequest() *queue.FetchRequest { return &p.r }

// fetchReply is fetch's reply: the leases, or, when there are none, the
// µs until the next due time (-1: none) and the wake stream's last id.
type fetchReply struct {
	leases []*queue.Lease
	next   int64
	lastID string
	err    error
}

// lane returns queue q's lane.
func (b *Backend) lane(q string) *lane {
	if ln, ok := b.lanes.Load(q); ok {
		return ln.(*lane)
	}
	ln := &lane{queue: q, keys: b.keys(q, "", "")}
	ln.Lane = lanes.New(lanes.Config[*pendingComplete, *pendingFetch]{
		MaxCompletions: maxRoundCompletions,
		MaxBytes:       maxRoundBytes,
		Size:           func(p *pendingComplete) int { return len(p.output) },
		MaxFetch:       maxRoundFetch,
		// A worker frees a handler's slot before it completes the job:
		// the completion's round yields once so that the worker's fetch,
		// about to come for the freed slots, rides along instead of
		// leaving in a round of its own (as queuepg's lane does). With 8
		// workers of no-op jobs, half the rounds carried completions
		// only: round trips per job 0.28 -> ~0.18.
		Yield: runtime.Gosched,
		Round: func(cs []*pendingComplete, f *pendingFetch) { b.round(ln, cs, f) },
	})
	got, _ := b.lanes.LoadOrStore(q, ln)
	return got.(*lane)
}

// complete waits for l's completion in its queue's next round. The wait
// is bounded by Timeout without a timer of its own: a round bounds
// its call by Timeout, and when it fails, the requests that waited
// behind it fail with it (see round).
func (b *Backend) complete(ctx context.Context, l *queue.Lease, output []byte) error {
	p := &pendingComplete{ctx: ctx, l: l, output: output, done: make(chan error, 1)}
	b.lane(l.Msg.Queue).Complete(p)
	return lanes.WaitErr(ctx, p.done)
}

// fetchOnce runs one fetch script in r.Queue's next round, waiting as
// complete does.
func (b *Backend) fetchOnce(ctx context.Context, r queue.FetchRequest, order [3]int) fetchReply {
	p := &pendingFetch{ctx: ctx, r: r, order: order, done: make(chan fetchReply, 1)}
	b.lane(r.Queue).Fetch(p)
	rep, err := lanes.Wait(ctx, p.done)
	if err != nil {
		return fetchReply{err: err}
	}
	return rep
}

// round runs one roundScript: the completions cs and the fetch f (nil:
// none), and hands each its result.
func (b *Backend) round(ln *lane, cs []*pendingComplete, f *pendingFetch) {
	args := make([]any, 0, 4+3*len(cs)+fetchFields)
	args = append(args, b.tag(ln.queue)+"job:", b.now(), max(1, b.retention.Milliseconds()), len(cs))
	for _, p := range cs {
		args = append(args, p.l.Msg.ID, p.l.Token, p.output)
	}
	if f != nil {
		args = append(args, f.r.Max, f.r.Lease.Microseconds(), b.retention.Microseconds(), token.New(),
			f.order[0], f.order[1], f.order[2], b.deadRet.Microseconds())
	}
	tctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	v, err := roundScript.Run(tctx, b.c, ln.keys, args...).Result()
	cancel()
	if err != nil {
		slow := errors.Is(err, context.DeadlineExceeded) || tctx.Err() != nil
		fail := func(op string) error {
			if slow {
				return fmt.Errorf("queueredis: %s: Redis did not answer within %v: %w", op, b.timeout, err)
			}
			return fmt.Errorf("queueredis: %s: %w", op, err)
		}
		// The requests that came meanwhile fail too: on a Redis that did
		// not answer within Timeout, they would wait for another Timeout
		// (each caller gets its error within Timeout), and after another
		// error they would most likely meet it again.
		more, fs := ln.TakeAll()
		cs = append(cs, more...)
		fs = append(fs, f)
		for _, p := range cs {
			p.done <- fail("Complete")
		}
		for _, f := range fs {
			if f != nil {
				f.done <- fetchReply{err: fail("Fetch")}
			}
		}
		return
	}
	reply, _ := v.([]any)
	res, _ := at[string](reply, 0)
	for i, p := range cs {
		switch {
		case i < len(res) && res[i] == '1':
			p.done <- nil
		case i < len(res) && res[i] == '0':
			p.done <- queue.ErrLeaseLost
		default:
			p.done <- fmt.Errorf("queueredis: Complete: unexpected reply %v", v)
		}
	}
	if f != nil {
		f.done <- parseFetch(f.r.Queue, reply[min(1, len(reply)):], v)
	}
}

// parseFetch reads fetch's reply r (within the whole reply v, for errors).
func parseFetch(q string, r []any, v any) fetchReply {
	if len(r) < 2 {
		return fetchReply{err: fmt.Errorf("queueredis: Fetch: unexpected reply %v", v)}
	}
	rep := fetchReply{leases: make([]*queue.Lease, 0, len(r)-2)}
	for _, rec := range r[2:] {
		m, tok, until, err := parseRecord(q, rec)
		if err != nil {
			return fetchReply{err: err}
		}
		rep.leases = append(rep.leases, &queue.Lease{Msg: m, Token: tok, Until: until})
	}
	rep.next = -1
	if n, ok := at[int64](r, 0); ok {
		rep.next = n
	}
	rep.lastID, _ = at[string](r, 1)
	return rep
}

// fetchWait is how long a Fetch that found nothing blocks on the wake
// stream: until deadline, at most maxBlock, and no later than the next
// due time the script saw (next µs; -1: none).
func fetchWait(deadline time.Time, next int64) time.Duration {
	block := min(time.Until(deadline), maxBlock)
	if next >= 0 {
		block = min(block, time.Duration(next)*time.Microsecond)
	}
	return max(block, time.Millisecond)
}
