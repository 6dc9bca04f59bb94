package queueredis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/queuex"
	"github.com/scalekit-go/scalekit/internal/redisx"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/queue"
)

// DefaultTimeout bounds one round trip to Redis unless Options.Timeout
// says otherwise.
const DefaultTimeout = 500 * time.Millisecond

// maxBlock bounds one wait of a Fetch on the queue's wake stream: a wake
// signal that never comes (lost in a failover, or a job whose due time
// another process changed without one) delays a job by at most this.
const maxBlock = time.Second

// Options configures New. Client is required.
type Options struct {
	// Client is the Redis: a *redis.Client, *redis.ClusterClient (every
	// key of one queue shares a hash tag, so each operation is one script
	// in one slot) or any UniversalClient. Its options need
	// ContextTimeoutEnabled (or a ReadTimeout no longer than Timeout), or
	// New refuses it: otherwise a paused Redis holds every call for the
	// client's ReadTimeout. The server must be Redis 7.0 or later (the
	// scripts declare flags) and should run with maxmemory-policy
	// noeviction (see the package doc).
	Client redis.UniversalClient
	// Prefix starts every key's hash tag: {Prefix:queue}:... . It must not
	// contain '{' or '}'. Default: "queue".
	Prefix string
	// Timeout bounds each round trip (a Fetch with Wait is several, each
	// bounded). Default: DefaultTimeout (500ms).
	Timeout time.Duration
	// Retention is how long done jobs are kept for Job and Counts.
	// Default: 24h.
	Retention time.Duration
	// DeadRetention is how long dead and cancelled jobs are kept for Dead
	// and Requeue;
	// a Fetch on the queue removes those past it. Default:
	// queue.DefaultDeadRetention (14 days).
	DeadRetention time.Duration
	// Clock replaces the system clock (see package clock); nil is the
	// server's clock (Redis TIME), so that the clocks of the fleet do not
	// matter for leases and due times.
	Clock clock.Clock
}

// Backend is a queue.Backend on Redis. It is safe for concurrent use and
// keeps no goroutine past the requests it serves (a Fetch that waits
// uses one for its XREAD BLOCK, and a queue's batch of completions and
// fetches one while requests wait; see the package doc), so it has no
// Close; close the client when done.
type Backend struct {
	c         redis.UniversalClient
	prefix    string
	timeout   time.Duration
	retention time.Duration
	deadRet   time.Duration
	clk       clock.Clock
	reg       registry // the queues added to the set of names (list.go)
	lanes     sync.Map // queue name -> *lane: its batch of completions and fetches (batch.go)
	enqueues  sync.Map // queue name -> *enqueueLane: its Enqueues taking turns (enqueue.go)
}

