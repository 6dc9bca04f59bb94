package queue

import (
	"container/heap"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/token"
)

// MemoryBackendOptions configures NewMemoryBackend. The zero value works.
type MemoryBackendOptions struct {
	// Retention is how long done jobs are kept for status queries.
	// Default: 24h.
	Retention time.Duration
	// DeadRetention is how long dead and cancelled jobs are kept for Dead
	// and Requeue.
	// Default: DefaultDeadRetention (14 days).
	DeadRetention time.Duration
	// Clock replaces the system clock (see package clock); nil is the real
	// time. Due times, leases and retentions follow it.
	Clock clock.Clock
}

// MemoryBackend is a Backend in process memory: jobs survive neither a
// restart nor a crash of the process, so it is for tests, development and
// work that may be lost. It is safe for concurrent use.
type MemoryBackend struct {
	o      MemoryBackendOptions
	mu     sync.Mutex
	queues map[string]*memQueue
	unique map[string]uniqueHold
	// uniqueCap is the size of unique at which Enqueue next drops the
	// holds that no longer hold.
	uniqueCap int
	paused    map[string]bool
	// subs are the subscriptions: topic -> queue (events.go).
	subs map[string]map[string]bool
	// named are the queues that received a job (Queues).
	named map[string]bool
}

// uniqueHold is a unique key's holder: until a time, or while its job is
// not finished (whileActive).
type uniqueHold struct {
	id          string
	until       time.Time
	whileActive bool
}

// holds reports whether h still holds its key at now.
func (b *MemoryBackend) holds(queue string, h uniqueHold, now time.Time) bool {
	if !h.whileActive {
		return now.Before(h.until)
	}
	q := b.queues[queue]
	if q == nil {
		return false
	}
	j := q.jobs[h.id]
	return j != nil && j.m.State != Done && j.m.State != Dead && j.m.State != Cancelled
}

// sweepUnique drops the holds that no longer hold, once their number
// doubled since the last sweep: the map stays proportional to the keys
// held, at an amortised constant cost per enqueue.
func (b *MemoryBackend) sweepUnique(now time.Time) {
	if len(b.unique) < b.uniqueCap {
		return
	}
	for k, h := range b.unique {
		queue, _, _ := strings.Cut(k, "\x00")
		if !b.holds(queue, h, now) {
			delete(b.unique, k)
		}
	}
	b.uniqueCap = max(1024, 2*len(b.unique))
}

type memQueue struct {
	ready  [3][]*memJob // due jobs, FIFO per priority
	timed  timeHeap     // scheduled and retry jobs by RunAt
	active map[string]*memJob
	jobs   map[string]*memJob
	dead   []*memJob
	done   []*memJob // in finish order, for retention
	// cancelled are in cancel order, for the dead retention.
	cancelled []*memJob
	wake      chan struct{}
}

type memJob struct {
	m          Message
	token      string
	leaseUntil time.Time
	idx        int // in timed, -1 when not there
}

type timeHeap []*memJob

func (h timeHeap) Len() int { return len(h) }
func (h timeHeap) Less(i, j int) bool {
	return h[i].m.RunAt.Before(h[j].m.RunAt)
}
func (h timeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *timeHeap) Push(x any)   { j := x.(*memJob); j.idx = len(*h); *h = append(*h, j) }
func (h *timeHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	*h = old[:len(old)-1]
	j.idx = -1
	return j
}

// NewMemoryBackend returns an empty MemoryBackend.
func NewMemoryBackend(o MemoryBackendOptions) *MemoryBackend {
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.DeadRetention <= 0 {
		o.DeadRetention = DefaultDeadRetention
	}
	return &MemoryBackend{o: o, queues: map[string]*memQueue{}, unique: map[string]uniqueHold{}, uniqueCap: 1024, paused: map[string]bool{}, named: map[string]bool{}}
}

func (b *MemoryBackend) queue(name string) *memQueue {
	q := b.queues[name]
	if q == nil {
		q = &memQueue{active: map[string]*memJob{}, jobs: map[string]*memJob{}, wake: make(chan struct{})}
		b.queues[name] = q
	}
	return q
}

func (q *memQueue) signal() {
	close(q.wake)
	q.wake = make(chan struct{})
}

func (q *memQueue) place(j *memJob, now time.Time) {
	if j.m.RunAt.After(now) {
		if j.m.State != Retry {
			j.m.State = Scheduled
		}
		heap.Push(&q.timed, j)
		return
	}
	j.m.State = Pending
	q.ready[j.m.Priority] = append(q.ready[j.m.Priority], j)
}

