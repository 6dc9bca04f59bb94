package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/pause"
	"github.com/scalekit-go/scalekit/internal/renew"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/retry"
)

// Job is one attempt of a job, as its handler sees it.
type Job[T any] struct {
	ID, Queue, Kind string
	// Args are the job's arguments, decoded from JSON.
	Args T
	// Attempt counts from 1; MaxAttempts is when the job dies.
	Attempt, MaxAttempts int
	EnqueuedAt           time.Time
	// LastError is the previous attempt's error ("" on the first).
	LastError string
	// Snoozes counts the times a handler snoozed this job (see Snooze).
	Snoozes int
	// Metadata is the job's metadata (EnqueueOptions.Metadata and what
	// client middleware added), the handler's own copy; nil when none.
	Metadata map[string]string

	p *reporter // the attempt's progress writer; nil outside a Worker
}

// Progress reports how far the job is, for Client.Job: percent from 0 to
// 100 and a short message (at most MaxProgressMessage bytes). It is one
// small write to the backend, fenced by the lease: a worker that lost
// its lease gets ErrLeaseLost and changes nothing. Writes are
// rate-limited per attempt: a report within 250ms of the last one
// written is dropped (Progress returns nil), except at 100 percent,
// which is always written, so a handler may report from a hot loop.
// Bad arguments return an ErrInvalid error. On a Job not made by a
// Worker (a handler's unit test) it checks its arguments and writes
// nothing.
func (j *Job[T]) Progress(ctx context.Context, percent int, msg string) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("%w: Job.Progress: percent must be 0 to 100, got %d", ErrInvalid, percent)
	}
	if len(msg) > MaxProgressMessage {
		return fmt.Errorf("%w: Job.Progress: the message must be at most %d bytes, got %d", ErrInvalid, MaxProgressMessage, len(msg))
	}
	if j.p == nil {
		return nil
	}
	return j.p.report(ctx, percent, msg)
}

// progressEvery is the least time between two progress writes of one
// attempt (below 100 percent).
const progressEvery = 250 * time.Millisecond

// reporter writes one attempt's progress, at most once per
// progressEvery.
type reporter struct {
	b   Backend
	l   *Lease
	clk clock.Clock

	mu   sync.Mutex
	last time.Time // of the last write; zero before the first
}

func (r *reporter) report(ctx context.Context, percent int, msg string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := clock.Now(r.clk)
	if percent < 100 && !r.last.IsZero() && now.Sub(r.last) < progressEvery {
		return nil
	}
	if err := r.b.Progress(ctx, r.l, percent, msg); err != nil {
		return err
	}
	r.last = now
	return nil
}

// Attempt is one attempt of a job as worker middleware sees it. It is a
// read-only view: a middleware that changes its copy changes nothing for
// the handler (which sees the job as Job[T]).
type Attempt struct {
	ID, Queue, Kind string
	// Attempt counts from 1; MaxAttempts is when the job dies.
	Attempt, MaxAttempts int
	// Snoozes counts the times a handler snoozed the job.
	Snoozes    int
	EnqueuedAt time.Time
	// LastError is the previous attempt's error ("" on the first).
	LastError string

	md  map[string]string // the job's metadata, shared: Metadata copies it
	run *attemptRun       // what the handler needs; nil in an Attempt not made by a Worker
}

// Metadata returns a copy of the job's metadata (nil when it has none),
// for example to take a trace context or a request id out of it.
func (a Attempt) Metadata() map[string]string { return maps.Clone(a.md) }

// AttemptFunc runs one attempt of a job: the step of a Worker that
// worker middleware wraps. The innermost one decodes the job's args and
// runs its handler. Its error is the attempt's outcome, as a handler's
// is: nil completes the job, Snooze(d) snoozes it, Permanent(err) kills
// it, another error retries it. A middleware can put values into ctx
// (a request id for slog, a span) before calling next, time the attempt,
// convert the error next returns, or fail the attempt without running the
// handler by returning an error without calling next. It must pass
// next the Attempt it was given.
type AttemptFunc func(ctx context.Context, a Attempt) error