// New returns a Backend, or an error naming the option to fix. It does
// not touch Redis.
func New(o Options) (*Backend, error) {
	bad := func(f string, args ...any) (*Backend, error) {
		return nil, fmt.Errorf("%w: queueredis: Options."+f, append([]any{queue.ErrInvalid}, args...)...)
	}
	if o.Client == nil {
		return bad("Client is required")
	}
	if o.Prefix == "" {
		o.Prefix = "queue"
	}
	if strings.ContainsAny(o.Prefix, "{}") || len(o.Prefix) > 200 {
		return bad("Prefix %q must be at most 200 bytes without '{' or '}' (it is part of the hash tag)", o.Prefix)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Timeout < 0 {
		return bad("Timeout must be > 0, got %v", o.Timeout)
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	if o.Retention < time.Millisecond {
		return bad("Retention must be >= 1ms, got %v", o.Retention)
	}
	if o.DeadRetention == 0 {
		o.DeadRetention = queue.DefaultDeadRetention
	}
	if o.DeadRetention < time.Millisecond {
		return bad("DeadRetention must be >= 1ms, got %v", o.DeadRetention)
	}
	if err := redisx.CheckClientTimeouts(o.Client, o.Timeout); err != nil {
		return bad("Client: %v", err)
	}
	return &Backend{c: o.Client, prefix: o.Prefix, timeout: o.Timeout, retention: o.Retention, deadRet: o.DeadRetention, clk: o.Clock}, nil
}

// now is the scripts' time argument (ARGV[2], read by now_us).
func (b *Backend) now() int64 { return serverclock.Micros(b.clk) }

// tag is the hash-tagged start of every key of queue q.
func (b *Backend) tag(q string) string { return "{" + b.prefix + ":" + q + "}:" }

// keys are the 16 keys every script but enqueueScript gets (see
// scripts.go); id and uniqueKey may be empty when the script does not use
// them.
func (b *Backend) keys(q, id, uniqueKey string) []string {
	t := b.tag(q)
	return []string{
		t + "ready:default", t + "ready:high", t + "ready:low",
		t + "scheduled", t + "retry", t + "active", t + "done", t + "dead",
		t + "wake", t + "deadseq", t + "job:" + id, t + "unique:" + uniqueKey, t + "deadat", t + "cancelled",
		t + "ids", t + "ids:built",
	}
}

// run runs a script under Timeout. A nil reply is returned as redis.Nil;
// other errors say which operation failed, and whether Redis was too slow.
func (b *Backend) run(ctx context.Context, op string, s *redis.Script, keys []string, args ...any) (any, error) {
	tctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	v, err := s.Run(tctx, b.c, keys, args...).Result()
	if err == nil || errors.Is(err, redis.Nil) {
		return v, err
	}
	if ctx.Err() == nil && tctx.Err() != nil {
		return nil, fmt.Errorf("queueredis: %s: Redis did not answer within %v: %w", op, b.timeout, err)
	}
	return nil, fmt.Errorf("queueredis: %s: %w", op, err)
}

func micro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicro(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us)
}

// Enqueue is queue.Backend.Enqueue: one script (and, at a Backend's
// first enqueue to a queue, one SADD to the set of queue names: see
// Queues) stores the job, takes its
// unique key (or returns the *queue.DuplicateError naming the holder)
// and wakes the waiting fetches. Storing the same job again (queue.SameJob:
// same id, kind and payload, as when go-redis retries a call whose reply
// was lost, or the caller retries an Enqueue that timed out) succeeds
// without a second job; another message with a used id is
// queue.ErrInvalid. The Enqueues of one queue that come while another is
// in flight wait for it and leave together, one script for all of them
// (see enqueue.go).
func (b *Backend) Enqueue(ctx context.Context, m *queue.Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	if err := b.register(ctx, m.Queue); err != nil {
		return err
	}
	return b.enqueue(ctx, m)
}

// enqueueOne stores m with its own enqueueScript; callFailed reports an
// error of the call (Redis failed or ctx ended), not of the job.
func (b *Backend) enqueueOne(ctx context.Context, n *enqueueNames, m *queue.Message) (callFailed bool, err error) {
	v, err := b.run(ctx, "Enqueue", enqueueScript, enqueueKeys(n, m), b.enqueueArgs(n, m)...)
	if err != nil {
		return true, err
	}
	r, _ := v.([]any)
	status, _ := at[string](r, 0)
	detail, _ := at[string](r, 1)
	res, ok := enqueueResult(m, status, detail)
	if !ok {
		return false, fmt.Errorf("queueredis: Enqueue: unexpected reply %v", v)
	}
	return false, res.Err
}

// EnqueueMany is queue.Backend.EnqueueMany: one script per queue of the
// batch (the keys of one queue share a hash slot; a batch spanning
// several queues takes one round trip per queue, in the order the queues
// first appear), each storing its jobs in order as Enqueue would and
// waking the queue's fetches once. A script runs alone on its Redis
// while it stores its batch: keep batches to a few thousand jobs.
func (b *Backend) EnqueueMany(ctx context.Context, ms []*queue.Message) ([]queue.EnqueueResult, error) {
	var order []string
	byQueue := map[string][]int{}
	for i, m := range ms {
		if err := checkMessage(m); err != nil {
			return nil, fmt.Errorf("queueredis: EnqueueMany: message %d: %w", i, err)
		}
		if _, ok := byQueue[m.Queue]; !ok {
			order = append(order, m.Queue)
		}
		byQueue[m.Queue] = append(byQueue[m.Queue], i)
	}
	out := make([]queue.EnqueueResult, len(ms))
	for _, q := range order {
		if err := b.register(ctx, q); err != nil {
			return nil, err
		}
		idx := byQueue[q]
		args := make([]any, 0, 2+enqueueFields*len(idx))
		args = append(args, b.base(q)...)
		for _, i := range idx {
			args = append(args, jobArgs(ms[i])...)
		}
		v, err := b.run(ctx, "EnqueueMany", enqueueManyScript, b.keys(q, "", ""), args...)
		if err != nil {
			return nil, err
		}
		r, _ := v.([]any)
		if len(r) != 2*len(idx) {
			return nil, fmt.Errorf("queueredis: EnqueueMany: %d replies for %d jobs", len(r)/2, len(idx))
		}
		for k, i := range idx {
			status, _ := at[string](r, 2*k)
			detail, _ := at[string](r, 2*k+1)
			var ok bool
			if out[i], ok = enqueueResult(ms[i], status, detail); !ok {
				return nil, fmt.Errorf("queueredis: EnqueueMany: unexpected reply %v %v", status, detail)
			}
		}
	}
	return out, nil
}

// checkMessage refuses a message the scripts cannot store.
func checkMessage(m *queue.Message) error {
	if err := queuex.CheckName(queue.ErrInvalid, "queue", m.Queue); err != nil {
		return err
	}
	switch {
	case m.ID == "":
		return fmt.Errorf("%w: queueredis: Message.ID is required", queue.ErrInvalid)
	case m.Priority < queue.Default || m.Priority > queue.Low:
		return fmt.Errorf("%w: queueredis: Message.Priority must be High, Default or Low, got %d", queue.ErrInvalid, m.Priority)
	}
	return nil
}

// base is the first two ARGV of a script on queue q: its job hashes'
// prefix and now.
func (b *Backend) base(q string) []any { return []any{b.tag(q) + "job:", b.now()} }

// jobArgs are m's fields as enqueueManyScript and publishScript take
// them (enqueueLua): enqueueFields of them.
func jobArgs(m *queue.Message) []any {
	return appendJobArgs(make([]any, 0, enqueueFields), m, false)
}

// appendJobArgs appends m's fields (enqueueLua) to args: enqueueFields of
// them, or, when short and the last six are empty or 0, enqueueShort.
func appendJobArgs(args []any, m *queue.Message, short bool) []any {
	args = append(args, m.ID, m.Kind, m.Payload, int(m.Priority), micro(m.RunAt), int64(m.Timeout), micro(m.EnqueuedAt), m.MaxAttempts)
	if short && m.UniqueKey == "" && m.Attempt == 0 && m.LastError == "" && len(m.Metadata) == 0 {
		return args
	}
	var uniqueUntil int64
	active := 0
	if m.UniqueKey != "" && m.UniqueWhileActive {
		active = 1
	} else if m.UniqueKey != "" {
		uniqueUntil = micro(m.UniqueUntil)
	}
	var metadata []byte // empty for none
	if len(m.Metadata) > 0 {
		metadata, _ = json.Marshal(m.Metadata) // a map of strings always encodes
	}
	return append(args, m.UniqueKey, uniqueUntil, active, m.Attempt, m.LastError, metadata)
}

// enqueueKeys are enqueueScript's keys for m (see enqueueScript), from
// n, the names of its queue's keys (its lane's).
func enqueueKeys(n *enqueueNames, m *queue.Message) []string {
	uk := n.unique // the key of an empty unique key: the script does not touch it
	if m.UniqueKey != "" {
		uk += m.UniqueKey
	}
	return []string{n.ready[m.Priority], n.scheduled, n.done, n.wake, n.job + m.ID, uk, n.ids}
}

// readyName is the name of each priority's ready list (Backend.keys).
var readyName = [...]string{queue.Default: "ready:default", queue.High: "ready:high", queue.Low: "ready:low"}

// enqueueNames are the names of a queue's keys an enqueue uses, made once
// per queue instead of once per call.
type enqueueNames struct {
	ready                                   [len(readyName)]string
	scheduled, done, wake, job, unique, ids string
	jobArg                                  any // job as a script argument (an any made once)
}

func (b *Backend) enqueueNamesFor(q string) enqueueNames {
	t := b.tag(q)
	n := enqueueNames{scheduled: t + "scheduled", done: t + "done", wake: t + "wake", job: t + "job:", unique: t + "unique:", ids: t + "ids"}
	for p, name := range readyName {
		n.ready[p] = t + name
	}
	n.jobArg = n.job
	return n
}

// enqueueArgs are enqueueScript's arguments for m (n: the names of its
// queue's keys): the base, then its fields, in the short form when it
// can.
func (b *Backend) enqueueArgs(n *enqueueNames, m *queue.Message) []any {
	return appendJobArgs(append(make([]any, 0, 2+enqueueFields), n.jobArg, b.now()), m, true)
}

// enqueueResult reads enqueue's reply for m (status and its state or
// holder); ok is false for a reply it does not know.
func enqueueResult(m *queue.Message, status, detail string) (r queue.EnqueueResult, ok bool) {
	switch status {
	case "ok":
		return queue.EnqueueResult{ID: m.ID}, true
	case "dup":
		return queue.EnqueueResult{ID: detail, Err: &queue.DuplicateError{UniqueKey: m.UniqueKey, ID: detail}}, true
	case "exists":
		return queue.EnqueueResult{Err: fmt.Errorf("%w: job id %q is already used in queue %q", queue.ErrInvalid, m.ID, m.Queue)}, true
	}
	return r, false
}

// fullOrder is o without repeats, followed by the priorities it left out:
// every fetch looks at every priority.
func fullOrder(o [3]queue.Priority) [3]int {
	var out [3]int
	var seen [3]bool
	n := 0
	for _, p := range append(o[:], queue.High, queue.Default, queue.Low) {
		if p >= queue.Default && p <= queue.Low && !seen[p] && n < 3 {
			seen[p] = true
			out[n] = int(p)
			n++
		}
	}
	return out
}

// Fetch is queue.Backend.Fetch: one script, in its queue's batch (with
// the completions waiting, Max raised by r.Grow; see the package doc),
// moves due and expired jobs to the ready lists and leases up to Max in
// the request's priority order.
// With Wait, when nothing is due, it blocks on the queue's wake stream
// (XREAD BLOCK from the id the script saw, so no signal between the
// script and the wait is missed) until an enqueue, the next due time or
// lease deadline, or at most 1s, then looks again; it returns at once
// when ctx ends.
func (b *Backend) Fetch(ctx context.Context, r queue.FetchRequest) ([]*queue.Lease, error) {
	switch {
	case r.Max < 1:
		return nil, fmt.Errorf("%w: queueredis: FetchRequest.Max must be >= 1, got %d", queue.ErrInvalid, r.Max)
	case r.Lease <= 0:
		return nil, fmt.Errorf("%w: queueredis: FetchRequest.Lease must be > 0, got %v", queue.ErrInvalid, r.Lease)
	}
	order := fullOrder(r.Order)
	deadline := time.Now().Add(r.Wait)
	for {
		rep := b.fetchOnce(ctx, r, order)
		if rep.err != nil || len(rep.leases) > 0 || r.Wait <= 0 || !time.Now().Before(deadline) {
			return rep.leases, rep.err
		}
		if err := b.wait(ctx, b.tag(r.Queue)+"wake", rep.lastID, fetchWait(deadline, rep.next)); err != nil {
			return nil, err
		}
	}
}

// wait blocks until the wake stream has an entry after lastID, or for d.
// The XREAD runs in a goroutine so that wait returns as soon as ctx ends
// (go-redis only gives up a blocking read at its deadline); that
// goroutine then ends by itself within d (or at once if the client is
// closed) and gives its connection back to the pool.
func (b *Backend) wait(ctx context.Context, stream, lastID string, d time.Duration) error {
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, d+b.timeout)
		defer cancel()
		done <- b.c.XRead(wctx, &redis.XReadArgs{Streams: []string{stream, lastID}, Count: 1, Block: d}).Err()
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-done:
		if err == nil || errors.Is(err, redis.Nil) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("queueredis: Fetch: waiting for jobs: %w", err)
	}
}

