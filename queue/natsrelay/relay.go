package natsrelay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/pause"
	"github.com/scalekit-go/scalekit/internal/queuex"
	"github.com/scalekit-go/scalekit/internal/renew"
	"github.com/scalekit-go/scalekit/queue"
)

// ErrInvalid is wrapped by every error about bad options.
var ErrInvalid = errors.New("natsrelay: invalid")

// ErrClosed is returned by Start after Shutdown or Close.
var ErrClosed = errors.New("natsrelay: closed")

// DefaultSubjectPrefix is the default subject of an event on topic T:
// DefaultSubjectPrefix + T ("events.orders" for topic "orders").
const DefaultSubjectPrefix = "events."

// HeaderKey is the header that carries an event's ordering key in the
// stream (absent for an event without one).
const HeaderKey = "Scalekit-Event-Key"

// MaxBatch is the largest Options.Batch: a relay that takes over a queue
// fetches MaxBatch events at once, so every event its crashed
// predecessor held comes back in one batch and is put in order.
const MaxBatch = 1000

// Options configures New. Backend, Queue and JetStream are required; the
// rest have defaults.
type Options struct {
	// Backend holds the queue the relay drains (queuepg, queueredis or a
	// queue.MemoryBackend); required.
	Backend queue.Backend
	// Queue is the subscriber queue the relay drains: the queue subscribed
	// to the topics to forward (queue.Client.Subscribe). Nothing else may
	// consume it. Required.
	Queue string
	// JetStream publishes the events; required. A stream must capture
	// their subjects (DefaultSubjectPrefix + ">" with the default
	// Subject), with a duplicate window (StreamConfig.Duplicates, 2m by
	// default) longer than 2×Lease, so a re-sent event is recognised.
	JetStream jetstream.JetStream
	// Subject names the subject of an event (its job: Kind is the topic,
	// ID the event id, Payload the event's JSON, Metadata its key and
	// metadata). An event whose subject is empty or not a valid literal
	// subject is dead-lettered (queue.Client.Dead lists it), as is one
	// larger than NATS's max_payload or the stream's MaxMsgSize.
	// Default: DefaultSubjectPrefix + m.Kind.
	Subject func(m *queue.Message) string
	// Batch is how many events one fetch takes, 1 to MaxBatch.
	// Default: 100.
	Batch int
	// Lease is how long the relay holds the events of a batch, at least
	// 100ms; the relay's hold on the whole queue (see the package doc) is
	// 2×Lease, renewed every Lease/3, and after a crash a successor starts
	// within about 2×Lease. After a failed fetch it waits 1.25×Lease (the
	// fetch may have leased events whose reply was lost; they must come
	// back first). Default: 10s.
	Lease time.Duration
	// FetchWait is how long a fetch waits for an event when none is
	// pending, 1ms to Lease/4. Default: the smaller of 1s and Lease/4.
	FetchWait time.Duration
	// PublishTimeout bounds one publish and its acknowledgement, 1ms to
	// Lease/4; a publish that times out is retried later (the event id
	// makes the retry safe). Default: the smaller of 5s and Lease/4.
	PublishTimeout time.Duration
	// Concurrency is how many keys of a batch are published at once (the
	// events of one key are published one after the other), 1 to
	// MaxBatch. Default: 32.
	Concurrency int
	// MaxBackoff is the longest pause after a failure (NATS or the
	// backend down); pauses start at 100ms and double. Default: 5s.
	MaxBackoff time.Duration
	// LockQueue is the queue holding the relay's hold on Queue (one job,
	// see the package doc). Default: "natsrelay:" + Queue.
	LockQueue string
	// Clock replaces the system clock (see package clock) for Stats.Lag;
	// nil is the real time. Leases follow the backend's clock.
	Clock clock.Clock
	// Logger receives failures and ownership changes. Default: discard.
	Logger *slog.Logger
}