// attemptRun is what the innermost AttemptFunc needs to run a handler,
// and the output it returned.
type attemptRun struct {
	m   *Message
	rep reporter
	out []byte
	// logCtx is the ctx the handler ran with (what the worker middleware
	// made of the attempt's), kept for its values only: the Worker's log
	// lines about the attempt's outcome are made with it, so a request ID
	// a middleware put there (RequestIDWorker) is on them too.
	logCtx context.Context
}

// Options configure how a Worker consumes one queue
// (WorkerOptions.Queues).
type Options struct {
	// Concurrency is how many jobs of the queue run at once in this
	// worker. Default: 10.
	Concurrency int
	// Lease is the visibility timeout: a job whose worker stops renewing
	// (it died) is redelivered this long after the last renewal. Renewed
	// every Lease/3 while the handler runs. Default: 30s.
	Lease time.Duration
	// Timeout bounds one attempt unless the job sets its own. Default: 1m.
	Timeout time.Duration
	// Limiter, when set, rate-limits the queue's jobs: each needs
	// Limiter.AllowN(LimitKey, 1) before its attempt starts (a
	// ratelimitredis limiter spreads one limit over every worker). A job
	// the limiter refuses is given back at once, its attempt not counted,
	// and the worker leases again after the limiter's RetryAfter: waiting
	// for the limit never uses up attempts or Timeout. Default: none.
	Limiter ratelimit.Limiter
	// LimitKey is the Limiter key. Default: "queue:<name>".
	LimitKey string
}

// WorkerOptions configures NewWorker. Backend and Queues are required.
type WorkerOptions struct {
	// Backend holds the jobs.
	Backend Backend
	// Queues are the queues to consume, by name.
	Queues map[string]Options
	// Backoff spaces a failed job's retries by its attempt number.
	// Default: retry.Exponential{Base: 1s, Cap: 1h} with full jitter.
	Backoff retry.Backoff
	// FetchWait is how long one fetch may wait for a job to arrive.
	// Default: 1s.
	FetchWait time.Duration
	// Clock replaces the system clock (see package clock); nil is the real
	// time. It dates the retries of failed jobs.
	Clock clock.Clock
	// Logger receives failures, lost leases and backend errors. Default:
	// discard.
	Logger *slog.Logger
	// MaxOutput is the largest output (JSON bytes) a HandleResult handler
	// may return: a larger one fails its attempt permanently with
	// ErrOutputTooLarge. Default: DefaultMaxOutput (64 KiB).
	MaxOutput int
	// Middleware wraps every attempt, the first in the slice outermost:
	// Middleware[0] runs first and calls Middleware[1], ..., and the last
	// calls the handler. It runs inside the attempt's Timeout and lease
	// (its ctx is the handler's), and a panic in it is handled like a
	// handler panic: the attempt fails with the panic and its stack. A
	// middleware must be safe for concurrent use. Default: none.
	Middleware []func(next AttemptFunc) AttemptFunc
}

// handler runs one attempt of a job and returns its output (JSON; nil
// for none).
type handler func(ctx context.Context, m *Message, p *reporter) ([]byte, error)

// Worker runs handlers for the jobs of its queues: at-least-once, each job
// leased and its lease renewed while its handler runs. It is safe for
// concurrent use.
type Worker struct {
	o        WorkerOptions
	mu       sync.Mutex
	handlers map[string]handler
	started  bool
	queues   map[string]*workerQueue

	fetchCancel context.CancelFunc
	hardCancel  context.CancelFunc
	hardCtx     context.Context
	fetchers    sync.WaitGroup
	jobs        sync.WaitGroup

	leaseMu  sync.Mutex
	inflight map[*Lease]*leaseState

	attempt AttemptFunc // the middleware around handle
}

type leaseState struct{ released atomic.Bool }