// fenced runs an outcome script whose integer reply 0 means the lease is
// no longer held.
func (b *Backend) fenced(ctx context.Context, op string, s *redis.Script, l *queue.Lease, args ...any) (any, error) {
	base := []any{b.tag(l.Msg.Queue) + "job:", b.now(), l.Msg.ID, l.Token}
	v, err := b.run(ctx, op, s, b.keys(l.Msg.Queue, l.Msg.ID, ""), append(base, args...)...)
	if err != nil {
		return nil, err
	}
	if n, ok := v.(int64); ok && n == 0 {
		return nil, queue.ErrLeaseLost
	}
	return v, nil
}

// Extend is queue.Backend.Extend; it also moves l.Until.
func (b *Backend) Extend(ctx context.Context, l *queue.Lease, d time.Duration) error {
	v, err := b.fenced(ctx, "Extend", extendScript, l, d.Microseconds())
	if err != nil {
		return err
	}
	s, _ := v.(string)
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("queueredis: Extend: unexpected reply %v", v)
	}
	l.Until = fromMicro(us)
	return nil
}

// Complete is queue.Backend.Complete, batched with the other completions
// and the fetches of its queue (see the package doc). The done job's
// hash expires after Options.Retention. Completing the same lease again
// succeeds (a retried call), as does failing it again in Fail.
func (b *Backend) Complete(ctx context.Context, l *queue.Lease, output []byte) error {
	return b.complete(ctx, l, output)
}

