package queuepg

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/every"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/pause"
	"github.com/scalekit-go/scalekit/internal/pgplan"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/queue"
)

// Options configures New. Pool is required.
type Options struct {
	// Pool is the database.
	Pool *pgxpool.Pool
	// Prefix names the tables (<Prefix>_jobs, <Prefix>_unique,
	// <Prefix>_counts, <Prefix>_paused, <Prefix>_subscriptions) and the
	// NOTIFY channel. Default: "queue".
	Prefix string
	// Retention is how long done jobs are kept. Default: 24h.
	Retention time.Duration
	// DeadRetention is how long dead and cancelled jobs are kept for Dead
	// and Requeue.
	// Default: queue.DefaultDeadRetention (14 days).
	DeadRetention time.Duration
	// SweepInterval, when set, removes done, dead and cancelled jobs past their
	// retention in the background until Close. Default: 0 (call Sweep
	// yourself).
	SweepInterval time.Duration
	// PollInterval is how often a waiting Fetch looks for jobs without a
	// NOTIFY: scheduled and retry jobs that became due, expired leases,
	// notifications missed. Default: 1s.
	PollInterval time.Duration
	// PollOnly turns LISTEN/NOTIFY off: waiting Fetches poll every
	// PollInterval and enqueues send no NOTIFY. Set it behind a pooler
	// in transaction mode (PgBouncer pool_mode=transaction), where LISTEN
	// does not work: the listener's session is not kept. Default: false.
	PollOnly bool
	// Clock replaces the system clock (see package clock); nil is the
	// server's clock (PostgreSQL now()), so that the clocks of the fleet
	// do not matter for leases and due times.
	Clock clock.Clock
	// Logger receives listener and sweep problems. Default: discard.
	Logger *slog.Logger
	// ReplanInterval is how often the backend, while in use, reads the
	// size of its tables (one small query; none in an interval without a
	// statement): when one has halved or doubled since its
	// statements were planned, it sends them again under new text, so
	// that PostgreSQL plans them for the new size. A prepared statement
	// keeps the plan made when it was prepared until the table is
	// analyzed: one planned while the jobs table was small (a new or
	// drained queue) reads every row of it once the table has grown.
	// Default: 2s; negative: never (the statements keep their first
	// plans, for tests that count round trips).
	ReplanInterval time.Duration
}

