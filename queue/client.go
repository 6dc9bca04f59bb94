package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/queuex"
)

// EnqueueOptions are per-job options; the zero value runs the job now at
// Default priority with the default attempts.
type EnqueueOptions struct {
	// Delay runs the job this long from now; RunAt at that time (RunAt
	// wins when both are set).
	Delay time.Duration
	RunAt time.Time
	// Priority within the queue. Default: Default.
	Priority Priority
	// MaxAttempts is how many attempts the job gets before it dies.
	// Default: 10.
	MaxAttempts int
	// Timeout bounds one attempt. Default: the worker's queue setting.
	Timeout time.Duration
	// UniqueKey makes the job unique for UniqueFor (default 1h): while a
	// job holds the key, Enqueue returns a *DuplicateError naming it
	// instead of adding a second one. The time-based hold outlives the job
	// when it finishes sooner; see UniqueWhileActive.
	UniqueKey string
	UniqueFor time.Duration
	// UniqueWhileActive holds UniqueKey while the job is not finished
	// instead of for UniqueFor: from the enqueue until the job is done or
	// dead, however long that takes (through its retries), and no longer,
	// so a periodic job can be enqueued again as soon as the last one
	// finished. It needs UniqueKey and excludes UniqueFor. A requeued
	// dead job does not take its key again. Default: false.
	UniqueWhileActive bool
	// ID is the job's id. Default: a new time-ordered id. Set it to make
	// Enqueue safe to retry: enqueueing again with the same ID, kind and
	// args (after a timeout whose enqueue had in fact landed) succeeds and
	// returns that id without adding a second job; the same ID with other
	// kind or args is ErrInvalid.
	ID string
	// Metadata travels with the job to its handler (Job.Metadata) and
	// worker middleware (Attempt.Metadata): a trace context, a request
	// id, a tenant id. At most MaxMetadata pairs, keys of 1 to
	// MaxMetadataKey bytes, values of at most MaxMetadataValue bytes,
	// valid UTF-8; anything else is an ErrInvalid error naming the key,
	// and nothing is stored. The map is copied. Default: none.
	Metadata map[string]string
}

// EnqueueFunc stores a job: the step of Client.Enqueue that client
// middleware wraps. m is the job NewMessage built (its ID, queue,
// kind, payload, times and options set); a middleware may read and
// change it before calling next, above all m.Metadata (nil when the job
// has none: assign a new map to add to it; the map is the job's own
// copy), for example to add a trace context or a request id taken from
// ctx. A middleware refuses an enqueue by returning an error without
// calling next: nothing is stored and Enqueue returns that error.
// Metadata is checked against its bounds after the middleware ran.
type EnqueueFunc func(ctx context.Context, m *Message) error

// ClientOptions configures NewClient.
type ClientOptions struct {
	// Backend stores the jobs; required.
	Backend Backend
	// Clock replaces the system clock (see package clock); nil is the real
	// time. It dates the jobs it enqueues (run-at, unique holds).
	Clock clock.Clock
	// Middleware wraps every Enqueue, the first in the slice outermost:
	// Middleware[0] runs first and calls Middleware[1], ..., and the last
	// calls the backend. A middleware must be safe for concurrent use.
	// EnqueueMany passes each job of the batch through it (next returns
	// nil once the job is accepted into the batch, which is stored after
	// every job passed). Publish passes each event through it once (Queue
	// empty, Kind the topic), before the backend copies it to every
	// subscriber. It does not run for an enqueue made without the
	// Client (queuepg's EnqueueTx, EnqueueManyTx and PublishTx).
	// Default: none.
	Middleware []func(next EnqueueFunc) EnqueueFunc
}

// Client enqueues and inspects jobs. It is safe for concurrent use.
type Client struct {
	b       Backend
	clk     clock.Clock
	enqueue EnqueueFunc // the middleware around store
	mw      []func(next EnqueueFunc) EnqueueFunc
}