type workerQueue struct {
	name string
	o    Options
	sem  chan struct{}
	st   queueCounters
	// paused is the backend's pause mark as last read, at checked (only
	// the queue's fetch loop reads and writes checked).
	paused  atomic.Bool
	checked time.Time
}

// pauseCheck is how often a Worker asks the backend whether a queue is
// paused: a paused queue stops being fetched within it.
const pauseCheck = time.Second

type queueCounters struct {
	fetched, processed, failed, retried, dead, released, lost, cancelled, panics, limited, snoozed atomic.Uint64
	inflight                                                                                       atomic.Int64
}

// NewWorker returns a Worker, or an error naming the bad option.
func NewWorker(o WorkerOptions) (*Worker, error) {
	if o.Backend == nil {
		return nil, fmt.Errorf("%w: WorkerOptions.Backend is required", ErrInvalid)
	}
	if len(o.Queues) == 0 {
		return nil, fmt.Errorf("%w: WorkerOptions.Queues must name at least one queue", ErrInvalid)
	}
	if o.Backoff == nil {
		o.Backoff = retry.Exponential{Base: time.Second, Cap: time.Hour}
	}
	if o.FetchWait == 0 {
		o.FetchWait = time.Second
	}
	if o.FetchWait < 0 {
		return nil, fmt.Errorf("%w: WorkerOptions.FetchWait must be > 0, got %v", ErrInvalid, o.FetchWait)
	}
	if o.MaxOutput == 0 {
		o.MaxOutput = DefaultMaxOutput
	}
	if o.MaxOutput < 0 {
		return nil, fmt.Errorf("%w: WorkerOptions.MaxOutput must be > 0 bytes (0: the default 64 KiB), got %d", ErrInvalid, o.MaxOutput)
	}
	o.Logger = logx.Or(o.Logger)
	w := &Worker{o: o, handlers: map[string]handler{}, queues: map[string]*workerQueue{}, inflight: map[*Lease]*leaseState{}}
	w.attempt = w.handle
	for i := len(o.Middleware) - 1; i >= 0; i-- {
		if o.Middleware[i] == nil {
			return nil, fmt.Errorf("%w: WorkerOptions.Middleware[%d] is nil", ErrInvalid, i)
		}
		if w.attempt = o.Middleware[i](w.attempt); w.attempt == nil {
			return nil, fmt.Errorf("%w: WorkerOptions.Middleware[%d] returned a nil AttemptFunc", ErrInvalid, i)
		}
	}
	for name, q := range o.Queues {
		if err := checkName("WorkerOptions.Queues key", name); err != nil {
			return nil, err
		}
		if q.Concurrency == 0 {
			q.Concurrency = 10
		}
		if q.Lease == 0 {
			q.Lease = 30 * time.Second
		}
		if q.Timeout == 0 {
			q.Timeout = time.Minute
		}
		if q.LimitKey == "" {
			q.LimitKey = "queue:" + name
		}
		switch {
		case q.Concurrency < 1:
			return nil, fmt.Errorf("%w: WorkerOptions.Queues[%q].Concurrency must be >= 1, got %d", ErrInvalid, name, q.Concurrency)
		case q.Lease < 30*time.Millisecond:
			return nil, fmt.Errorf("%w: WorkerOptions.Queues[%q].Lease must be >= 30ms, got %v", ErrInvalid, name, q.Lease)
		case q.Timeout < 0:
			return nil, fmt.Errorf("%w: WorkerOptions.Queues[%q].Timeout must be > 0, got %v", ErrInvalid, name, q.Timeout)
		}
		w.queues[name] = &workerQueue{name: name, o: q, sem: make(chan struct{}, q.Concurrency)}
	}
	return w, nil
}