// Backend is a queue.Backend on PostgreSQL. It is safe for concurrent use;
// Close it to stop its listener.
type Backend struct {
	pool      *pgxpool.Pool
	counts    string // the table of the done counters (Migrate)
	channel   string
	retention time.Duration
	deadRet   time.Duration
	poll      time.Duration
	clk       clock.Clock
	log       *slog.Logger

	lanes  sync.Map // queue name -> *lane (lane.go)
	floors sync.Map // queue name -> *fetchFloor (floor.go)

	lmu      sync.Mutex
	waiters  map[string]chan struct{} // per queue, closed on NOTIFY
	listener bool
	stop     chan struct{}
	bg       sync.WaitGroup
	once     sync.Once

	pollOnly bool

	nmu       sync.Mutex
	dirty     map[string]bool // queues to notify
	pending   []pendingTx     // EnqueueTx transactions to notify after
	notifying bool            // the notifier runs
	nkick     chan struct{}

	// For tests: the listener is in LISTEN; Fetch calls found nothing
	// and started waiting.
	listening atomic.Bool
	idle      atomic.Int64

	plans *pgplan.Set[planSet] // the statements, planned for the tables' size (plan.go)
}

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// New returns a Backend, or an error naming the option to fix. It does not
// touch the database; call Migrate once.
func New(o Options) (*Backend, error) {
	if o.Pool == nil {
		return nil, fmt.Errorf("%w: queuepg: Options.Pool is required", queue.ErrInvalid)
	}
	if o.Prefix == "" {
		o.Prefix = "queue"
	}
	if !prefixRE.MatchString(o.Prefix) {
		return nil, fmt.Errorf("%w: queuepg: Options.Prefix %q must be lower-case letters, digits and _ (at most 41)", queue.ErrInvalid, o.Prefix)
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	if o.DeadRetention == 0 {
		o.DeadRetention = queue.DefaultDeadRetention
	}
	if o.Retention < 0 || o.DeadRetention < 0 || o.SweepInterval < 0 {
		return nil, fmt.Errorf("%w: queuepg: Options.Retention, DeadRetention and SweepInterval must be >= 0", queue.ErrInvalid)
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Second
	}
	if o.PollInterval < time.Millisecond {
		return nil, fmt.Errorf("%w: queuepg: Options.PollInterval must be >= 1ms, got %v", queue.ErrInvalid, o.PollInterval)
	}
	o.Logger = logx.Or(o.Logger)
	if o.ReplanInterval == 0 {
		o.ReplanInterval = pgplan.DefaultInterval
	}
	b := &Backend{pool: o.Pool, counts: o.Prefix + "_counts", channel: o.Prefix + "_jobs",
		retention: o.Retention, deadRet: o.DeadRetention, poll: o.PollInterval, pollOnly: o.PollOnly,
		dirty: map[string]bool{}, nkick: make(chan struct{}, 1), clk: o.Clock, log: o.Logger, waiters: map[string]chan struct{}{}, stop: make(chan struct{})}
	b.plans = newPlans(b, o.Prefix)
	if o.SweepInterval > 0 {
		b.bg.Add(1)
		go b.sweeper(o.SweepInterval)
	}
	if o.ReplanInterval > 0 {
		b.bg.Add(1)
		go func() {
			defer b.bg.Done()
			b.plans.Run(b.stop, o.ReplanInterval, b.log, "queuepg")
		}()
	}
	return b, nil
}

// Migrate creates the tables and indexes if they do not exist, and adds
// the columns a newer version needs to tables an older one created.
func (b *Backend) Migrate(ctx context.Context) error {
	// One transaction behind an advisory lock per table prefix: instances
	// starting at once would otherwise race on CREATE ... IF NOT EXISTS
	// (a unique violation in the catalog) or deadlock.
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "scalekit.queuepg.migrate:"+b.counts); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, b.sql().migrate); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, b.ev().migrate); err != nil {
			return err
		}
		// The done counters: created, and seeded from the jobs table, once.
		var existed bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, b.counts).Scan(&existed); err != nil {
			return err
		}
		if !existed {
			if _, err := tx.Exec(ctx, b.sql().migrateCounts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queuepg: Migrate: %w", err)
	}
	return nil
}

// now is the time parameter ($1) of the statements that read the clock.
func (b *Backend) now() any { return serverclock.Param(b.clk) }

// Enqueue is queue.Backend.Enqueue: one statement (one round trip, its
// own transaction); the waiting workers are notified after it committed,
// by the notifier. (A NOTIFY inside the statement would save nothing:
// PostgreSQL serialises the commits of notifying transactions, and with
// 16 concurrent enqueuers it measured 0.5x to 0.7x of this.)
func (b *Backend) Enqueue(ctx context.Context, m *queue.Message) error {
	r, xid, err := b.enqueue(ctx, b.pool, m, enqueueTimes{})
	if err != nil {
		return err
	}
	if xid != "" {
		b.notify(m.Queue)
	}
	return r.Err
}

// EnqueueTx enqueues a job inside tx, in one statement: it exists, and
// workers are woken, only if tx commits. It returns the job's id; with a
// UniqueKey already held it returns the holder's id and a
// *queue.DuplicateError. The job's times (enqueued, run at, unique
// until) are counted from tx's now() (the database's clock, read by the
// statement itself), or from Options.Clock when it is set.
//
// It sends no NOTIFY inside tx: PostgreSQL serialises the commits of
// transactions that notified (one global lock held through the commit),
// which would cap the caller's whole write path. The backend instead
// watches tx's id (pg_xact_status) from its own connection and notifies
// the workers once tx committed, coalesced per queue (about 1ms after the
// commit; nothing when tx rolled back; the workers' PollInterval when tx
// stays open longer than that).
func (b *Backend) EnqueueTx(ctx context.Context, tx pgx.Tx, queueName, kind string, args any, o queue.EnqueueOptions) (string, error) {
	t := clock.Now(b.clk)
	m, err := queue.NewMessage(t, queueName, kind, args, o)
	if err != nil {
		return "", err
	}
	var times enqueueTimes
	if b.clk == nil { // the statement reads tx's now()
		times = enqueueTimes{fromNow: true, runAt: o.RunAt.IsZero(), delay: m.RunAt.Sub(t), uniqueFor: m.UniqueUntil.Sub(t)}
	}
	r, xid, err := b.enqueue(ctx, tx, m, times)
	if err != nil {
		return "", err
	}
	if xid != "" {
		b.notifyAfter(xid, m.Queue)
	}
	return r.ID, r.Err
}