// NewClient returns a Client, or an error naming the bad option.
func NewClient(o ClientOptions) (*Client, error) {
	if o.Backend == nil {
		return nil, fmt.Errorf("%w: ClientOptions.Backend is required", ErrInvalid)
	}
	c := &Client{b: o.Backend, clk: o.Clock, mw: slices.Clone(o.Middleware)}
	c.enqueue = c.store
	for i := len(o.Middleware) - 1; i >= 0; i-- {
		if o.Middleware[i] == nil {
			return nil, fmt.Errorf("%w: ClientOptions.Middleware[%d] is nil", ErrInvalid, i)
		}
		if c.enqueue = o.Middleware[i](c.enqueue); c.enqueue == nil {
			return nil, fmt.Errorf("%w: ClientOptions.Middleware[%d] returned a nil EnqueueFunc", ErrInvalid, i)
		}
	}
	return c, nil
}

// store is the innermost EnqueueFunc: it checks the metadata the
// middleware left and hands m to the backend.
func (c *Client) store(ctx context.Context, m *Message) error {
	if err := c.check(m); err != nil {
		return err
	}
	return c.b.Enqueue(ctx, m)
}

// check checks the metadata the client middleware left on m (nil when
// empty).
func (c *Client) check(m *Message) error {
	if err := checkMetadata("Message.Metadata (after the client middleware)", m.Metadata); err != nil {
		return err
	}
	if len(m.Metadata) == 0 {
		m.Metadata = nil
	}
	return nil
}

// checkName validates a queue name or job kind: 1 to 100 letters, digits
// and _ . : -.
func checkName(what, name string) error { return queuex.CheckName(ErrInvalid, what, name) }

// NewMessage builds the stored form of a job, validating everything: it
// is what Client.Enqueue passes to Backend.Enqueue, and what a backend's
// own enqueue inside the caller's transaction (queuepg.EnqueueTx) builds,
// with now read from its clock.
func NewMessage(now time.Time, queue, kind string, args any, o EnqueueOptions) (*Message, error) {
	if err := checkName("queue", queue); err != nil {
		return nil, err
	}
	if err := checkName("kind", kind); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("%w: the job's args cannot be encoded as JSON: %v", ErrInvalid, err)
	}
	switch {
	case o.Delay < 0:
		return nil, fmt.Errorf("%w: EnqueueOptions.Delay must be >= 0, got %v", ErrInvalid, o.Delay)
	case o.Priority < Default || o.Priority > Low:
		return nil, fmt.Errorf("%w: EnqueueOptions.Priority must be High, Default or Low, got %d", ErrInvalid, o.Priority)
	case o.MaxAttempts < 0:
		return nil, fmt.Errorf("%w: EnqueueOptions.MaxAttempts must be >= 1 (0: the default 10), got %d", ErrInvalid, o.MaxAttempts)
	case o.Timeout < 0:
		return nil, fmt.Errorf("%w: EnqueueOptions.Timeout must be >= 0, got %v", ErrInvalid, o.Timeout)
	case o.UniqueFor < 0:
		return nil, fmt.Errorf("%w: EnqueueOptions.UniqueFor must be >= 0, got %v", ErrInvalid, o.UniqueFor)
	case o.UniqueWhileActive && o.UniqueKey == "":
		return nil, fmt.Errorf("%w: EnqueueOptions.UniqueWhileActive needs a UniqueKey", ErrInvalid)
	case o.UniqueWhileActive && o.UniqueFor != 0:
		return nil, fmt.Errorf("%w: EnqueueOptions.UniqueFor must be 0 with UniqueWhileActive (the key is held until the job finishes), got %v", ErrInvalid, o.UniqueFor)
	case o.ID != "" && !queuex.ValidName(o.ID):
		return nil, fmt.Errorf("%w: EnqueueOptions.ID %q must be 1 to 100 letters, digits, '_', '.', ':' or '-'", ErrInvalid, o.ID)
	}
	if err := checkMetadata("EnqueueOptions.Metadata", o.Metadata); err != nil {
		return nil, err
	}
	m := &Message{ID: o.ID, Queue: queue, Kind: kind, Payload: payload, Priority: o.Priority, State: Pending,
		MaxAttempts: o.MaxAttempts, RunAt: now.Add(o.Delay), Timeout: o.Timeout, EnqueuedAt: now}
	if len(o.Metadata) > 0 {
		m.Metadata = maps.Clone(o.Metadata)
	}
	if m.ID == "" {
		m.ID = newID()
	}
	if m.MaxAttempts == 0 {
		m.MaxAttempts = 10
	}
	if !o.RunAt.IsZero() {
		m.RunAt = o.RunAt
	}
	if m.RunAt.After(now) {
		m.State = Scheduled
	}
	if o.UniqueWhileActive {
		m.UniqueKey, m.UniqueWhileActive = o.UniqueKey, true
	} else if o.UniqueKey != "" {
		if o.UniqueFor == 0 {
			o.UniqueFor = time.Hour
		}
		m.UniqueKey, m.UniqueUntil = o.UniqueKey, now.Add(o.UniqueFor)
	}
	return m, nil
}