// Handle registers fn for jobs of kind; their JSON args are decoded into
// T (a payload that does not decode is a permanent failure). It must be
// called before Start. The jobs have no output; see HandleResult.
func Handle[T any](w *Worker, kind string, fn func(ctx context.Context, j *Job[T]) error) error {
	return register(w, kind, func(ctx context.Context, j *Job[T]) ([]byte, error) { return nil, fn(ctx, j) })
}

// HandleResult is Handle for jobs with a result: fn's R is encoded as JSON
// and stored with the job's completion, in the same backend write, for
// Client.Job (Message.Output). An R that does not encode, or whose JSON is
// longer than WorkerOptions.MaxOutput, fails the attempt permanently (a
// retry would give the same), the latter with ErrOutputTooLarge.
func HandleResult[T, R any](w *Worker, kind string, fn func(ctx context.Context, j *Job[T]) (R, error)) error {
	return register(w, kind, func(ctx context.Context, j *Job[T]) ([]byte, error) {
		r, err := fn(ctx, j)
		if err != nil {
			return nil, err
		}
		out, err := json.Marshal(r)
		if err != nil {
			return nil, Permanent(fmt.Errorf("queue: job %s: its output %T does not encode as JSON: %w", j.ID, r, err))
		}
		if len(out) > w.o.MaxOutput {
			return nil, Permanent(fmt.Errorf("%w: job %s: its output is %d bytes of JSON, more than WorkerOptions.MaxOutput (%d)", ErrOutputTooLarge, j.ID, len(out), w.o.MaxOutput))
		}
		return out, nil
	})
}

// register adds the handler of kind: it decodes the args into a Job[T]
// and runs fn, which returns the output.
func register[T any](w *Worker, kind string, fn func(ctx context.Context, j *Job[T]) ([]byte, error)) error {
	if err := checkName("kind", kind); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return fmt.Errorf("%w: Handle(%q) after Start", ErrInvalid, kind)
	}
	if _, dup := w.handlers[kind]; dup {
		return fmt.Errorf("%w: kind %q already has a handler", ErrInvalid, kind)
	}
	w.handlers[kind] = func(ctx context.Context, m *Message, p *reporter) ([]byte, error) {
		j := &Job[T]{ID: m.ID, Queue: m.Queue, Kind: m.Kind, Attempt: m.Attempt, MaxAttempts: m.MaxAttempts, EnqueuedAt: m.EnqueuedAt, LastError: m.LastError, Snoozes: m.Snoozes, Metadata: m.Metadata, p: p}
		if err := json.Unmarshal(m.Payload, &j.Args); err != nil {
			return nil, Permanent(fmt.Errorf("queue: job %s: args do not decode into %T: %w", m.ID, j.Args, err))
		}
		return fn(ctx, j)
	}
	return nil
}

// Start begins consuming the queues; it returns at once. Handlers run
// with ctx's values; cancelling ctx stops the worker as Close does.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return fmt.Errorf("%w: the worker is already started", ErrInvalid)
	}
	w.started = true
	var fetchCtx context.Context
	fetchCtx, w.fetchCancel = context.WithCancel(ctx)
	w.hardCtx, w.hardCancel = context.WithCancel(ctx)
	for _, q := range w.queues {
		w.fetchers.Add(1)
		go w.fetch(fetchCtx, q)
	}
	return nil
}

