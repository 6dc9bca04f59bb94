package queuepg

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	lanes "github.com/scalekit-go/scalekit/internal/lane"
	"github.com/scalekit-go/scalekit/queue"
)

// The completions and fetches of one queue from one Backend go through
// its lane: one round trip at a time (round: a pgx.Batch, its statements
// pipelined in one implicit transaction) carries every completion waiting
// (one completeSQL, up to maxRoundCompletions) and one fetch (fetchSQL),
// grown (FetchRequest.Grow) just before it leaves to the worker's slots
// that are free by then. A lane with nothing in flight sends a request at
// once, so an idle queue pays no delay; requests that come while a round
// is in flight wait for it and leave together in the next one, so the
// batches grow with the load and the completions ride on the fetches.
// A drain with completions but no fetch waiting yields once before its
// round (runtime.Gosched, no timer): a Worker frees a handler's slot
// before it completes the job, so its fetch loop is about to ask, and the
// completions then ride on that fetch. Fencing is per job as before:
// completeSQL completes a lease only while it is held.

// maxRoundCompletions bounds the completions of one round, maxRoundFetch
// what FetchRequest.Grow may add to a fetch.
const (
	maxRoundCompletions = 1000
	maxRoundFetch       = 256
)

// lane is a queue's batch (see above).
type lane = lanes.Lane[*pendingComplete, *pendingFetch]

// pendingComplete is one Complete waiting for its round.
type pendingComplete struct {
	ctx    context.Context
	l      *queue.Lease
	output []byte
	done   chan error // buffered: a round never blocks on a caller that left
}

func (p *pendingComplete) Context() context.Context { return p.ctx }
func (p *pendingComplete) Drop(err error)           { p.done <- err }

// pendingFetch is one fetch waiting for its round. The round grows r.Max
// in place (r is the Fetch's own request, so a grown fetch that found
// nothing keeps its slots for its next attempt).
type pendingFetch struct {
	ctx  context.Context
	r    *queue.FetchRequest
	done chan fetchReply // buffered
}

func (p *pendingFetch) Context() context.Context          { return p.ctx }
func (p *pendingFetch) Drop(err error)                    { p.done <- fetchReply{err: err} }
func (p *pendingFetch) FetchRequest() *queue.FetchRequest { return p.r }

type fetchReply struct {
	leases []*queue.Lease
	err    error
}

// lane returns queue q's lane.
func (b *Backend) lane(q string) *lane {
	if ln, ok := b.lanes.Load(q); ok {
		return ln.(*lane)
	}
	ln, _ := b.lanes.LoadOrStore(q, lanes.New(lanes.Config[*pendingComplete, *pendingFetch]{
		MaxCompletions: maxRoundCompletions,
		MaxFetch:       maxRoundFetch,
		// A worker frees a handler's slot before it completes the job, so
		// its fetch loop is most likely about to ask: let it run once, so
		// the completions ride on its fetch.
		Yield: runtime.Gosched,
		Round: b.round,
	}))
	return ln.(*lane)
}

// complete waits for l's completion in its queue's next round, or for
// ctx to end.
func (b *Backend) complete(ctx context.Context, l *queue.Lease, output []byte) error {
	p := &pendingComplete{ctx: ctx, l: l, output: output, done: make(chan error, 1)}
	b.lane(l.Msg.Queue).Complete(p)
	return lanes.WaitErr(ctx, p.done)
}

// fetch leases jobs for r in r.Queue's next round, waiting as complete
// does.
func (b *Backend) fetch(ctx context.Context, r *queue.FetchRequest) ([]*queue.Lease, error) {
	p := &pendingFetch{ctx: ctx, r: r, done: make(chan fetchReply, 1)}
	b.lane(r.Queue).Fetch(p)
	rep, err := lanes.Wait(ctx, p.done)
	if err != nil {
		return nil, err
	}
	return rep.leases, rep.err
}