// Enqueue adds a job of kind with args (encoded as JSON) to queue and
// returns its id. With a UniqueKey already held it returns the holder's id
// and a *DuplicateError (errors.Is ErrDuplicate). The job passes through
// ClientOptions.Middleware on its way to the backend.
func (c *Client) Enqueue(ctx context.Context, queue, kind string, args any, o EnqueueOptions) (string, error) {
	m, err := NewMessage(clock.Now(c.clk), queue, kind, args, o)
	if err != nil {
		return "", err
	}
	if err := c.enqueue(ctx, m); err != nil {
		if d, ok := err.(*DuplicateError); ok {
			return d.ID, err
		}
		return "", err
	}
	return m.ID, nil
}

// EnqueueRequest is one job of Client.EnqueueMany: what Enqueue takes.
type EnqueueRequest struct {
	Queue, Kind string
	// Args are the job's arguments, encoded as JSON.
	Args    any
	Options EnqueueOptions
}

// EnqueueResult is the outcome of one job of an EnqueueMany: its id, or
// with a *DuplicateError (errors.Is ErrDuplicate) the id of the job
// holding its unique key; Err is ErrInvalid when its EnqueueOptions.ID
// is used by another job.
type EnqueueResult struct {
	ID  string
	Err error
}

// NewMessages is NewMessage for a batch: it builds every job's stored
// form, or returns an error naming the first bad job's index and field.
// Two jobs of the batch with the same queue and EnqueueOptions.ID are an
// error too. It is what Client.EnqueueMany passes to Backend.EnqueueMany.
func NewMessages(now time.Time, jobs []EnqueueRequest) ([]*Message, error) {
	ms := make([]*Message, len(jobs))
	var ids map[[2]string]int // explicit ids: the index that has each
	for i, r := range jobs {
		m, err := NewMessage(now, r.Queue, r.Kind, r.Args, r.Options)
		if err != nil {
			return nil, fmt.Errorf("queue: EnqueueMany: jobs[%d]: %w", i, err)
		}
		if r.Options.ID != "" {
			if ids == nil {
				ids = map[[2]string]int{}
			}
			k := [2]string{r.Queue, r.Options.ID}
			if j, ok := ids[k]; ok {
				return nil, fmt.Errorf("%w: queue: EnqueueMany: jobs[%d].Options.ID %q is jobs[%d]'s too (queue %q)", ErrInvalid, i, r.Options.ID, j, r.Queue)
			}
			ids[k] = i
		}
		ms[i] = m
	}
	return ms, nil
}

// EnqueueMany adds jobs in one round trip to the backend (queueredis
// takes one per queue of the batch) and returns one result per job, in
// order: its id, or the holder's id and a *DuplicateError when its
// unique key is held, by an existing job or an earlier job of the batch.
// A duplicate never fails the rest of the batch. Invalid jobs (a bad
// name or option, args that do not encode) are reported before anything
// is sent, naming the job's index and field, and nothing is stored. With
// an error from the backend, some jobs may be stored: set
// EnqueueOptions.ID on each to make the batch safe to retry.
func (c *Client) EnqueueMany(ctx context.Context, jobs ...EnqueueRequest) ([]EnqueueResult, error) {
	ms, err := NewMessages(clock.Now(c.clk), jobs)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, nil
	}
	if len(c.mw) > 0 {
		if ms, err = c.admit(ctx, ms); err != nil {
			return nil, err
		}
	}
	return c.b.EnqueueMany(ctx, ms)
}