// Progress is queue.Backend.Progress: one fenced script.
func (b *Backend) Progress(ctx context.Context, l *queue.Lease, percent int, msg string) error {
	_, err := b.fenced(ctx, "Progress", progressScript, l, percent, msg)
	return err
}

// Fail is queue.Backend.Fail.
func (b *Backend) Fail(ctx context.Context, l *queue.Lease, errMsg string, retryAt time.Time, dead bool) error {
	d := 0
	if dead {
		d = 1
	}
	_, err := b.fenced(ctx, "Fail", failScript, l, errMsg, micro(retryAt), d)
	return err
}

// Release is queue.Backend.Release: the job goes back to the front of its
// ready list, or, snoozed, to the scheduled jobs.
func (b *Backend) Release(ctx context.Context, l *queue.Lease, snoozeUntil time.Time) error {
	until := ""
	if !snoozeUntil.IsZero() {
		until = strconv.FormatInt(micro(snoozeUntil), 10)
	}
	_, err := b.fenced(ctx, "Release", releaseScript, l, until)
	return err
}

// Job is queue.Backend.Job. A scheduled or retry job whose time came, and
// an active job whose lease ran out, are reported as pending: that is
// what the next Fetch sees.
func (b *Backend) Job(ctx context.Context, queueName, id string) (*queue.Message, error) {
	v, err := b.run(ctx, "Job", jobScript, b.keys(queueName, id, ""), b.tag(queueName)+"job:", b.now(), id)
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: %s in queue %s", queue.ErrNotFound, id, queueName)
	}
	if err != nil {
		return nil, err
	}
	m, _, _, err := parseRecord(queueName, v)
	return m, err
}