// enqueueTimes says which of a job's times enqueueSQL counts from its
// clock instead of taking them from the message.
type enqueueTimes struct {
	fromNow          bool // enqueued at now, unique until now + uniqueFor
	runAt            bool // with fromNow: run at now + delay
	delay, uniqueFor time.Duration
}

// enqueue stores m with one statement (insertJobSQL, or enqueueUniqueSQL
// for a job with a unique key) on the pool or in a transaction, and
// returns its result and the transaction's id (empty when nothing was
// stored).
func (b *Backend) enqueue(ctx context.Context, q querier, m *queue.Message, times enqueueTimes) (queue.EnqueueResult, string, error) {
	var runAt, uniqueUntil, enqueuedAt any = m.RunAt, nil, m.EnqueuedAt
	if m.UniqueKey != "" && !m.UniqueWhileActive {
		uniqueUntil = m.UniqueUntil
	}
	if times.fromNow {
		uniqueUntil, enqueuedAt = nil, nil
		if times.runAt {
			runAt = nil
		}
	}
	var metadata []byte // NULL for none
	if len(m.Metadata) > 0 {
		var err error
		if metadata, err = json.Marshal(m.Metadata); err != nil {
			return queue.EnqueueResult{}, "", err
		}
	}
	var status, holder, xid string
	if m.UniqueKey == "" {
		// A used id is found by the conflict, without a read on the
		// common path.
		status = "ok"
		err := q.QueryRow(ctx, b.sql().insertJob, b.now(), m.Queue, m.ID, m.Kind, m.Payload, int16(m.Priority), runAt,
			m.MaxAttempts, m.Timeout.Milliseconds(), enqueuedAt, times.delay.Microseconds(), metadata).Scan(&xid)
		if errors.Is(err, pgx.ErrNoRows) {
			status = "race" // the id is used: the same job again, or another
		} else if err != nil {
			return queue.EnqueueResult{}, "", err
		}
	} else {
		err := q.QueryRow(ctx, b.sql().enqueueUnique, b.now(), m.Queue, m.ID, m.Kind, m.Payload, int16(m.Priority), runAt,
			m.MaxAttempts, m.Timeout.Milliseconds(), m.UniqueKey, uniqueUntil, enqueuedAt, m.UniqueWhileActive,
			times.delay.Microseconds(), times.uniqueFor.Microseconds(), metadata).Scan(&status, &holder, &xid)
		if err != nil {
			return queue.EnqueueResult{}, "", err
		}
	}
	r, err := b.settle(ctx, q, m, status, holder)
	return r, xid, err
}

// EnqueueMany is queue.Backend.EnqueueMany: one statement (one round
// trip) stores the batch, in one transaction of its own; the waiting
// workers of its queues are notified after it committed.
func (b *Backend) EnqueueMany(ctx context.Context, ms []*queue.Message) ([]queue.EnqueueResult, error) {
	res, queues, _, err := b.insertMany(ctx, b.pool, ms)
	if err != nil {
		return nil, err
	}
	for _, q := range queues {
		b.notify(q)
	}
	return res, nil
}

// EnqueueManyTx enqueues a batch inside tx in one round trip, as
// queue.Client.EnqueueMany does (a result per job: its id, or the
// holder's id and a *queue.DuplicateError; invalid jobs are reported
// before anything is sent): the jobs exist, and workers are woken (as
// for EnqueueTx), only if tx commits. The jobs' times (enqueued, run
// at, unique until) are read from Options.Clock, or the local clock when
// it is nil, as a Client does (EnqueueTx counts them from tx's now()).
func (b *Backend) EnqueueManyTx(ctx context.Context, tx pgx.Tx, jobs ...queue.EnqueueRequest) ([]queue.EnqueueResult, error) {
	ms, err := queue.NewMessages(clock.Now(b.clk), jobs)
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	res, queues, xid, err := b.insertMany(ctx, tx, ms)
	if err != nil {
		return nil, err
	}
	if xid != "" {
		for _, q := range queues {
			b.notifyAfter(xid, q)
		}
	}
	return res, nil
}