// admit passes each job of a batch through the client middleware, in
// order, and returns the messages their innermost next received. That
// next stores nothing: it checks the metadata and returns nil, so a
// middleware sees its job accepted into the batch, which is stored once
// every job passed. A middleware that refuses a job (or leaves metadata
// out of bounds) fails the whole batch, the job's index named, before
// anything is stored.
func (c *Client) admit(ctx context.Context, ms []*Message) ([]*Message, error) {
	out := make([]*Message, len(ms))
	var i int
	var f EnqueueFunc = func(_ context.Context, m *Message) error {
		if err := c.check(m); err != nil {
			return err
		}
		out[i] = m
		return nil
	}
	for k := len(c.mw) - 1; k >= 0; k-- {
		f = c.mw[k](f)
	}
	for i = range ms {
		if err := f(ctx, ms[i]); err != nil {
			return nil, fmt.Errorf("queue: EnqueueMany: jobs[%d]: %w", i, err)
		}
		if out[i] == nil {
			return nil, fmt.Errorf("%w: queue: EnqueueMany: jobs[%d]: a client middleware returned nil without calling next", ErrInvalid, i)
		}
	}
	return out, nil
}

// Job returns a job's record, or ErrNotFound: its state, attempt, last
// error, progress (Job.Progress), output (HandleResult) and times
// (EnqueuedAt, StartedAt, FinishedAt).
func (c *Client) Job(ctx context.Context, queue, id string) (*Message, error) {
	return c.b.Job(ctx, queue, id)
}

// Counts counts a queue's jobs per state.
func (c *Client) Counts(ctx context.Context, queue string) (Counts, error) {
	return c.b.Counts(ctx, queue)
}

// Dead lists up to limit dead jobs of queue, most recent first.
func (c *Client) Dead(ctx context.Context, queue string, limit int) ([]*Message, error) {
	return c.b.Dead(ctx, queue, limit)
}

// Requeue makes a dead or cancelled job pending again, to run now, with
// its attempts reset, or returns ErrNotFound. It does not take the job's
// while-active unique key again.
func (c *Client) Requeue(ctx context.Context, queue, id string) error {
	return c.b.Requeue(ctx, queue, id)
}

// Pause stops every Worker of the fleet fetching from queue within a
// second (each asks the backend at most once a second per queue); jobs
// already running finish, enqueues still land. Resume undoes it. Pausing
// a paused queue does nothing.
func (c *Client) Pause(ctx context.Context, queue string) error {
	if err := checkName("queue", queue); err != nil {
		return err
	}
	return c.b.Pause(ctx, queue)
}

// Resume lets the Workers fetch from a paused queue again, within a
// second. Resuming a queue that is not paused does nothing.
func (c *Client) Resume(ctx context.Context, queue string) error {
	if err := checkName("queue", queue); err != nil {
		return err
	}
	return c.b.Resume(ctx, queue)
}

// Paused reports whether queue is paused (Pause).
func (c *Client) Paused(ctx context.Context, queue string) (bool, error) {
	return c.b.Paused(ctx, queue)
}

// Cancel stops a job that has not finished; its state becomes Cancelled.
// A pending, scheduled or retry-waiting job never runs. A running job's
// handler has its ctx cancelled by its worker at the next lease renewal
// at the latest (every Options.Lease/3), and its outcome is not recorded:
// it stays cancelled, never retried. Cancelling a cancelled job does
// nothing; a done or dead job returns an error wrapping ErrFinished, an
// unknown one ErrNotFound. Requeue runs a cancelled job again.
func (c *Client) Cancel(ctx context.Context, queue, id string) error {
	return c.b.Cancel(ctx, queue, id)
}

// Delete removes a job in any state (and the unique key it holds), or
// returns ErrNotFound. A running job's worker cannot record its outcome
// (ErrLeaseLost) and its handler is cancelled at its next lease renewal.
func (c *Client) Delete(ctx context.Context, queue, id string) error {
	return c.b.Delete(ctx, queue, id)
}