// Counts is queue.Backend.Counts, in one script. Pending counts the jobs
// a Fetch would take now (due scheduled and retry jobs, expired leases);
// OldestPending is the age of the oldest of the ready lists' heads and
// of the earliest due job, which is the oldest job unless a scheduled
// job became due while younger jobs were already waiting.
func (b *Backend) Counts(ctx context.Context, queueName string) (queue.Counts, error) {
	v, err := b.run(ctx, "Counts", countsScript, b.keys(queueName, "", ""), b.tag(queueName)+"job:", b.now(), b.retention.Microseconds())
	if err != nil {
		return queue.Counts{}, err
	}
	r, _ := v.([]any)
	var n [8]int64
	for i := range n {
		var ok bool
		if n[i], ok = at[int64](r, i); !ok {
			return queue.Counts{}, fmt.Errorf("queueredis: Counts: unexpected reply %v", v)
		}
	}
	return queue.Counts{Pending: n[0], Scheduled: n[1], Active: n[2], Retry: n[3], Dead: n[4], Done: n[5], Cancelled: n[7],
		OldestPending: time.Duration(n[6]) * time.Microsecond}, nil
}

// Dead is queue.Backend.Dead; limit <= 0 (or more than 1000) lists 1000.
func (b *Backend) Dead(ctx context.Context, queueName string, limit int) ([]*queue.Message, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	v, err := b.run(ctx, "Dead", deadScript, b.keys(queueName, "", ""), b.tag(queueName)+"job:", b.now(), limit)
	if err != nil {
		return nil, err
	}
	recs, _ := v.([]any)
	out := make([]*queue.Message, 0, len(recs))
	for _, rec := range recs {
		m, _, _, err := parseRecord(queueName, rec)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Requeue is queue.Backend.Requeue.
func (b *Backend) Requeue(ctx context.Context, queueName, id string) error {
	v, err := b.run(ctx, "Requeue", requeueScript, b.keys(queueName, id, ""), b.tag(queueName)+"job:", b.now(), id)
	if err != nil {
		return err
	}
	if n, _ := v.(int64); n != 1 {
		return fmt.Errorf("%w: no dead or cancelled job %s in queue %s", queue.ErrNotFound, id, queueName)
	}
	return nil
}

// Pause is queue.Backend.Pause: the key {p:q}:paused (and the queue in
// the set of names, see Queues).
func (b *Backend) Pause(ctx context.Context, queueName string) error {
	if err := b.register(ctx, queueName); err != nil {
		return err
	}
	return b.cmd(ctx, "Pause", func(ctx context.Context) error { return b.c.Set(ctx, b.tag(queueName)+"paused", "1", 0).Err() })
}

// Resume is queue.Backend.Resume.
func (b *Backend) Resume(ctx context.Context, queueName string) error {
	return b.cmd(ctx, "Resume", func(ctx context.Context) error { return b.c.Del(ctx, b.tag(queueName)+"paused").Err() })
}

// Paused is queue.Backend.Paused.
func (b *Backend) Paused(ctx context.Context, queueName string) (bool, error) {
	var n int64
	err := b.cmd(ctx, "Paused", func(ctx context.Context) (err error) {
		n, err = b.c.Exists(ctx, b.tag(queueName)+"paused").Result()
		return err
	})
	return n == 1, err
}

// cmd runs one command under Timeout; its error names op, and whether
// Redis was too slow, as run's do.
func (b *Backend) cmd(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	tctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	if err := fn(tctx); err != nil {
		if ctx.Err() == nil && tctx.Err() != nil {
			return fmt.Errorf("queueredis: %s: Redis did not answer within %v: %w", op, b.timeout, err)
		}
		return fmt.Errorf("queueredis: %s: %w", op, err)
	}
	return nil
}

// Cancel is queue.Backend.Cancel: one script takes the job out of its
// queue's lists and sets, drops its lease and while-active unique hold
// and marks it cancelled.
func (b *Backend) Cancel(ctx context.Context, queueName, id string) error {
	v, err := b.run(ctx, "Cancel", cancelScript, b.keys(queueName, id, ""), b.tag(queueName)+"job:", b.now(), id)
	if err != nil {
		return err
	}
	switch st, _ := v.(string); st {
	case "ok", string(queue.Cancelled):
		return nil
	case "":
		return fmt.Errorf("%w: %s in queue %s", queue.ErrNotFound, id, queueName)
	default:
		return fmt.Errorf("%w: job %s in queue %s is %s", queue.ErrFinished, id, queueName, st)
	}
}

// Delete is queue.Backend.Delete: one script removes the job from every
// list and set of its queue, its hash and the unique hold it has.
func (b *Backend) Delete(ctx context.Context, queueName, id string) error {
	v, err := b.run(ctx, "Delete", deleteScript, b.keys(queueName, id, ""), b.tag(queueName)+"job:", b.now(), id)
	if err != nil {
		return err
	}
	if n, _ := v.(int64); n != 1 {
		return fmt.Errorf("%w: %s in queue %s", queue.ErrNotFound, id, queueName)
	}
	return nil
}

// bytesOrNil is s as bytes, nil when empty.
func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// at reads element i of a script's array reply as a T.
func at[T any](r []any, i int) (T, bool) {
	var zero T
	if i >= len(r) {
		return zero, false
	}
	v, ok := r[i].(T)
	return v, ok
}

// parseRecord turns a script's job record (pairs of a field and its
// value, 'id' among them; the last pair of a name wins: see record in
// the preamble) into a Message, its lease token and deadline. Fields it
// does not know are skipped.
func parseRecord(queueName string, rec any) (*queue.Message, string, time.Time, error) {
	r, _ := rec.([]any)
	var vals [1 + len(fields)]string // the id, then fields
	seen := false
	for i := 0; i+1 < len(r); i += 2 {
		name, ok1 := r[i].(string)
		val, ok2 := r[i+1].(string)
		if !ok1 || !ok2 {
			return nil, "", time.Time{}, fmt.Errorf("queueredis: malformed job record %v", rec)
		}
		if name == "id" {
			vals[0], seen = val, true
		} else if k, ok := fieldIndex[name]; ok {
			vals[k+1] = val
		}
	}
	if len(r)%2 != 0 || !seen {
		return nil, "", time.Time{}, fmt.Errorf("queueredis: malformed job record %v", rec)
	}
	str := func(i int) string { return vals[i] }
	var bad error
	num := func(i int) int64 {
		s := str(i)
		if s == "" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil && bad == nil {
			bad = fmt.Errorf("queueredis: job %s: field %s is %q, want an integer", str(0), fields[i-1], s)
		}
		return n
	}
	m := &queue.Message{
		ID: str(0), Queue: queueName, Kind: str(1), Payload: []byte(str(2)), Priority: queue.Priority(num(3)),
		State: queue.State(str(4)), Attempt: int(num(5)), MaxAttempts: int(num(6)), RunAt: fromMicro(num(7)),
		Timeout: time.Duration(num(8)), UniqueKey: str(9), UniqueUntil: fromMicro(num(10)), EnqueuedAt: fromMicro(num(11)),
		LastError: str(12), FinishedAt: fromMicro(num(13)), UniqueWhileActive: str(16) == "1", Snoozes: int(num(17)),
		StartedAt: fromMicro(num(18)), Output: bytesOrNil(str(22)),
		Progress: queue.Progress{Percent: int(num(19)), Message: str(20), UpdatedAt: fromMicro(num(21))},
	}
	if md := str(23); md != "" {
		if err := json.Unmarshal([]byte(md), &m.Metadata); err != nil && bad == nil {
			bad = fmt.Errorf("queueredis: job %s: field metadata is %q, want a JSON object of strings: %w", str(0), md, err)
		}
	}
	until := fromMicro(num(15))
	if bad != nil {
		return nil, "", time.Time{}, bad
	}
	return m, str(14), until, nil
}

var _ queue.Backend = (*Backend)(nil)