// querier is what insertMany needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// insertMany stores ms with insertManySQL and returns a result per
// message, the queues that got a job and the transaction's id (empty
// when nothing was stored). The rare jobs the statement could not settle
// (an id or key taken by a transaction that committed while it ran) are
// looked up with one more query each.
func (b *Backend) insertMany(ctx context.Context, q querier, ms []*queue.Message) ([]queue.EnqueueResult, []string, string, error) {
	n := len(ms)
	var (
		queues, ids, kinds, ukeys = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		payloads                  = make([][]byte, n)
		prios                     = make([]int16, n)
		runAt, enqueuedAt         = make([]time.Time, n), make([]time.Time, n)
		uuntil                    = make([]*time.Time, n)
		maxAttempts               = make([]int32, n)
		timeouts                  = make([]int64, n)
		active                    = make([]bool, n)
		metadata                  = make([]*string, n) // nil for none
	)
	for i, m := range ms {
		queues[i], ids[i], kinds[i], payloads[i], prios[i] = m.Queue, m.ID, m.Kind, m.Payload, int16(m.Priority)
		runAt[i], maxAttempts[i], timeouts[i], ukeys[i] = m.RunAt, int32(m.MaxAttempts), m.Timeout.Milliseconds(), m.UniqueKey
		enqueuedAt[i], active[i] = m.EnqueuedAt, m.UniqueKey != "" && m.UniqueWhileActive
		if m.UniqueKey != "" && !m.UniqueWhileActive {
			uuntil[i] = &m.UniqueUntil
		}
		if len(m.Metadata) > 0 {
			js, _ := json.Marshal(m.Metadata) // a map of strings always encodes
			metadata[i] = new(string(js))
		}
	}
	rows, err := q.Query(ctx, b.sql().insertMany, b.now(), queues, ids, kinds, payloads, prios, runAt, maxAttempts, timeouts,
		ukeys, uuntil, enqueuedAt, active, metadata)
	if err != nil {
		return nil, nil, "", err
	}
	out := make([]queue.EnqueueResult, 0, n)
	status := make([]string, 0, n)
	var xid string
	for rows.Next() {
		var st, holder, x string
		if err := rows.Scan(&st, &holder, &x); err != nil {
			rows.Close()
			return nil, nil, "", err
		}
		status = append(status, st)
		out = append(out, queue.EnqueueResult{ID: holder})
		xid = cmp.Or(xid, x)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, "", err
	}
	if len(out) != n {
		return nil, nil, "", fmt.Errorf("queuepg: EnqueueMany: %d results for %d jobs", len(out), n)
	}
	var stored []string
	for i, m := range ms {
		if out[i], err = b.settle(ctx, q, m, status[i], out[i].ID); err != nil {
			return nil, nil, "", err
		}
		if status[i] == "ok" && !slices.Contains(stored, m.Queue) {
			stored = append(stored, m.Queue)
		}
	}
	return out, stored, xid, nil
}

// settle turns the status and holder of a job's row of insertManySQL or
// enqueueSQL into its result, with one more query for the rare jobs the
// statement could not settle (an id or key taken by a transaction that
// committed while it ran).
func (b *Backend) settle(ctx context.Context, q querier, m *queue.Message, status, holder string) (queue.EnqueueResult, error) {
	switch status {
	case "ok", "again":
		return queue.EnqueueResult{ID: m.ID}, nil
	case "exists":
		return queue.EnqueueResult{Err: fmt.Errorf("%w: job id %q is already used in queue %q by another job", queue.ErrInvalid, m.ID, m.Queue)}, nil
	case "dup":
		if holder == "" { // the holder committed while the statement ran
			if err := q.QueryRow(ctx, b.sql().uniqueHolder, m.Queue, m.UniqueKey).Scan(&holder); err != nil {
				return queue.EnqueueResult{}, err
			}
		}
		return queue.EnqueueResult{ID: holder, Err: &queue.DuplicateError{UniqueKey: m.UniqueKey, ID: holder}}, nil
	default: // "race": the id was taken while the statement ran
		if _, err := b.existing(ctx, q, m); err != nil {
			if !errors.Is(err, queue.ErrInvalid) {
				return queue.EnqueueResult{}, err
			}
			return queue.EnqueueResult{Err: err}, nil
		}
		return queue.EnqueueResult{ID: m.ID}, nil
	}
}

