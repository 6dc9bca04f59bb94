package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/scalekit-go/scalekit/retry"
)

// ErrInvalid is wrapped by every error about bad options or arguments.
var ErrInvalid = errors.New("queue: invalid")

// ErrDuplicate is returned (wrapped in a *DuplicateError) by Enqueue when
// a job with the same unique key is already held.
var ErrDuplicate = errors.New("queue: duplicate job")

// ErrNotFound is returned for a job id the backend does not hold (never
// existed, or its record expired).
var ErrNotFound = errors.New("queue: job not found")

// ErrLeaseLost is returned by a Backend when a lease token no longer holds
// its job: the lease expired and another worker took the job (or the job
// was cancelled or deleted).
var ErrLeaseLost = errors.New("queue: lease lost")

// ErrFinished is returned by Cancel for a job that already finished
// (done or dead): there is nothing left to cancel.
var ErrFinished = errors.New("queue: job already finished")

// DuplicateError is ErrDuplicate with the id of the job already held.
type DuplicateError struct {
	UniqueKey string
	ID        string
}

// Error says which job holds the unique key.
func (e *DuplicateError) Error() string {
	return fmt.Sprintf("queue: duplicate job: unique key %q is held by job %s", e.UniqueKey, e.ID)
}

// Is makes errors.Is(err, ErrDuplicate) true.
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }

// Priority orders jobs within a queue. Workers take High jobs six times as
// often as Low ones and Default three times, when all three wait: lower
// priorities slow down under load but never starve.
type Priority int

const (
	// Default is the zero value.
	Default Priority = iota
	// High jobs go first most of the time.
	High
	// Low jobs go last most of the time.
	Low
)

// String names the priority.
func (p Priority) String() string {
	switch p {
	case Default:
		return "default"
	case High:
		return "high"
	case Low:
		return "low"
	}
	return "Priority(" + strconv.Itoa(int(p)) + ")"
}

// fetchOrder returns the order in which one fetch looks at the
// priorities: High, Default, Low drawn by weights 6:3:1 for the first
// place (r in [0, 1)), the others after it in their natural order.
func fetchOrder(r float64) [3]Priority {
	switch {
	case r < 0.6:
		return [3]Priority{High, Default, Low}
	case r < 0.9:
		return [3]Priority{Default, High, Low}
	default:
		return [3]Priority{Low, High, Default}
	}
}

// State is where a job is in its life.
type State string

const (
	// Pending jobs wait to run now.
	Pending State = "pending"
	// Scheduled jobs wait for their run-at time.
	Scheduled State = "scheduled"
	// Active jobs are leased by a worker.
	Active State = "active"
	// Retry jobs failed and wait for their next attempt.
	Retry State = "retry"
	// Dead jobs failed for the last time (or permanently); see Dead and
	// Requeue. They are kept for the backend's dead retention
	// (DefaultDeadRetention unless set), then removed.
	Dead State = "dead"
	// Done jobs completed; they are kept for status queries for the
	// backend's retention.
	Done State = "done"
	// Cancelled jobs were cancelled (Client.Cancel) before they finished:
	// they never run again unless requeued (Client.Requeue). They are kept
	// like dead jobs, for the backend's dead retention.
	Cancelled State = "cancelled"
)