// Stats is a snapshot of a relay's counters.
type Stats struct {
	// Relayed counts events the stream stored (acknowledged, not as a
	// duplicate).
	Relayed int64
	// Duplicates counts events sent again that the stream already held
	// (acknowledged as duplicates: a crash or a lost acknowledgement).
	Duplicates int64
	// Failures counts publishes that failed (NATS down, a timeout); each
	// event went back to the queue to be sent again.
	Failures int64
	// DeadLettered counts events dead-lettered because they can never be
	// published: a bad subject, or too large for NATS or the stream.
	DeadLettered int64
	// Batches counts batches fetched with at least one event.
	Batches int64
	// Owner reports whether this relay holds the queue now; a second
	// relay on the same queue waits with Owner false.
	Owner bool
	// Paused reports whether the queue was paused (queue.Client.Pause)
	// when the relay last looked (at most once a second): a paused queue
	// is not relayed until it is resumed.
	Paused bool
	// Lag is the age of the oldest event of the last batch when it was
	// fetched (by Options.Clock); 0 before the first and while the queue
	// is empty.
	Lag time.Duration
}

// Relay forwards the events of one queue to JetStream. It is safe for
// concurrent use.
type Relay struct {
	o   Options
	log *slog.Logger

	relayed, duplicates, failures, dead, batches atomic.Int64
	owner, paused                                atomic.Bool
	lag                                          atomic.Int64

	mu      sync.Mutex
	started bool
	closed  bool
	stop    context.CancelFunc // ends fetching
	hard    context.CancelFunc // ends publishing
	done    chan struct{}
}

// New checks o, fills its defaults and returns a Relay; Start runs it.
func New(o Options) (*Relay, error) {
	switch {
	case o.Backend == nil:
		return nil, fmt.Errorf("%w: Options.Backend is required", ErrInvalid)
	case o.JetStream == nil:
		return nil, fmt.Errorf("%w: Options.JetStream is required", ErrInvalid)
	}
	if err := queuex.CheckName(ErrInvalid, "Options.Queue", o.Queue); err != nil {
		return nil, err
	}
	if o.Subject == nil {
		o.Subject = func(m *queue.Message) string { return DefaultSubjectPrefix + m.Kind }
	}
	if err := fill("Batch", &o.Batch, 100, 1, MaxBatch); err != nil {
		return nil, err
	}
	if err := fill("Lease", &o.Lease, 10*time.Second, 100*time.Millisecond, 0); err != nil {
		return nil, err
	}
	if err := fill("FetchWait", &o.FetchWait, min(time.Second, o.Lease/4), time.Millisecond, o.Lease/4); err != nil {
		return nil, err
	}
	if err := fill("PublishTimeout", &o.PublishTimeout, min(5*time.Second, o.Lease/4), time.Millisecond, o.Lease/4); err != nil {
		return nil, err
	}
	if err := fill("Concurrency", &o.Concurrency, 32, 1, MaxBatch); err != nil {
		return nil, err
	}
	if err := fill("MaxBackoff", &o.MaxBackoff, 5*time.Second, 100*time.Millisecond, 0); err != nil {
		return nil, err
	}
	if o.LockQueue == "" {
		o.LockQueue = "natsrelay:" + o.Queue
		if !queuex.ValidName(o.LockQueue) {
			return nil, fmt.Errorf("%w: Options.Queue %q is too long for the default LockQueue %q (at most 100 bytes): set Options.LockQueue", ErrInvalid, o.Queue, o.LockQueue)
		}
	}
	if err := queuex.CheckName(ErrInvalid, "Options.LockQueue", o.LockQueue); err != nil {
		return nil, err
	}
	if o.LockQueue == o.Queue {
		return nil, fmt.Errorf("%w: Options.LockQueue must differ from Options.Queue %q", ErrInvalid, o.Queue)
	}
	return &Relay{o: o, log: logx.Or(o.Logger)}, nil
}