// existing answers an enqueue whose id is used: nil when it is the same
// job (queue.SameJob: a retried enqueue that landed), else ErrInvalid.
func (b *Backend) existing(ctx context.Context, tx querier, m *queue.Message) (found bool, err error) {
	var kind string
	var payload []byte
	err = tx.QueryRow(ctx, b.sql().existing, m.Queue, m.ID).Scan(&kind, &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if queue.SameJob(&queue.Message{Queue: m.Queue, ID: m.ID, Kind: kind, Payload: payload}, m) {
		return true, nil
	}
	return true, fmt.Errorf("%w: job id %q is already used in queue %q by another job", queue.ErrInvalid, m.ID, m.Queue)
}

func scanJob(row pgx.Row) (*queue.Message, string, time.Time, error) {
	var (
		m           queue.Message
		prio        int16
		state       string
		timeoutMS   int64
		uniqueUntil *time.Time
		finished    *time.Time
		token       *string
		leaseUntil  *time.Time
		started     *time.Time
		progressAt  *time.Time
	)
	err := row.Scan(&m.Queue, &m.ID, &m.Kind, &m.Payload, &prio, &state, &m.Attempt, &m.MaxAttempts, &m.RunAt, &timeoutMS,
		&m.UniqueKey, &uniqueUntil, &m.EnqueuedAt, &m.LastError, &finished, &token, &leaseUntil, &m.UniqueWhileActive,
		&m.Snoozes, &started, &m.Progress.Percent, &m.Progress.Message, &progressAt, &m.Output, &m.Metadata)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	m.Priority, m.State, m.Timeout = queue.Priority(prio), queue.State(state), time.Duration(timeoutMS)*time.Millisecond
	if uniqueUntil != nil {
		m.UniqueUntil = *uniqueUntil
	}
	if finished != nil {
		m.FinishedAt = *finished
	}
	if started != nil {
		m.StartedAt = *started
	}
	if progressAt != nil {
		m.Progress.UpdatedAt = *progressAt
	}
	var tok string
	var until time.Time
	if token != nil {
		tok = *token
	}
	if leaseUntil != nil {
		until = *leaseUntil
	}
	return &m, tok, until, nil
}

// Fetch is queue.Backend.Fetch: one UPDATE ... FROM (SELECT ... FOR
// UPDATE SKIP LOCKED) per attempt, so concurrent workers never lease one
// job twice, sent with the queue's waiting completions in one round trip
// (lane.go) and grown by r.Grow to the slots freed meanwhile; with Wait it sleeps until a NOTIFY for the queue (or
// PollInterval, or Wait) when nothing is due.
func (b *Backend) Fetch(ctx context.Context, r queue.FetchRequest) ([]*queue.Lease, error) {
	deadline := time.Now().Add(r.Wait)
	for {
		var wake <-chan struct{}
		if r.Wait > 0 {
			wake = b.waiter(r.Queue) // before the query: a NOTIFY after it is not missed
		}
		ls, err := b.fetch(ctx, &r)
		if err != nil || len(ls) > 0 || r.Wait <= 0 {
			return ls, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		b.idle.Add(1)
		t := time.NewTimer(min(left, b.poll)) // due scheduled jobs are found within PollInterval
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// fenced runs a fenced statement (extend, release: $1 now, $2 queue,
// $3 id, $4 token, then args) and reports ErrLeaseLost if the lease is
// not held.
func (b *Backend) fenced(ctx context.Context, sql string, l *queue.Lease, args ...any) error {
	tag, err := b.pool.Exec(ctx, sql, append([]any{b.now(), l.Msg.Queue, l.Msg.ID, l.Token}, args...)...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return queue.ErrLeaseLost
	}
	return nil
}

// Extend is queue.Backend.Extend.
func (b *Backend) Extend(ctx context.Context, l *queue.Lease, d time.Duration) error {
	return b.fenced(ctx, b.sql().extend, l, d.Milliseconds())
}

// Progress is queue.Backend.Progress: one fenced UPDATE.
func (b *Backend) Progress(ctx context.Context, l *queue.Lease, percent int, msg string) error {
	return b.fenced(ctx, b.sql().progress, l, percent, msg)
}

// Complete is queue.Backend.Complete. A queue's completions and fetches
// share one round trip at a time (see lane.go): the completions that
// wait while a round is in flight leave together, with the next fetch,
// in one batch, so a busy worker pays about one round trip per batch of
// jobs, not per job.
func (b *Backend) Complete(ctx context.Context, l *queue.Lease, output []byte) error {
	return b.complete(ctx, l, output)
}

// Fail is queue.Backend.Fail.
// A job that dies gives up its while-active unique hold in the same
// statement.
func (b *Backend) Fail(ctx context.Context, l *queue.Lease, errMsg string, retryAt time.Time, dead bool) error {
	var n int
	err := b.pool.QueryRow(ctx, b.sql().fail, b.now(), l.Msg.Queue, l.Msg.ID, l.Token, errMsg, retryAt, dead).Scan(&n)
	if err != nil {
		return err
	}
	if n != 1 {
		return queue.ErrLeaseLost
	}
	b.lowerFloor(l.Msg.Queue) // a retry's run_at is this process's clock
	return nil
}

// Release is queue.Backend.Release.
func (b *Backend) Release(ctx context.Context, l *queue.Lease, snoozeUntil time.Time) error {
	var until *time.Time
	if !snoozeUntil.IsZero() {
		until = &snoozeUntil
	}
	err := b.fenced(ctx, b.sql().release, l, until)
	if err == nil {
		b.lowerFloor(l.Msg.Queue)
		b.notify(l.Msg.Queue)
	}
	return err
}

// Job is queue.Backend.Job: one query.
func (b *Backend) Job(ctx context.Context, queueName, id string) (*queue.Message, error) {
	m, _, _, err := scanJob(b.pool.QueryRow(ctx, b.sql().job, b.now(), queueName, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s in queue %s", queue.ErrNotFound, id, queueName)
	}
	return m, err
}

// Counts is queue.Backend.Counts: one query that never scans the queue's
// done jobs: the jobs waiting, running and dead are counted on their
// partial indexes (they are few), the done ones read from a counter per
// queue (<Prefix>_counts) that completions, Sweep and Delete keep (a
// done job deleted by hand, not by Delete, leaves it one too high).
func (b *Backend) Counts(ctx context.Context, queueName string) (queue.Counts, error) {
	var c queue.Counts
	var oldestMS float64
	err := b.pool.QueryRow(ctx, b.sql().counts, b.now(), queueName).Scan(&c.Pending, &c.Scheduled, &c.Active, &c.Retry, &c.Dead, &c.Done, &oldestMS, &c.Cancelled)
	c.OldestPending = time.Duration(oldestMS * float64(time.Millisecond))
	return c, err
}

// Dead is queue.Backend.Dead.
func (b *Backend) Dead(ctx context.Context, queueName string, limit int) ([]*queue.Message, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := b.pool.Query(ctx, b.sql().dead, queueName, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*queue.Message
	for rows.Next() {
		m, _, _, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Requeue is queue.Backend.Requeue.
func (b *Backend) Requeue(ctx context.Context, queueName, id string) error {
	tag, err := b.pool.Exec(ctx, b.sql().requeue, b.now(), queueName, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%w: no dead or cancelled job %s in queue %s", queue.ErrNotFound, id, queueName)
	}
	b.lowerFloor(queueName)
	b.notify(queueName)
	return nil
}

// Pause is queue.Backend.Pause: a row in <Prefix>_paused.
func (b *Backend) Pause(ctx context.Context, queueName string) error {
	_, err := b.pool.Exec(ctx, b.sql().pause, queueName)
	return err
}

// Resume is queue.Backend.Resume.
func (b *Backend) Resume(ctx context.Context, queueName string) error {
	_, err := b.pool.Exec(ctx, b.sql().resume, queueName)
	return err
}

// Paused is queue.Backend.Paused: one primary-key lookup.
func (b *Backend) Paused(ctx context.Context, queueName string) (bool, error) {
	var p bool
	err := b.pool.QueryRow(ctx, b.sql().paused, queueName).Scan(&p)
	return p, err
}

// Cancel is queue.Backend.Cancel: one statement cancels the job and drops
// its unique hold; a second reads why when it cancelled nothing.
func (b *Backend) Cancel(ctx context.Context, queueName, id string) error {
	var n int
	if err := b.pool.QueryRow(ctx, b.sql().cancel, b.now(), queueName, id).Scan(&n); err != nil || n == 1 {
		return err
	}
	var state string
	err := b.pool.QueryRow(ctx, b.sql().cancelState, queueName, id).Scan(&state)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %s in queue %s", queue.ErrNotFound, id, queueName)
	case err != nil:
		return err
	case state == string(queue.Cancelled):
		return nil
	}
	return fmt.Errorf("%w: job %s in queue %s is %s", queue.ErrFinished, id, queueName, state)
}

// Delete is queue.Backend.Delete: the job's row and its unique hold go in
// one statement.
func (b *Backend) Delete(ctx context.Context, queueName, id string) error {
	var n int
	err := b.pool.QueryRow(ctx, b.sql().delete, queueName, id).Scan(&n)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: %s in queue %s", queue.ErrNotFound, id, queueName)
	}
	return nil
}

// Sweep deletes done jobs past Retention, dead and cancelled jobs past
// DeadRetention and the unique holds that no longer hold (expired, or
// while-active of a finished job); it returns how many jobs it deleted.
func (b *Backend) Sweep(ctx context.Context) (int64, error) {
	var deleted int64
	err := b.pool.QueryRow(ctx, b.sql().sweepJobs, b.now(), b.retention.Milliseconds(), b.deadRet.Milliseconds()).Scan(&deleted)
	if err != nil {
		return 0, fmt.Errorf("queuepg: Sweep: %w", err)
	}
	if _, err := b.pool.Exec(ctx, b.sql().sweepUnique, b.now()); err != nil {
		return deleted, fmt.Errorf("queuepg: Sweep: %w", err)
	}
	return deleted, nil
}

func (b *Backend) sweeper(interval time.Duration) {
	defer b.bg.Done()
	every.Run(b.stop, interval, func(ctx context.Context) {
		if _, err := b.Sweep(ctx); err != nil {
			b.log.Warn("queuepg: sweep failed", slog.Any("error", err))
		}
	})
}

// waiter returns a channel closed at the next NOTIFY for queueName,
// starting the listener on first use.
func (b *Backend) waiter(queueName string) <-chan struct{} {
	b.lmu.Lock()
	defer b.lmu.Unlock()
	if b.pollOnly {
		return make(chan struct{}) // never closed: plain polling
	}
	if !b.listener {
		select {
		case <-b.stop:
			ch := make(chan struct{})
			return ch // closed backend: plain polling
		default:
		}
		b.listener = true
		b.bg.Add(1)
		go b.listen()
	}
	ch := b.waiters[queueName]
	if ch == nil {
		ch = make(chan struct{})
		b.waiters[queueName] = ch
	}
	return ch
}

func (b *Backend) wakeAll(queueName string) {
	b.lmu.Lock()
	defer b.lmu.Unlock()
	for q, ch := range b.waiters {
		if queueName == "" || q == queueName {
			close(ch)
			delete(b.waiters, q)
		}
	}
}

// listen holds one connection in LISTEN and wakes the waiters of each
// notified queue; it reconnects after errors (waking everybody, since
// notifications may have been missed).
func (b *Backend) listen() {
	defer b.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-b.stop
		cancel()
	}()
	wait := pause.Growing{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for ctx.Err() == nil {
		err := b.listenOnce(ctx)
		b.wakeAll("")
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("queuepg: LISTEN connection lost; reconnecting", slog.Any("error", err))
		if !wait.Wait(ctx.Done()) {
			return
		}
	}
}

func (b *Backend) listenOnce(ctx context.Context) error {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{b.channel}.Sanitize()); err != nil {
		return err
	}
	b.listening.Store(true)
	defer func() {
		b.listening.Store(false)
		// The connection goes back to the pool: stop listening on it.
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := conn.Exec(c, `UNLISTEN *`); err != nil {
			conn.Conn().Close(c)
		}
	}()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		b.wakeAll(n.Payload)
	}
}

// Close stops the listener, the notifier, the sweeper and the replanner. It does not close the pool.
func (b *Backend) Close() error {
	b.once.Do(func() {
		// Under the locks that start the listener and the notifier: none
		// starts (bg.Add) once Close waits.
		b.nmu.Lock()
		b.lmu.Lock()
		close(b.stop)
		b.lmu.Unlock()
		b.nmu.Unlock()
	})
	b.bg.Wait()
	return nil
}

var _ queue.Backend = (*Backend)(nil)