// roundCtx is a round's context: cancelled once every caller in it has
// gone (their ctxs ended), so a round on a database that does not answer
// lasts as long as somebody waits for it, as the callers' own statements
// did. Its values are the first caller's.
func roundCtx(cs []*pendingComplete, f *pendingFetch) (context.Context, context.CancelFunc) {
	callers := make([]context.Context, 0, len(cs)+1)
	for _, p := range cs {
		callers = append(callers, p.ctx)
	}
	if f != nil {
		callers = append(callers, f.ctx)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(callers[0]))
	left := len(callers)
	var mu sync.Mutex
	stops := make([]func() bool, 0, len(callers))
	for _, c := range callers {
		stops = append(stops, context.AfterFunc(c, func() {
			mu.Lock()
			left--
			gone := left == 0
			mu.Unlock()
			if gone {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// round sends the completions cs (completeSQL) and the fetch f (nil:
// none; fetchSQL) in one batch and hands each its result. The batch runs
// in one implicit transaction: when a statement fails, nothing of the
// round took effect and every request in it gets the error.
func (b *Backend) round(cs []*pendingComplete, f *pendingFetch) {
	ctx, cancel := roundCtx(cs, f)
	defer cancel()
	var batch pgx.Batch
	if len(cs) > 0 {
		qs, ids, toks, outs := make([]string, len(cs)), make([]string, len(cs)), make([]string, len(cs)), make([][]byte, len(cs))
		for i, p := range cs {
			qs[i], ids[i], toks[i] = p.l.Msg.Queue, p.l.Msg.ID, p.l.Token
			if len(p.output) > 0 { // NULL for none
				outs[i] = p.output
			}
		}
		batch.Queue(b.sql().complete, b.now(), qs, ids, toks, outs)
	}
	var floor *fetchFloor // nil: from the bottom of every range
	if f != nil {
		if !f.r.Strict {
			floor = b.floor(f.r.Queue)
		}
		args := append([]any{b.now(), f.r.Queue, f.r.Max, f.r.Lease.Milliseconds(),
			int16(f.r.Order[0]), int16(f.r.Order[1]), int16(f.r.Order[2])}, floor.args(f.r.Order)...)
		batch.Queue(b.sql().fetch, args...)
	}
	br := b.pool.SendBatch(ctx, &batch)
	done, err := b.readComplete(br, cs)
	var leases []*queue.Lease
	var ranks []int
	if err == nil && f != nil {
		leases, ranks, err = readFetch(br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && f != nil {
		floor.advance(leases, ranks) // the round committed
		sortFetched(leases, f.r)
	}
	if err != nil {
		for _, p := range cs {
			p.done <- fmt.Errorf("queuepg: Complete: %w", err)
		}
		if f != nil {
			f.done <- fetchReply{err: err}
		}
		return
	}
	for i, p := range cs {
		if done[i] {
			p.done <- nil
		} else {
			p.done <- queue.ErrLeaseLost
		}
	}
	if f != nil {
		f.done <- fetchReply{leases: leases}
	}
}

// readComplete reads completeSQL's rows in br (none when cs is empty):
// which of cs it completed.
func (b *Backend) readComplete(br pgx.BatchResults, cs []*pendingComplete) ([]bool, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	at := make(map[[2]string]int, len(cs)) // (id, token) -> index; one queue
	for i, p := range cs {
		at[[2]string{p.l.Msg.ID, p.l.Token}] = i
	}
	done := make([]bool, len(cs))
	for rows.Next() {
		var q, id, tok string
		if err := rows.Scan(&q, &id, &tok); err != nil {
			return nil, err
		}
		if i, ok := at[[2]string{id, tok}]; ok {
			done[i] = true
		}
	}
	return done, rows.Err()
}

// readFetch reads fetchSQL's leases in br, with the rank of the range
// each came from.
func readFetch(br pgx.BatchResults) ([]*queue.Lease, []int, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var out []*queue.Lease
	var ranks []int
	for rows.Next() {
		var rank int32
		m, tok, until, err := scanJob(rankedRow{rows, &rank})
		if err != nil {
			return nil, nil, err
		}
		out = append(out, &queue.Lease{Msg: m, Token: tok, Until: until})
		ranks = append(ranks, int(rank))
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return out, ranks, nil
}

// rankedRow scans a fetchSQL row: the job columns, then the rank.
type rankedRow struct {
	pgx.Row
	rank *int32
}

func (r rankedRow) Scan(dest ...any) error { return r.Row.Scan(append(dest, r.rank)...) }

// sortFetched puts the leases of a fetch in the fetch order of r
// (RETURNING does not keep the ORDER BY).
func sortFetched(out []*queue.Lease, r *queue.FetchRequest) {
	rank := map[queue.Priority]int{r.Order[0]: 0, r.Order[1]: 1, r.Order[2]: 2}
	slices.SortFunc(out, func(a, b *queue.Lease) int {
		return cmp.Or(cmp.Compare(rank[a.Msg.Priority], rank[b.Msg.Priority]), a.Msg.RunAt.Compare(b.Msg.RunAt), strings.Compare(a.Msg.ID, b.Msg.ID))
	})
}