// fill sets *v to def when it is zero, then checks lo <= *v <= hi (hi 0:
// no upper bound), naming Options.name in the error.
func fill[T int | time.Duration](name string, v *T, def, lo, hi T) error {
	if *v == 0 {
		*v = def
	}
	switch {
	case hi == 0 && *v < lo:
		return fmt.Errorf("%w: Options.%s must be at least %v, got %v", ErrInvalid, name, lo, *v)
	case hi != 0 && (*v < lo || *v > hi):
		return fmt.Errorf("%w: Options.%s must be %v to %v, got %v", ErrInvalid, name, lo, hi, *v)
	}
	return nil
}

// Start runs the relay in the background until Shutdown, Close or the end
// of ctx; it returns at once. It waits for the queue's hold (another relay
// may have it) and then forwards events.
func (r *Relay) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return ErrClosed
	case r.started:
		return fmt.Errorf("%w: the relay is already started", ErrInvalid)
	}
	r.started = true
	var soft, hard context.Context
	soft, r.stop = context.WithCancel(ctx)
	hard, r.hard = context.WithCancel(context.WithoutCancel(ctx))
	r.done = make(chan struct{})
	go r.run(soft, hard)
	return nil
}

// Shutdown stops fetching, lets the fetch in flight finish (at most
// Options.FetchWait) and the batch in flight be published until ctx ends,
// then gives the events not yet acknowledged back to the queue and the
// queue's hold too, so another relay takes over at once. It returns
// ctx.Err() if the batch had to be cut short. When ctx ends during a
// fetch, or an event could not be given back, the events may be leased
// to nobody for up to Lease: the hold is then not given back but runs
// out (2×Lease), so a successor still publishes them first. Calls after
// the first return nil.
func (r *Relay) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	started := r.started
	r.mu.Unlock()
	if !started {
		return nil
	}
	r.stop()
	select {
	case <-r.done:
		r.hard()
		return nil
	case <-ctx.Done():
	}
	r.hard()
	<-r.done
	return ctx.Err()
}

// Close stops at once: publishing ends, the events not yet acknowledged
// and the queue's hold go back to the queue (the hold runs out instead
// when a fetch was cut short: see Shutdown). It is idempotent.
func (r *Relay) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (r *Relay) Stats() Stats {
	return Stats{Relayed: r.relayed.Load(), Duplicates: r.duplicates.Load(), Failures: r.failures.Load(),
		DeadLettered: r.dead.Load(), Batches: r.batches.Load(), Owner: r.owner.Load(), Paused: r.paused.Load(), Lag: time.Duration(r.lag.Load())}
}

// hold is the relay's lease on the lock job: the queue's single owner.
type hold struct {
	lease   *queue.Lease
	renewer *renew.Renewer
	// valid is when the hold surely still holds, in this process's
	// monotonic time (Unix ns of a time.Now reading taken before the
	// renewal was sent, plus 2×Lease); 0 once lost.
	valid atomic.Int64
	base  time.Time
}

// left is how long the hold surely lasts from now (<= 0: lost or expired).
func (h *hold) left() time.Duration {
	v := h.valid.Load()
	if v == 0 {
		return -1
	}
	return time.Duration(v) - time.Since(h.base)
}

// lockID is the id of the lock job in the lock queue.
const lockID = "owner"