// Enqueue is Backend.Enqueue.
func (b *MemoryBackend) Enqueue(_ context.Context, m *Message) error {
	now := clock.Now(b.o.Clock)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.enqueue(m, now)
}

// EnqueueMany is Backend.EnqueueMany, under one lock.
func (b *MemoryBackend) EnqueueMany(_ context.Context, ms []*Message) ([]EnqueueResult, error) {
	now := clock.Now(b.o.Clock)
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]EnqueueResult, len(ms))
	for i, m := range ms {
		out[i] = EnqueueResult{ID: m.ID, Err: b.enqueue(m, now)}
		if d, ok := out[i].Err.(*DuplicateError); ok {
			out[i].ID = d.ID
		}
	}
	return out, nil
}

// enqueue stores m (b.mu held).
func (b *MemoryBackend) enqueue(m *Message, now time.Time) error {
	q := b.queue(m.Queue)
	if j, ok := q.jobs[m.ID]; ok {
		if SameJob(&j.m, m) {
			return nil // a retried enqueue that had landed
		}
		return fmt.Errorf("%w: job id %q is already used in queue %q by another job", ErrInvalid, m.ID, m.Queue)
	}
	if m.UniqueKey != "" {
		uk := m.Queue + "\x00" + m.UniqueKey
		if h, ok := b.unique[uk]; ok && b.holds(m.Queue, h, now) {
			return &DuplicateError{UniqueKey: m.UniqueKey, ID: h.id}
		}
		b.sweepUnique(now)
		b.unique[uk] = uniqueHold{id: m.ID, until: m.UniqueUntil, whileActive: m.UniqueWhileActive}
	}
	b.named[m.Queue] = true
	j := &memJob{m: *m, idx: -1}
	j.m.Payload = slices.Clone(m.Payload)
	j.m.Metadata = maps.Clone(m.Metadata)
	q.jobs[m.ID] = j
	q.place(j, now)
	q.signal()
	return nil
}

// due moves scheduled jobs whose time came and expired leases to ready.
func (b *MemoryBackend) due(q *memQueue, now time.Time) {
	for q.timed.Len() > 0 && !q.timed[0].m.RunAt.After(now) {
		j := heap.Pop(&q.timed).(*memJob)
		j.m.State = Pending
		q.ready[j.m.Priority] = append(q.ready[j.m.Priority], j)
	}
	for id, j := range q.active {
		if !now.Before(j.leaseUntil) {
			delete(q.active, id)
			j.token = ""
			j.m.State = Pending
			q.ready[j.m.Priority] = append([]*memJob{j}, q.ready[j.m.Priority]...)
		}
	}
	for len(q.done) > 0 && now.Sub(q.done[0].m.FinishedAt) > b.o.Retention {
		delete(q.jobs, q.done[0].m.ID)
		q.done = q.done[1:]
	}
	for len(q.dead) > 0 && now.Sub(q.dead[0].m.FinishedAt) > b.o.DeadRetention {
		delete(q.jobs, q.dead[0].m.ID)
		q.dead = q.dead[1:]
	}
	for len(q.cancelled) > 0 && now.Sub(q.cancelled[0].m.FinishedAt) > b.o.DeadRetention {
		delete(q.jobs, q.cancelled[0].m.ID)
		q.cancelled = q.cancelled[1:]
	}
}

// Fetch is Backend.Fetch.
func (b *MemoryBackend) Fetch(ctx context.Context, r FetchRequest) ([]*Lease, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		now := clock.Now(b.o.Clock)
		b.mu.Lock()
		q := b.queue(r.Queue)
		b.due(q, now)
		var out []*Lease
		for _, p := range r.Order {
			for len(out) < r.Max && len(q.ready[p]) > 0 {
				j := q.ready[p][0]
				q.ready[p] = q.ready[p][1:]
				j.m.State, j.m.StartedAt = Active, now
				j.m.Attempt++
				j.token = token.New()
				j.leaseUntil = now.Add(r.Lease)
				q.active[j.m.ID] = j
				m := j.m
				m.Metadata = maps.Clone(m.Metadata) // the handler's own
				out = append(out, &Lease{Msg: &m, Token: j.token, Until: j.leaseUntil})
			}
		}
		wake := q.wake
		next := time.Duration(-1)
		if q.timed.Len() > 0 {
			next = q.timed[0].m.RunAt.Sub(now)
		}
		for _, j := range q.active {
			if d := j.leaseUntil.Sub(now); next < 0 || d < next {
				next = d
			}
		}
		b.mu.Unlock()
		if len(out) > 0 || r.Wait <= 0 {
			return out, nil
		}
		wait := r.Wait
		if next >= 0 && next < wait {
			wait = max(next, time.Millisecond)
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		r.Wait -= wait
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wake:
		case <-timer.C:
		}
	}
}