// fetch leases jobs for q while there are free slots.
func (w *Worker) fetch(ctx context.Context, q *workerQueue) {
	defer w.fetchers.Done()
	errWait := pause.Growing{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		select { // one free slot at least
		case q.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1
		for free < cap(q.sem) {
			select {
			case q.sem <- struct{}{}:
				free++
				continue
			default:
			}
			break
		}
		paused, fresh := w.checkPaused(ctx, q)
		if paused { // hold no slot while paused; look again when the mark is due
			for range free {
				<-q.sem
			}
			if !pause.For(ctx.Done(), fresh) {
				return
			}
			continue
		}
		g := &growth{sem: q.sem}
		leases, err := w.o.Backend.Fetch(ctx, FetchRequest{Queue: q.name, Max: free, Lease: q.o.Lease, Wait: min(w.o.FetchWait, fresh), Order: fetchOrder(rand.Float64()), Grow: g.grow})
		for i, taken := len(leases), free+g.close(); i < taken; i++ {
			<-q.sem
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.o.Logger.Warn("queue: fetch failed", slog.String("queue", q.name), slog.Any("error", err))
			if !errWait.Wait(ctx.Done()) {
				return
			}
			continue
		}
		errWait.Reset()
		q.st.fetched.Add(uint64(len(leases)))
		var wait time.Duration
		if q.o.Limiter != nil {
			leases, wait = w.admit(ctx, q, leases)
		}
		for _, l := range leases {
			w.jobs.Add(1)
			ls := &leaseState{}
			w.leaseMu.Lock()
			w.inflight[l] = ls
			w.leaseMu.Unlock()
			go w.run(q, l, ls)
		}
		if wait > 0 && !pause.For(ctx.Done(), wait) { // the rate limit is reached: wait, holding no lease
			return
		}
	}
}

// growth is a fetch's FetchRequest.Grow: it takes the slots of q.sem
// that are free when the backend asks, until the fetch returns (close).
// A backend that called Grow late (its caller gone) gets 0, so no slot
// is taken that the fetch loop does not give back.
type growth struct {
	sem    chan struct{}
	mu     sync.Mutex
	n      int
	closed bool
}

func (g *growth) grow(n int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := 0
	for !g.closed && k < n {
		select {
		case g.sem <- struct{}{}:
			k++
			continue
		default:
		}
		break
	}
	g.n += k
	return k
}

// close ends the growth and returns the slots it took.
func (g *growth) close() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return g.n
}

// checkPaused reports whether q is paused, asking the backend when the
// last answer is pauseCheck old, and how long that answer stays fresh: a
// fetch waits no longer, so a queue paused anywhere in the fleet stops
// being fetched within pauseCheck. A failed check keeps the last answer
// (the fetch that follows most likely fails too, and is retried).
func (w *Worker) checkPaused(ctx context.Context, q *workerQueue) (bool, time.Duration) {
	if q.checked.IsZero() || time.Since(q.checked) >= pauseCheck {
		p, err := w.o.Backend.Paused(ctx, q.name)
		switch {
		case err == nil:
			if q.paused.Swap(p) != p {
				w.o.Logger.Info("queue: paused state changed", slog.String("queue", q.name), slog.Bool("paused", p))
			}
		case ctx.Err() == nil:
			w.o.Logger.Warn("queue: cannot read whether the queue is paused", slog.String("queue", q.name), slog.Any("error", err))
		}
		q.checked = time.Now()
	}
	return q.paused.Load(), max(pauseCheck-time.Since(q.checked), time.Millisecond)
}

// admit asks q's Limiter for each leased job before its attempt starts:
// the admitted jobs run, the others are released at once (the attempt
// not counted, no Timeout running) and the fetcher pauses for the
// limiter's RetryAfter before leasing again, so a strict limit over a
// backlog delays jobs instead of failing attempts that never ran.
func (w *Worker) admit(ctx context.Context, q *workerQueue, leases []*Lease) ([]*Lease, time.Duration) {
	var pause time.Duration
	n := 0
	for _, l := range leases {
		if pause == 0 {
			d, err := q.o.Limiter.AllowN(ctx, q.o.LimitKey, 1)
			switch {
			case err != nil:
				if ctx.Err() == nil { // not merely stopping
					w.o.Logger.Warn("queue: rate limiter failed; jobs wait", slog.String("queue", q.name), slog.Any("error", err))
				}
				pause = time.Second
			case !d.Allowed:
				pause = max(d.RetryAfter, time.Millisecond)
			default:
				leases[n] = l
				n++
				continue
			}
		}
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := w.o.Backend.Release(bg, l, time.Time{}); err != nil {
			w.o.Logger.Warn("queue: cannot give back a rate-limited job; it is redelivered after its lease", slog.String("queue", q.name), slog.String("id", l.Msg.ID), slog.Any("error", err))
		}
		cancel()
		q.st.limited.Add(1)
		<-q.sem
	}
	return leases[:n], pause
}