// run is the relay's loop: take the hold, fetch, publish, resolve.
func (r *Relay) run(soft, hard context.Context) {
	defer close(r.done)
	back := pause.Growing{Min: 100 * time.Millisecond, Max: r.o.MaxBackoff}
	var h *hold
	// orphans is until when events of this queue may be leased to nobody
	// (a fetch whose reply was lost, an event that could not be given
	// back): the hold is not given back before then, or a successor
	// would publish the events behind them first.
	var orphans time.Time
	defer func() { r.let(h, orphans) }()
	// gather makes the next fetch take MaxBatch events, not before
	// notBefore: after a takeover, a fetch whose reply was lost or a
	// release that failed, events of this queue may be leased to nobody
	// (or, when its leases ran out, hold no lease). They must come back
	// in one batch, ahead of the events behind them, to be put in order.
	gather, notBefore := false, time.Time{}
	var pausedAt time.Time // when Paused was last asked
	for soft.Err() == nil {
		if h == nil || h.left() <= 0 {
			if h != nil {
				r.log.Warn("natsrelay: lost the queue's hold", "queue", r.o.Queue)
				r.let(h, time.Time{})
				h = nil
			}
			var err error
			if h, err = r.acquire(soft); err != nil {
				r.log.Warn("natsrelay: taking the queue's hold failed", "queue", r.o.Queue, "err", err)
				back.Wait(soft.Done())
				continue
			}
			if h == nil {
				continue // another relay holds it; acquire waited
			}
			gather = true
			r.log.Info("natsrelay: holding the queue", "queue", r.o.Queue)
		}
		if wait := time.Until(notBefore); wait > 0 {
			pause.For(soft.Done(), wait)
			continue
		}
		// Every event fetched now must be resolved, or its lease run out,
		// before the hold can run out: see the package doc.
		if h.left() < r.o.Lease+r.o.FetchWait+r.o.Lease/4 {
			back.Wait(soft.Done())
			continue
		}
		if time.Since(pausedAt) >= time.Second {
			paused, err := r.o.Backend.Paused(soft, r.o.Queue)
			if err == nil {
				pausedAt = time.Now()
				r.paused.Store(paused)
			}
			if paused {
				pause.For(soft.Done(), time.Second)
				continue
			}
		}
		n := r.o.Batch
		if gather {
			n = MaxBatch
		}
		// The fetch runs on hard, not soft: a fetch cut short may have
		// leased events to nobody, so Shutdown lets it finish (at most
		// FetchWait) and relays what it took.
		// Strict: a backend must not take an event of a key ahead of an
		// earlier one that became visible late (queuepg's fetch floor).
		leases, err := r.o.Backend.Fetch(hard, queue.FetchRequest{Queue: r.o.Queue, Max: n, Lease: r.o.Lease,
			Wait: r.o.FetchWait, Order: [3]queue.Priority{queue.Default, queue.High, queue.Low}, Strict: true})
		fetched := time.Now()
		if err != nil {
			// The fetch may have leased events whose reply was lost: they
			// are due again once their lease ran out.
			gather, notBefore = true, fetched.Add(r.o.Lease+r.o.Lease/4)
			orphans = notBefore
			if hard.Err() == nil {
				r.log.Warn("natsrelay: fetch failed", "queue", r.o.Queue, "err", err)
			}
			continue
		}
		gather = false
		if len(leases) == 0 {
			r.lag.Store(0)
			continue
		}
		r.batches.Add(1)
		ok, gave := r.relay(hard, h, leases)
		switch gave {
		case expired:
			gather = true
		case stillLeased:
			gather, notBefore = true, fetched.Add(r.o.Lease+r.o.Lease/4)
			orphans = notBefore
		}
		if ok {
			back.Reset()
		} else {
			back.Wait(soft.Done())
		}
	}
}