// withLease runs fn on l's job under the lock if l still holds it, else
// returns ErrLeaseLost. Every fenced outcome goes through it.
func (b *MemoryBackend) withLease(l *Lease, fn func(q *memQueue, j *memJob, now time.Time)) error {
	now := clock.Now(b.o.Clock)
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[l.Msg.Queue]
	if q == nil {
		return ErrLeaseLost
	}
	j := q.active[l.Msg.ID]
	if j == nil || j.token != l.Token || !now.Before(j.leaseUntil) {
		return ErrLeaseLost
	}
	fn(q, j, now)
	return nil
}

// Extend is Backend.Extend.
func (b *MemoryBackend) Extend(_ context.Context, l *Lease, d time.Duration) error {
	return b.withLease(l, func(_ *memQueue, j *memJob, now time.Time) {
		j.leaseUntil = now.Add(d)
		l.Until = j.leaseUntil
	})
}

// Complete is Backend.Complete.
func (b *MemoryBackend) Complete(_ context.Context, l *Lease, output []byte) error {
	return b.withLease(l, func(q *memQueue, j *memJob, now time.Time) {
		delete(q.active, j.m.ID)
		j.m.State, j.m.FinishedAt, j.token = Done, now, ""
		j.m.Output = slices.Clone(output)
		q.done = append(q.done, j)
		b.releaseUnique(j)
	})
}

// Progress is Backend.Progress.
func (b *MemoryBackend) Progress(_ context.Context, l *Lease, percent int, msg string) error {
	return b.withLease(l, func(_ *memQueue, j *memJob, now time.Time) {
		j.m.Progress = Progress{Percent: percent, Message: msg, UpdatedAt: now}
	})
}

// releaseUnique drops the while-active hold of a job that finished.
func (b *MemoryBackend) releaseUnique(j *memJob) {
	if !j.m.UniqueWhileActive {
		return
	}
	uk := j.m.Queue + "\x00" + j.m.UniqueKey
	if h, ok := b.unique[uk]; ok && h.id == j.m.ID {
		delete(b.unique, uk)
	}
}

// Fail is Backend.Fail.
func (b *MemoryBackend) Fail(_ context.Context, l *Lease, errMsg string, retryAt time.Time, dead bool) error {
	return b.withLease(l, func(q *memQueue, j *memJob, now time.Time) {
		delete(q.active, j.m.ID)
		j.m.LastError, j.token = errMsg, ""
		if dead || j.m.Attempt >= j.m.MaxAttempts {
			j.m.State, j.m.FinishedAt = Dead, now
			q.dead = append(q.dead, j)
			b.releaseUnique(j)
			return
		}
		j.m.State, j.m.RunAt = Retry, retryAt
		q.place(j, now)
		if j.m.State == Pending {
			q.signal()
		}
	})
}

// Release is Backend.Release.
func (b *MemoryBackend) Release(_ context.Context, l *Lease, snoozeUntil time.Time) error {
	return b.withLease(l, func(q *memQueue, j *memJob, now time.Time) {
		delete(q.active, j.m.ID)
		j.m.Attempt--
		j.token = ""
		if snoozeUntil.IsZero() {
			j.m.State = Pending
			q.ready[j.m.Priority] = append([]*memJob{j}, q.ready[j.m.Priority]...)
		} else {
			j.m.Snoozes++
			j.m.State, j.m.RunAt = Scheduled, snoozeUntil
			q.place(j, now)
		}
		q.signal()
	})
}

// Job is Backend.Job.
func (b *MemoryBackend) Job(_ context.Context, queue, id string) (*Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.queues[queue]; q != nil {
		if j := q.jobs[id]; j != nil {
			m := j.m
			m.Output = slices.Clone(m.Output)
			m.Metadata = maps.Clone(m.Metadata)
			return &m, nil
		}
	}
	return nil, fmt.Errorf("%w: %s in queue %s", ErrNotFound, id, queue)
}