// run executes one leased job and records its outcome.
func (w *Worker) run(q *workerQueue, l *Lease, ls *leaseState) {
	q.st.inflight.Add(1)
	slot := true
	freeSlot := func() { // the handler is done: its slot goes to the next job
		if slot {
			slot = false
			q.st.inflight.Add(-1)
			<-q.sem
		}
	}
	defer func() {
		freeSlot()
		w.leaseMu.Lock()
		delete(w.inflight, l)
		w.leaseMu.Unlock()
		w.jobs.Done()
	}()
	m := l.Msg
	timeout := q.o.Timeout
	if m.Timeout > 0 {
		timeout = m.Timeout
	}
	ctx, cancel := context.WithTimeout(w.hardCtx, timeout)
	defer cancel()
	var lost atomic.Bool
	hb := w.heartbeat(ctx, q, l, &lost, cancel)
	out, lctx, err := w.call(ctx, q, l)
	hb.Stop()
	freeSlot() // recording the outcome does not hold the slot
	bg, cancelBG := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancelBG()
	var snooze *snoozeError
	switch {
	case ls.released.Load() || lost.Load():
		return // given back at shutdown, or taken by another worker
	case errors.As(err, &snooze):
		// Snoozed (even while stopping): due later, the attempt not counted.
		until := clock.Now(w.o.Clock).Add(snooze.d)
		if rerr := w.o.Backend.Release(bg, l, until); rerr != nil {
			w.ackFailed(lctx, q, m, rerr)
			return
		}
		q.st.snoozed.Add(1)
		w.o.Logger.LogAttrs(lctx, slog.LevelInfo, "queue: job snoozed", slog.String("queue", q.name), slog.String("id", m.ID), slog.Int("attempt", m.Attempt), slog.Int("snoozes", m.Snoozes+1), slog.Time("run_at", until))
		return
	case w.hardCtx.Err() != nil && err != nil:
		// Stopping: the attempt did not finish; give the job back.
		if rerr := w.o.Backend.Release(bg, l, time.Time{}); rerr == nil {
			q.st.released.Add(1)
		}
		return
	case err == nil:
		if cerr := w.o.Backend.Complete(bg, l, out); cerr != nil {
			w.ackFailed(lctx, q, m, cerr)
			return
		}
		q.st.processed.Add(1)
		return
	}
	q.st.failed.Add(1)
	dead := IsPermanent(err) || m.Attempt >= m.MaxAttempts
	retryAt := clock.Now(w.o.Clock).Add(w.o.Backoff.Next(m.Attempt, 0, rand.Float64()))
	if ferr := w.o.Backend.Fail(bg, l, err.Error(), retryAt, dead); ferr != nil {
		w.ackFailed(lctx, q, m, ferr)
		return
	}
	if dead {
		q.st.dead.Add(1)
		w.o.Logger.LogAttrs(lctx, slog.LevelWarn, "queue: job dead", slog.String("queue", q.name), slog.String("id", m.ID), slog.String("kind", m.Kind), slog.Int("attempt", m.Attempt), slog.Any("error", err))
	} else {
		q.st.retried.Add(1)
		w.o.Logger.LogAttrs(lctx, slog.LevelInfo, "queue: job failed, will retry", slog.String("queue", q.name), slog.String("id", m.ID), slog.Int("attempt", m.Attempt), slog.Time("retry_at", retryAt), slog.Any("error", err))
	}
}