// Message is a job as a Backend stores it.
type Message struct {
	ID, Queue, Kind string
	// Payload is the job's arguments, JSON.
	Payload  []byte
	Priority Priority
	State    State
	// Attempt is how many attempts started (the current one included
	// while Active).
	Attempt, MaxAttempts int
	// RunAt is when the job is (or was) due.
	RunAt time.Time
	// Timeout bounds one attempt (0: the queue's default).
	Timeout time.Duration
	// UniqueKey, when set, is held until UniqueUntil, or with
	// UniqueWhileActive (UniqueUntil zero) until the job is done or dead:
	// enqueueing another job with it returns ErrDuplicate.
	UniqueKey         string
	UniqueUntil       time.Time
	UniqueWhileActive bool
	EnqueuedAt        time.Time
	// LastError is the error of the last failed attempt.
	LastError string
	// FinishedAt is when the job completed, died or was cancelled.
	FinishedAt time.Time
	// Snoozes counts the times a handler snoozed the job (Snooze): each
	// gave it back without spending an attempt. There is no cap; a
	// handler that wants one reads Job.Snoozes.
	Snoozes int
	// StartedAt is when the last attempt started (zero before the first).
	StartedAt time.Time
	// Progress is the last progress a handler reported (Job.Progress),
	// by this attempt or an earlier one; zero when none did.
	Progress Progress
	// Output is the job's result, JSON, stored with its completion (a
	// HandleResult handler's value); nil when it has none.
	Output []byte
	// Metadata is the job's metadata (EnqueueOptions.Metadata and what
	// client middleware added): small string pairs such as a trace
	// context, a request id or a tenant id, carried from the enqueue to
	// the handler (Job.Metadata) and its worker middleware
	// (Attempt.Metadata); nil when it has none. Bounded by
	// MaxMetadata, MaxMetadataKey and MaxMetadataValue.
	Metadata map[string]string
}

// The bounds of a job's metadata (EnqueueOptions.Metadata,
// Message.Metadata): at most MaxMetadata pairs, each key 1 to
// MaxMetadataKey bytes and each value at most MaxMetadataValue bytes,
// both valid UTF-8. A W3C traceparent is 55 bytes; a tracestate at most
// 512.
const (
	MaxMetadata      = 32
	MaxMetadataKey   = 64
	MaxMetadataValue = 1024
)