// acquire takes the lock job's lease, waiting up to Lease for it; nil
// without an error when another relay holds it.
func (r *Relay) acquire(ctx context.Context) (*hold, error) {
	m, err := queue.NewMessage(time.Now(), r.o.LockQueue, "natsrelay.lock", r.o.Queue,
		queue.EnqueueOptions{ID: lockID, MaxAttempts: math.MaxInt32})
	if err != nil {
		return nil, err
	}
	if err := r.o.Backend.Enqueue(ctx, m); err != nil {
		return nil, err
	}
	base := time.Now()
	ls, err := r.o.Backend.Fetch(ctx, queue.FetchRequest{Queue: r.o.LockQueue, Max: 1, Lease: 2 * r.o.Lease,
		Wait: r.o.Lease, Order: [3]queue.Priority{queue.Default, queue.High, queue.Low}})
	if err != nil || len(ls) == 0 {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	h := &hold{lease: ls[0], base: base}
	h.valid.Store(int64(2 * r.o.Lease))
	r.owner.Store(true)
	h.renewer = renew.Start(r.o.Lease/3, func() bool {
		sent := time.Since(h.base)
		ctx, cancel := context.WithTimeout(context.Background(), r.o.Lease/3)
		err := r.o.Backend.Extend(ctx, h.lease, 2*r.o.Lease)
		cancel()
		switch {
		case err == nil:
			h.valid.Store(int64(sent + 2*r.o.Lease))
		case errors.Is(err, queue.ErrLeaseLost):
			h.valid.Store(0)
			return false
		default:
			r.log.Warn("natsrelay: renewing the queue's hold failed", "queue", r.o.Queue, "err", err)
		}
		return true
	})
	return h, nil
}

// let gives the hold back (if it still holds), so a waiting relay takes
// over at once; but not before orphans (events may be leased to nobody
// until then): the hold then runs out by itself, after them, as when a
// relay dies.
func (r *Relay) let(h *hold, orphans time.Time) {
	if h == nil {
		return
	}
	h.renewer.Stop()
	r.owner.Store(false)
	if time.Now().Before(orphans) {
		r.log.Info("natsrelay: leaving the queue's hold to run out: events may be leased to nobody", "queue", r.o.Queue, "until", orphans)
	} else if h.left() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), r.o.Lease/2)
		defer cancel()
		if err := r.o.Backend.Release(ctx, h.lease, time.Time{}); err != nil {
			r.log.Warn("natsrelay: giving the queue's hold back failed", "queue", r.o.Queue, "err", err)
		}
	}
	h.valid.Store(0)
}

// outcome is what happened to one event of a batch.
type outcome uint8

const (
	unsent outcome = iota
	acked
	deadLetter
)

// relay publishes a batch in order per key and resolves every lease:
// acknowledged events are completed, the rest released (in reverse, so
// they are again at the front of the queue in their order). It reports
// whether every publish succeeded, and how the events not sent went back.
func (r *Relay) relay(ctx context.Context, h *hold, leases []*queue.Lease) (ok bool, back giveBack) {
	// The backends hand out redelivered events (expired leases) first but
	// not in their order: put the batch in enqueue order.
	slices.SortStableFunc(leases, func(a, b *queue.Lease) int {
		if c := a.Msg.EnqueuedAt.Compare(b.Msg.EnqueuedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Msg.ID, b.Msg.ID)
	})
	r.lag.Store(int64(max(0, clock.Now(r.o.Clock).Sub(leases[0].Msg.EnqueuedAt))))
	deadline := time.Now().Add(r.o.Lease / 2)
	// Group by key, each group in batch order; an event without a key is
	// a group of its own.
	var groups [][]int
	byKey := map[string]int{}
	for i, l := range leases {
		k, ok := l.Msg.Metadata[queue.MetadataEventKey]
		if !ok {
			groups = append(groups, []int{i})
			continue
		}
		g, seen := byKey[k]
		if !seen {
			g = len(groups)
			byKey[k] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	out := make([]outcome, len(leases))
	why := make([]string, len(leases)) // why a dead-lettered event is
	var failed atomic.Bool
	sem := make(chan struct{}, r.o.Concurrency)
	var wg sync.WaitGroup
	for _, idx := range groups {
		sem <- struct{}{}
		wg.Add(1)
		go func(idx []int) {
			defer func() { <-sem; wg.Done() }()
			for _, i := range idx {
				if ctx.Err() != nil || time.Now().After(deadline) || h.left() < r.o.Lease/4 {
					return
				}
				o, err := r.publish(ctx, leases[i].Msg)
				out[i] = o
				if o == deadLetter {
					why[i] = err.Error()
					continue
				}
				if err != nil {
					failed.Store(true)
					r.failures.Add(1)
					r.log.Warn("natsrelay: publish failed; the event goes back to the queue", "queue", r.o.Queue, "id", leases[i].Msg.ID, "err", err)
					return
				}
			}
		}(idx)
	}
	wg.Wait()
	return !failed.Load(), r.resolve(leases, out, why)
}

// publish sends one event and waits for its acknowledgement. An event
// that can never be published (deadLetter) comes with the reason.
func (r *Relay) publish(ctx context.Context, m *queue.Message) (outcome, error) {
	subj := r.o.Subject(m)
	if !validSubject(subj) {
		return deadLetter, fmt.Errorf("natsrelay: subject %q is not a valid NATS subject", subj)
	}
	msg := &nats.Msg{Subject: subj, Data: m.Payload, Header: nats.Header{}}
	for k, v := range m.Metadata {
		if k == queue.MetadataEventKey {
			k = HeaderKey
		}
		if validHeader(k, v) {
			msg.Header.Set(k, v)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, r.o.PublishTimeout)
	defer cancel()
	ack, err := r.o.JetStream.PublishMsg(ctx, msg, jetstream.WithMsgID(m.ID))
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
		return deadLetter, fmt.Errorf("natsrelay: the event (%d bytes) is too large for NATS or the stream: %w", len(m.Payload), err)
	}
	if err != nil {
		return unsent, err
	}
	if ack.Duplicate {
		r.duplicates.Add(1)
	} else {
		r.relayed.Add(1)
	}
	return acked, nil
}

// validSubject reports whether s is a literal NATS subject: tokens
// separated by '.', none empty, no wildcard, no white space.
func validSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n*>") {
		return false
	}
	for t := range strings.SplitSeq(s, ".") {
		if t == "" {
			return false
		}
	}
	return true
}