func (w *Worker) ackFailed(ctx context.Context, q *workerQueue, m *Message, err error) {
	if errors.Is(err, ErrLeaseLost) {
		if w.leaseGone(q, m) {
			w.o.Logger.LogAttrs(ctx, slog.LevelInfo, "queue: job cancelled or deleted before its outcome was recorded", slog.String("queue", q.name), slog.String("id", m.ID))
			return
		}
		w.o.Logger.LogAttrs(ctx, slog.LevelWarn, "queue: lease lost before the outcome was recorded; the job runs again elsewhere", slog.String("queue", q.name), slog.String("id", m.ID))
		return
	}
	w.o.Logger.LogAttrs(ctx, slog.LevelError, "queue: cannot record a job's outcome; it is redelivered after its lease", slog.String("queue", q.name), slog.String("id", m.ID), slog.Any("error", err))
}

// call runs one attempt of l's job through the worker middleware,
// turning a panic (in the handler or a middleware) into an error with
// its stack.
//
// It returns the handler's output and error, and the ctx to log the
// outcome with: the handler's (see attemptRun.logCtx), or ctx when the
// handler did not run.
func (w *Worker) call(ctx context.Context, q *workerQueue, l *Lease) (out []byte, logCtx context.Context, err error) {
	m := l.Msg
	r := &attemptRun{m: m, rep: reporter{b: w.o.Backend, l: l, clk: w.o.Clock}, logCtx: ctx}
	defer func() {
		if p := recover(); p != nil {
			q.st.panics.Add(1)
			who := "handler"
			if len(w.o.Middleware) > 0 {
				who = "handler or worker middleware"
			}
			out, logCtx, err = nil, r.logCtx, fmt.Errorf("queue: %s for %q panicked: %v\n%s", who, m.Kind, p, debug.Stack())
		}
	}()
	a := Attempt{ID: m.ID, Queue: m.Queue, Kind: m.Kind, Attempt: m.Attempt, MaxAttempts: m.MaxAttempts, Snoozes: m.Snoozes,
		EnqueuedAt: m.EnqueuedAt, LastError: m.LastError, md: m.Metadata, run: r}
	err = w.attempt(ctx, a)
	return r.out, r.logCtx, err
}

// handle is the innermost AttemptFunc: it runs the handler of the job's
// kind and keeps its output.
func (w *Worker) handle(ctx context.Context, a Attempt) error {
	r := a.run
	if r == nil {
		return fmt.Errorf("%w: a worker middleware called next with an Attempt the Worker did not make (pass on the one it got)", ErrInvalid)
	}
	w.mu.Lock()
	h := w.handlers[r.m.Kind]
	w.mu.Unlock()
	if h == nil {
		return fmt.Errorf("queue: no handler for kind %q in this worker", r.m.Kind)
	}
	r.logCtx = ctx
	out, err := h(ctx, r.m, &r.rep)
	r.out = out
	return err
}

// heartbeat renews l every Lease/3 until stopped or the handler's ctx
// ends; if the lease is lost it cancels the handler's ctx.
func (w *Worker) heartbeat(ctx context.Context, q *workerQueue, l *Lease, lost *atomic.Bool, cancel context.CancelFunc) *renew.Renewer {
	return renew.Start(q.o.Lease/3, func() bool {
		if ctx.Err() != nil {
			return false // past its timeout (or stopping): a handler that ignores its ctx keeps no lease
		}
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), q.o.Lease/3)
		err := w.o.Backend.Extend(rctx, l, q.o.Lease)
		rcancel()
		if errors.Is(err, ErrLeaseLost) {
			lost.Store(true)
			cancel()
			if w.leaseGone(q, l.Msg) {
				w.o.Logger.LogAttrs(ctx, slog.LevelInfo, "queue: job cancelled or deleted while running; its handler is cancelled", slog.String("queue", q.name), slog.String("id", l.Msg.ID))
			} else {
				w.o.Logger.LogAttrs(ctx, slog.LevelWarn, "queue: lease lost while running; its handler is cancelled", slog.String("queue", q.name), slog.String("id", l.Msg.ID))
			}
			return false
		}
		return true
	})
}