// checkMetadata returns an ErrInvalid error naming the first key (in
// sorted order) of md that breaks a bound, where says whose metadata it
// is (EnqueueOptions.Metadata, or a client middleware's result). Valid
// metadata is checked without sorting.
func checkMetadata(where string, md map[string]string) error {
	if len(md) > MaxMetadata {
		return fmt.Errorf("%w: %s has %d entries, at most %d are allowed", ErrInvalid, where, len(md), MaxMetadata)
	}
	for k, v := range md {
		if metadataError(where, k, v) != nil {
			for _, k := range slices.Sorted(maps.Keys(md)) {
				if err := metadataError(where, k, md[k]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// metadataError is the error of one metadata pair out of bounds, or nil.
func metadataError(where, k, v string) error {
	switch {
	case k == "" || len(k) > MaxMetadataKey:
		return fmt.Errorf("%w: %s key %q must be 1 to %d bytes, got %d", ErrInvalid, where, k, MaxMetadataKey, len(k))
	case !utf8.ValidString(k):
		return fmt.Errorf("%w: %s key %q is not valid UTF-8", ErrInvalid, where, k)
	case len(v) > MaxMetadataValue:
		return fmt.Errorf("%w: %s[%q] must be at most %d bytes, got %d", ErrInvalid, where, k, MaxMetadataValue, len(v))
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: %s[%q] is not valid UTF-8", ErrInvalid, where, k)
	}
	return nil
}

// Progress is how far a running job is, as its handler last reported it
// (Job.Progress).
type Progress struct {
	// Percent is 0 to 100.
	Percent int
	// Message is a short note, at most MaxProgressMessage bytes.
	Message string
	// UpdatedAt is when it was reported (the backend's clock); zero when
	// never.
	UpdatedAt time.Time
}

// MaxProgressMessage is the longest Progress.Message, in bytes.
const MaxProgressMessage = 200

// DefaultMaxOutput is the largest job output (JSON bytes) a Worker
// stores unless WorkerOptions.MaxOutput says otherwise: 64 KiB.
const DefaultMaxOutput = 64 << 10

// ErrOutputTooLarge fails an attempt whose output is longer than
// WorkerOptions.MaxOutput (permanently: the job goes to the dead letters).
var ErrOutputTooLarge = errors.New("queue: job output too large")

// Lease is a worker's claim on an Active job; Token fences it, so a worker
// whose lease expired cannot complete a job another worker now holds.
type Lease struct {
	Msg   *Message
	Token string
	Until time.Time
}

// Counts is how many jobs of a queue are in each state.
type Counts struct {
	Pending, Scheduled, Active, Retry, Dead, Done, Cancelled int64
	// OldestPending is the age of the oldest job due to run (the queue's
	// lag); 0 when none waits.
	OldestPending time.Duration
}

// FetchRequest asks a Backend for jobs.
type FetchRequest struct {
	Queue string
	// Max is the most jobs to lease.
	Max int
	// Lease is how long the leases last.
	Lease time.Duration
	// Wait is how long the backend may block for a job to arrive when none
	// is due (0: answer at once).
	Wait time.Duration
	// Order is the priorities to look at, in order: the backend leases
	// jobs of Order[0] first, then Order[1], then Order[2]. A Worker draws
	// it for each fetch, High first 60% of the time, Default 30% and Low
	// 10% (see Priority).
	Order [3]Priority
	// Grow, when not nil, lets a backend that holds a fetch back to batch
	// it with other work (queueredis sends it in the next round trip of
	// its queue) lease more than Max: called during Fetch, just before
	// the backend leases, it returns how many more jobs (0 to n) the fetch
	// may lease now, on top of Max and of what earlier calls returned. A
	// Worker's Grow takes the handler slots freed while the fetch waited,
	// so the fetch leases jobs only for slots that are free. Backends may
	// ignore it.
	Grow func(n int) int
	// Strict asks for the due jobs in exactly their order (run_at, then
	// id, within each priority), a job that became visible late (its
	// enqueuing transaction committed long after it began) included. Without
	// it a backend may take such a job a few fetches late while the queue
	// is busy: queuepg starts each fetch past the jobs it took last (its
	// fetch floor) and looks below only now and then. natsrelay sets it:
	// its per-key order rests on it. Redis and memory backends are always
	// strict.
	Strict bool
}

// Backend stores jobs: MemoryBackend in process, queueredis on Redis
// Streams, queuepg on PostgreSQL. queuetest is the conformance suite.
// Every method may be called concurrently.
type Backend interface {
	// Enqueue stores m (its ID set by the caller), due at m.RunAt. With a
	// UniqueKey held by another job it stores nothing and returns a
	// *DuplicateError naming that job. When m.ID is already used by the
	// same job (SameJob: a retried enqueue that landed) it succeeds and
	// stores nothing; by another job it returns ErrInvalid.
	Enqueue(ctx context.Context, m *Message) error
	// EnqueueMany stores ms in one round trip (a backend that shards by
	// queue may take one per queue), each as Enqueue would, in order:
	// results[i] is ms[i].ID with a nil Err when it is stored or was
	// already there (SameJob); the holder's id with a *DuplicateError
	// when its UniqueKey is held (by an earlier message of the batch,
	// too); ErrInvalid when its ID is used by another job. A refused
	// message never fails the others. err is for the whole call (bad
	// messages, or the backend failed; results are then nil): after a
	// failure some messages may be stored, and storing the same messages
	// again is safe. The messages' (Queue, ID) pairs are distinct
	// (NewMessages ensures it).
	EnqueueMany(ctx context.Context, ms []*Message) (results []EnqueueResult, err error)
	// Fetch leases up to Max due jobs (pending, scheduled or retry jobs
	// whose time came, and active jobs whose lease expired), counting an
	// attempt on each. Within a priority, jobs whose lease expired and
	// jobs given back by Release (due now) come first (the expired ones
	// in no set order among themselves), then the others in due order,
	// those due at once in enqueue order.
	Fetch(ctx context.Context, r FetchRequest) ([]*Lease, error)
	// Extend renews a lease until now+d, or returns ErrLeaseLost.
	Extend(ctx context.Context, l *Lease, d time.Duration) error
	// Complete marks the job done and stores its output (JSON; nil for
	// none) in the same write, or returns ErrLeaseLost.
	Complete(ctx context.Context, l *Lease, output []byte) error
	// Progress records a running job's progress (percent 0 to 100, a
	// message of at most MaxProgressMessage bytes, both checked by the
	// caller), dated by the backend's clock, or returns ErrLeaseLost: a
	// worker that lost its lease cannot overwrite it.
	Progress(ctx context.Context, l *Lease, percent int, msg string) error
	// Fail records a failed attempt with errMsg: the job dies when dead is
	// true, else it is retried at retryAt. ErrLeaseLost if the lease is
	// gone.
	Fail(ctx context.Context, l *Lease, errMsg string, retryAt time.Time, dead bool) error
	// Release gives an active job back without counting the attempt, or
	// returns ErrLeaseLost. With a zero snoozeUntil the job is due now, at
	// the front of its priority (a worker shutting down, a rate-limited
	// job); otherwise it is a snooze: the job is due at snoozeUntil
	// (scheduled, or pending when that time has come) and its Snoozes
	// count grows by one.
	Release(ctx context.Context, l *Lease, snoozeUntil time.Time) error
	// Job returns a job by id, or ErrNotFound.
	Job(ctx context.Context, queue, id string) (*Message, error)
	// Counts counts a queue's jobs per state.
	Counts(ctx context.Context, queue string) (Counts, error)
	// Dead lists up to limit dead jobs of a queue, most recent first.
	Dead(ctx context.Context, queue string, limit int) ([]*Message, error)
	// Requeue makes a dead or cancelled job pending again with a fresh
	// attempt count, or returns ErrNotFound.
	Requeue(ctx context.Context, queue, id string) error
	// Cancel makes a job that has not finished cancelled: a pending,
	// scheduled or retry job is never fetched again; an active job's
	// lease ends, so its worker gets ErrLeaseLost at its next renewal
	// (cancelling its handler's ctx) and for its outcome. The job drops
	// its while-active unique hold and is kept for the dead retention.
	// Cancelling a cancelled job does nothing; a done or dead one returns
	// ErrFinished; an unknown one ErrNotFound.
	Cancel(ctx context.Context, queue, id string) error
	// Pause marks a queue paused for every Worker of the fleet: they stop
	// fetching from it (they ask Paused at most once a second). Enqueues
	// still land and Fetch itself ignores the mark. Pausing a paused
	// queue does nothing.
	Pause(ctx context.Context, queue string) error
	// Resume removes a queue's pause mark; resuming a queue that is not
	// paused does nothing.
	Resume(ctx context.Context, queue string) error
	// Paused reports whether a queue is paused.
	Paused(ctx context.Context, queue string) (bool, error)
	// Delete removes a job in any state, with the unique hold it has,
	// or returns ErrNotFound. A deleted active job's worker gets
	// ErrLeaseLost for its outcome (and its handler's ctx is cancelled
	// at its next renewal).
	Delete(ctx context.Context, queue, id string) error
	// List returns up to q.Limit jobs of q.Queue whose id is below
	// q.Before (any id when empty) and that match q.State (as Job reports
	// it) and q.Kind (empty: any), by id from the highest, and next: the
	// id to pass as Before for the rest, empty when nothing is left. The
	// ids compare as the backend stores them (byte order, or the
	// PostgreSQL table's collation), the same order for every call. A
	// backend may bound the work of one call (the backends of this
	// module examine at most ListScanBudget jobs of a filtered listing)
	// and return fewer than Limit jobs with a next; Client.List calls
	// again. Its cost must not grow with the size of the queue.
	List(ctx context.Context, q ListQuery) (jobs []*Message, next string, err error)
	// Queues returns the backend's queue names, sorted, each once:
	// every queue that holds a job or is paused; a queue whose jobs are
	// all gone may stay listed. It must cost nothing on the enqueue path
	// beyond O(1).
	Queues(ctx context.Context) ([]string, error)

	// Events (see Client.Publish).

	// Subscribe stores a subscription of queue to topic, for the whole
	// fleet; subscribing again does nothing.
	Subscribe(ctx context.Context, topic, queue string) error
	// Unsubscribe removes a subscription; removing one that does not
	// exist does nothing.
	Unsubscribe(ctx context.Context, topic, queue string) error
	// Subscribers lists the queues subscribed to topic, sorted.
	Subscribers(ctx context.Context, topic string) ([]string, error)
	// Publish stores a copy of m (a NewEvent message: Queue empty, Kind
	// the topic) in every queue subscribed to topic, each as Enqueue
	// would store EventCopy(m, queue) (a queue that holds the same job,
	// SameJob, stores nothing), atomically where the engine can (one
	// lock, statement or script), and returns the subscribed queues that
	// hold the event, sorted; none, and no error, when topic has no
	// subscriber. A queue whose job with m.ID is another job does not
	// get it: Publish returns a *PublishError (ErrInvalid) naming those
	// queues, with the queues that did. After an error from the
	// backend, some queues may hold the event (where a publish takes
	// more than one write): publishing the same message again completes
	// the delivery.
	Publish(ctx context.Context, topic string, m *Message) (queues []string, err error)
}

// DefaultDeadRetention is how long the backends of this module keep dead
// and cancelled jobs (for Dead and Requeue) unless told otherwise: 14 days.
const DefaultDeadRetention = 14 * 24 * time.Hour

// SameJob reports whether b is the same job as a for an enqueue retried
// with the same EnqueueOptions.ID: same queue, id, kind and payload
// (metadata aside: a retry may carry another trace context). A
// Backend's Enqueue of a message that SameJob matches with the job it
// already holds succeeds without storing a second one (the first call
// landed, its reply was lost); any other message with a used id is
// ErrInvalid.
func SameJob(a, b *Message) bool {
	return a.Queue == b.Queue && a.ID == b.ID && a.Kind == b.Kind && bytes.Equal(a.Payload, b.Payload)
}

// lastIDTime is the time part of the last id newID made.
var lastIDTime atomic.Int64

// newID returns a new job id: time-ordered, 26 characters. Its time part
// grows strictly in this process, so the jobs of one EnqueueMany keep
// their order however fast they are built.
func newID() string {
	t := time.Now().UnixNano() >> 8
	for {
		last := lastIDTime.Load()
		if t <= last {
			t = last + 1
		}
		if lastIDTime.CompareAndSwap(last, t) {
			break
		}
	}
	return fmt.Sprintf("%013x%013x", t, rand.Uint64()>>12)
}

// Permanent marks a handler error as final: the job goes to the dead
// letters at once, without more attempts. It is retry.Permanent, so an
// error marked for a retry loop inside the handler means the same here.
func Permanent(err error) error { return retry.Permanent(err) }

// Snooze returns the error a handler returns to run its job again d from
// now without spending an attempt: the Worker gives the job back
// (Backend.Release with a due time), the next run sees the same Attempt,
// MaxAttempts is not consumed, the job's Snoozes count grows by one and
// the worker's Stats count it in Snoozed. A negative d returns an
// ErrInvalid error instead, which fails the attempt like any handler
// error.
//
// Snoozes are not capped (as in River, where a snooze gives the attempt
// back and only counts the snoozes): a job that waits for something
// outside may need to snooze for as long as that takes, and a cap would
// turn a slow dependency into a dead job. A snooze loop is not silent:
// every snooze is logged (Info), counted in Stats.Snoozed (the
// scalekit_queue_snoozed_total metric) and on the job (Message.Snoozes,
// Job.Snoozes), so a handler that wants a cap writes it:
//
//	if j.Snoozes >= 20 {
//		return queue.Permanent(errors.New("still not ready after 20 snoozes"))
//	}
//	return queue.Snooze(time.Minute)
func Snooze(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("%w: queue.Snooze(%v): the delay must be >= 0", ErrInvalid, d)
	}
	return &snoozeError{d: d}
}

// snoozeError is the error Snooze returns.
type snoozeError struct{ d time.Duration }

func (e *snoozeError) Error() string { return "queue: job snoozed for " + e.d.String() }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool { return retry.IsPermanent(err) }

// IsSnooze reports whether err (or an error it wraps) is one Snooze
// returned, and its delay: what worker middleware needs to tell a
// snoozed attempt from a failed one.
func IsSnooze(err error) (time.Duration, bool) {
	var s *snoozeError
	if errors.As(err, &s) {
		return s.d, true
	}
	return 0, false
}