// Counts is Backend.Counts.
func (b *MemoryBackend) Counts(_ context.Context, queue string) (Counts, error) {
	now := clock.Now(b.o.Clock)
	b.mu.Lock()
	defer b.mu.Unlock()
	var c Counts
	q := b.queues[queue]
	if q == nil {
		return c, nil
	}
	b.due(q, now)
	for _, r := range q.ready {
		c.Pending += int64(len(r))
		for _, j := range r {
			c.OldestPending = max(c.OldestPending, now.Sub(j.m.RunAt))
		}
	}
	for _, j := range q.timed {
		if j.m.State == Retry {
			c.Retry++
		} else {
			c.Scheduled++
		}
	}
	c.Active, c.Dead, c.Done = int64(len(q.active)), int64(len(q.dead)), int64(len(q.done))
	c.Cancelled = int64(len(q.cancelled))
	return c, nil
}

// Dead is Backend.Dead.
func (b *MemoryBackend) Dead(_ context.Context, queue string, limit int) ([]*Message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*Message
	if q := b.queues[queue]; q != nil {
		for i := len(q.dead) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
			m := q.dead[i].m
			m.Metadata = maps.Clone(m.Metadata)
			out = append(out, &m)
		}
	}
	return out, nil
}

// Requeue is Backend.Requeue.
func (b *MemoryBackend) Requeue(_ context.Context, queue, id string) error {
	now := clock.Now(b.o.Clock)
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[queue]
	if q == nil || q.jobs[id] == nil || (q.jobs[id].m.State != Dead && q.jobs[id].m.State != Cancelled) {
		return fmt.Errorf("%w: no dead or cancelled job %s in queue %s", ErrNotFound, id, queue)
	}
	j := q.jobs[id]
	is := func(d *memJob) bool { return d == j }
	q.dead = slices.DeleteFunc(q.dead, is)
	q.cancelled = slices.DeleteFunc(q.cancelled, is)
	j.m.Attempt, j.m.RunAt, j.m.FinishedAt = 0, now, time.Time{}
	q.place(j, now)
	q.signal()
	return nil
}

// Delete is Backend.Delete.
func (b *MemoryBackend) Delete(_ context.Context, queue, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, j, err := b.job(queue, id)
	if err != nil {
		return err
	}
	is := func(o *memJob) bool { return o == j }
	b.unqueue(q, j)
	q.dead = slices.DeleteFunc(q.dead, is)
	q.done = slices.DeleteFunc(q.done, is)
	q.cancelled = slices.DeleteFunc(q.cancelled, is)
	delete(q.jobs, id)
	if j.m.UniqueKey != "" {
		uk := queue + "\x00" + j.m.UniqueKey
		if h, ok := b.unique[uk]; ok && h.id == id {
			delete(b.unique, uk)
		}
	}
	return nil
}

// job finds a job (b.mu held), or returns ErrNotFound.
func (b *MemoryBackend) job(queue, id string) (*memQueue, *memJob, error) {
	if q := b.queues[queue]; q != nil && q.jobs[id] != nil {
		return q, q.jobs[id], nil
	}
	return nil, nil, fmt.Errorf("%w: %s in queue %s", ErrNotFound, id, queue)
}

// unqueue takes j out of the ready lists, the timed heap and the
// leases (b.mu held): no worker can fetch it or keep its lease.
func (b *MemoryBackend) unqueue(q *memQueue, j *memJob) {
	is := func(o *memJob) bool { return o == j }
	for p := range q.ready {
		q.ready[p] = slices.DeleteFunc(q.ready[p], is)
	}
	if j.idx >= 0 {
		heap.Remove(&q.timed, j.idx)
	}
	delete(q.active, j.m.ID)
	j.token = ""
}

// Cancel is Backend.Cancel.
func (b *MemoryBackend) Cancel(_ context.Context, queue, id string) error {
	now := clock.Now(b.o.Clock)
	b.mu.Lock()
	defer b.mu.Unlock()
	q, j, err := b.job(queue, id)
	if err != nil {
		return err
	}
	switch j.m.State {
	case Cancelled:
		return nil
	case Done, Dead:
		return fmt.Errorf("%w: job %s in queue %s is %s", ErrFinished, id, queue, j.m.State)
	}
	b.unqueue(q, j)
	j.m.State, j.m.FinishedAt = Cancelled, now
	q.cancelled = append(q.cancelled, j)
	b.releaseUnique(j)
	return nil
}

// Pause is Backend.Pause.
func (b *MemoryBackend) Pause(_ context.Context, queue string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.paused[queue] = true
	return nil
}

// Resume is Backend.Resume.
func (b *MemoryBackend) Resume(_ context.Context, queue string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.paused, queue)
	return nil
}

// Paused is Backend.Paused.
func (b *MemoryBackend) Paused(_ context.Context, queue string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.paused[queue], nil
}

var _ Backend = (*MemoryBackend)(nil)