// leaseGone counts a lease the backend refused (ErrLeaseLost) and
// reports whether the job was cancelled or deleted: it asks the backend
// for the job (one read, on this rare path only), counts Cancelled when
// it is cancelled or gone, and Lost otherwise (its lease ran out and
// another worker may hold it), or when the backend cannot tell.
func (w *Worker) leaseGone(q *workerQueue, m *Message) bool {
	ctx, cancel := context.WithTimeout(context.Background(), max(q.o.Lease/3, time.Second))
	defer cancel()
	cur, err := w.o.Backend.Job(ctx, q.name, m.ID)
	if errors.Is(err, ErrNotFound) || (err == nil && cur.State == Cancelled) {
		q.st.cancelled.Add(1)
		return true
	}
	q.st.lost.Add(1)
	return false
}

// Shutdown stops fetching, lets the jobs in flight finish until ctx ends,
// then gives the rest back to the backend (released, due at once, the
// attempt not counted) and cancels their handlers. It returns ctx.Err()
// if jobs had to be released.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	started := w.started
	w.mu.Unlock()
	if !started {
		return nil
	}
	w.fetchCancel()
	w.fetchers.Wait()
	finished := make(chan struct{})
	go func() {
		w.jobs.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		w.hardCancel()
		return nil
	case <-ctx.Done():
	}
	w.releaseAll()
	w.hardCancel()
	<-finished
	return ctx.Err()
}

// Close stops at once: no more fetches, running handlers cancelled, their
// jobs released to the backend.
func (w *Worker) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := w.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (w *Worker) releaseAll() {
	w.leaseMu.Lock()
	held := make(map[*Lease]*leaseState, len(w.inflight))
	for l, s := range w.inflight {
		held[l] = s
	}
	w.leaseMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for l, s := range held {
		if err := w.o.Backend.Release(ctx, l, time.Time{}); err == nil {
			s.released.Store(true)
			w.queues[l.Msg.Queue].st.released.Add(1)
		}
	}
}

// Stats is a snapshot of one queue's counters in a Worker.
type Stats struct {
	Queue string
	// Fetched counts leased jobs; Processed those completed; Failed the
	// failed attempts, of which Retried were scheduled again and Dead
	// went to the dead letters.
	Fetched, Processed, Failed, Retried, Dead uint64
	// Released counts jobs given back at shutdown; Lost the leases lost
	// to expiry (another worker may run the job); Panics the handler
	// panics.
	Released, Lost, Panics uint64
	// Cancelled counts jobs stopped while they ran because they were
	// cancelled (Client.Cancel) or deleted (Client.Delete): their handler's
	// ctx was cancelled, or their outcome refused, and nothing recorded.
	Cancelled uint64
	// Limited counts jobs given back unrun because the queue's Limiter
	// refused them (they run later; no attempt is counted).
	Limited uint64
	// Snoozed counts jobs whose handler returned Snooze: given back to
	// run later, no attempt counted.
	Snoozed uint64
	// InFlight is how many jobs run now.
	InFlight int64
	// Paused is whether the queue was paused (Client.Pause) when the
	// worker last asked the backend, at most a second ago: it fetches
	// nothing from a paused queue.
	Paused bool
}

// Stats returns a snapshot per queue, sorted by name.
func (w *Worker) Stats() []Stats {
	out := make([]Stats, 0, len(w.queues))
	for _, q := range w.queues {
		s := &q.st
		out = append(out, Stats{Queue: q.name, Fetched: s.fetched.Load(), Processed: s.processed.Load(), Failed: s.failed.Load(),
			Retried: s.retried.Load(), Dead: s.dead.Load(), Released: s.released.Load(), Lost: s.lost.Load(), Cancelled: s.cancelled.Load(), Panics: s.panics.Load(), Limited: s.limited.Load(), Snoozed: s.snoozed.Load(), InFlight: s.inflight.Load(), Paused: q.paused.Load()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Queue < out[j].Queue })
	return out
}