// validHeader reports whether a metadata pair can be a NATS header: a
// name of printable ASCII without ':', a value without a line break.
func validHeader(k, v string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] >= 0x7f || k[i] == ':' {
			return false
		}
	}
	return !strings.ContainsAny(v, "\r\n")
}

// resolve completes the acknowledged events (at once: PostgreSQL batches
// concurrent completions), dead-letters those that can never be published
// (why[i] says why) and releases the rest in reverse order. It reports
// how they went back.
func (r *Relay) resolve(leases []*queue.Lease, out []outcome, why []string) giveBack {
	ctx, cancel := context.WithTimeout(context.Background(), r.o.Lease/2)
	defer cancel()
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, l := range leases {
		switch out[i] {
		case acked:
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := r.o.Backend.Complete(ctx, l, nil); err != nil {
					// The event is in the stream; it is sent again after its
					// lease, and the stream sees a duplicate.
					r.log.Warn("natsrelay: completing a relayed event failed", "queue", r.o.Queue, "id", l.Msg.ID, "err", err)
				}
			}()
		case deadLetter:
			r.dead.Add(1)
			r.log.Error("natsrelay: event dead-lettered", "queue", r.o.Queue, "id", l.Msg.ID, "err", why[i])
			if err := r.o.Backend.Fail(ctx, l, why[i], time.Time{}, true); err != nil {
				r.log.Warn("natsrelay: dead-lettering failed", "queue", r.o.Queue, "id", l.Msg.ID, "err", err)
			}
		}
	}
	wg.Wait()
	back := released
	for i := len(leases) - 1; i >= 0; i-- {
		if out[i] != unsent {
			continue
		}
		switch err := r.o.Backend.Release(ctx, leases[i], time.Time{}); {
		case errors.Is(err, queue.ErrLeaseLost):
			back = max(back, expired)
		case err != nil:
			back = stillLeased
			r.log.Warn("natsrelay: giving an event back failed; it returns after its lease", "queue", r.o.Queue, "id", leases[i].Msg.ID, "err", err)
		}
	}
	return back
}

// giveBack is how the events of a batch that were not sent went back to
// the queue.
type giveBack uint8

const (
	// released: each is at the front of the queue, in order.
	released giveBack = iota
	// expired: some lease ran out first; those are due, in no set order.
	expired
	// stillLeased: some are due only when their lease runs out.
	stillLeased
)
