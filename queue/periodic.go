package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/queuex"
)

// ErrClosed is returned by a Scheduler's Start and Register after
// Shutdown or Close.
var ErrClosed = errors.New("queue: scheduler closed")

// MissedPolicy says what a Scheduler does, when it starts, with the last
// tick that came before (within SchedulerOptions.MaxCatchUp) if no
// instance enqueued it: every instance was down.
type MissedPolicy int

const (
	// MissedSkip (the default) lets the tick go: the schedule next runs
	// at its next tick. It is counted in SchedulerStats.Missed.
	MissedSkip MissedPolicy = iota
	// MissedRunOnce enqueues the last tick at once, one job however many
	// ticks were missed. A tick another instance did enqueue is not
	// enqueued again.
	MissedRunOnce
)

// OverlapPolicy says whether a schedule's runs may overlap.
type OverlapPolicy int

const (
	// OverlapAllow (the default) enqueues every tick, even while the
	// previous tick's job has not finished.
	OverlapAllow OverlapPolicy = iota
	// OverlapSkip skips a tick while the job of the schedule's previous
	// run is pending, active or waiting for a retry. It is counted in
	// SchedulerStats.Overlapped.
	OverlapSkip
)

// Schedule is a periodic job: a job of Kind with Args enqueued on Queue at
// every tick of Cron or Every.
type Schedule struct {
	// Name identifies the schedule across the fleet: every instance that
	// registers a schedule of this name must give it the same ticks, queue,
	// kind and args. 1 to 64 letters, digits, '_', '.', ':' or '-';
	// required.
	Name string
	// Cron is a standard five-field cron expression ("*/15 9-17 * * MON-FRI")
	// or @yearly, @monthly, @weekly, @daily, @hourly, evaluated in
	// SchedulerOptions.Location. Set Cron or Every, not both.
	Cron string
	// Every ticks at a fixed interval (>= 1ms): at the multiples of Every
	// counted from 0001-01-01 00:00 UTC, the same instants on every
	// instance (every 15m: :00, :15, :30, :45 of each UTC hour).
	Every time.Duration
	// Queue and Kind of the jobs; required.
	Queue, Kind string
	// Args of every job, encoded as JSON once at registration.
	Args any
	// Priority, MaxAttempts and Timeout of the jobs, as in EnqueueOptions.
	Priority    Priority
	MaxAttempts int
	Timeout     time.Duration
	// Missed is the policy for a tick every instance missed. Default:
	// MissedSkip.
	Missed MissedPolicy
	// Overlap is the policy for a tick that comes while the previous run
	// is not finished. Default: OverlapAllow.
	Overlap OverlapPolicy
}

// SchedulerOptions configures NewScheduler. Backend is required.
type SchedulerOptions struct {
	// Backend stores the jobs.
	Backend Backend
	// Schedules are registered at once (Register adds more at run time).
	Schedules []Schedule
	// Location is the time zone cron expressions are read in. Default:
	// UTC.
	Location *time.Location
	// MaxCatchUp is how late a tick may still be enqueued: a scheduler
	// that starts, or whose loop was held up (the backend was down), at
	// most this long after a tick may enqueue it; older ticks are missed.
	// It must be shorter than the backend's Retention of done jobs
	// (24h by default on every backend of this module): a tick's job id
	// stays taken while the backend keeps the job, and that is what makes
	// a late instance's enqueue of the same tick a no-op. Default: 1h.
	MaxCatchUp time.Duration
	// Clock replaces the system clock (see package clock); nil is the real
	// time. It decides when ticks are due.
	Clock clock.Clock
	// Logger receives enqueue failures, missed and skipped ticks.
	// Default: discard.
	Logger *slog.Logger
	// Middleware wraps the enqueue of every tick's job, as
	// ClientOptions.Middleware wraps a Client's (the first in the slice
	// outermost; pass the same slice to give periodic jobs the tenant,
	// request or trace metadata a Client's jobs get). The ctx it sees is
	// the one given to Start or RunDue. A middleware that refuses a tick
	// (returns an error without calling next) fails its enqueue, which is
	// retried as a backend failure is. A tick's id is fixed by the
	// schedule, so a middleware must not change m.ID. Default: none.
	Middleware []func(next EnqueueFunc) EnqueueFunc
}

// Scheduler enqueues periodic jobs: at each tick of each Schedule, one
// job, however many instances run the same schedules (see the package
// doc, Periodic jobs). It is safe for concurrent use.
type Scheduler struct {
	o SchedulerOptions

	mu      sync.Mutex
	entries map[string]*entry
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
	wake    chan struct{}

	runMu sync.Mutex // one pass over the schedules at a time
	st    schedulerCounters
}

// errBadTick marks a tick job the scheduler middleware left unfit to
// store: a failed enqueue (logged, retried), not a duplicate.
var errBadTick = errors.New("the scheduler middleware left a bad tick job")

// store returns o.Middleware around the backend's Enqueue of the tick
// job whose id is id: it refuses a job a middleware gave another id (the
// tick's id is what keeps it single across the fleet) or metadata out of
// bounds. Ticks are rare, so the chain is built for each.
func (s *Scheduler) store(id string) EnqueueFunc {
	var f EnqueueFunc = func(ctx context.Context, m *Message) error {
		if m.ID != id {
			return fmt.Errorf("%w: %w: a SchedulerOptions.Middleware changed the tick job's id from %q to %q", ErrInvalid, errBadTick, id, m.ID)
		}
		if err := checkMetadata("Message.Metadata (after the scheduler middleware)", m.Metadata); err != nil {
			return fmt.Errorf("%w: %w", errBadTick, err)
		}
		if len(m.Metadata) == 0 {
			m.Metadata = nil
		}
		return s.o.Backend.Enqueue(ctx, m)
	}
	for i := len(s.o.Middleware) - 1; i >= 0; i-- {
		f = s.o.Middleware[i](f)
	}
	return f
}

type schedulerCounters struct {
	emitted, duplicates, overlapped, missed, failed atomic.Uint64
}

// entry is a registered schedule and where this instance stands in it.
// next, pause and retryAt are read and written under runMu; next is also
// read by Stats under mu.
type entry struct {
	s       Schedule
	every   time.Duration
	cron    *cronSpec
	payload json.RawMessage
	removed atomic.Bool

	next     time.Time // the next tick to handle; zero before the first pass
	checkAt  time.Time // a tick before the start to check for MissedSkip
	retryAt  time.Time // after a failed enqueue
	failures int
	nextNs   atomic.Int64 // next, for Stats
	st       schedulerCounters
}

// NewScheduler returns a Scheduler with o.Schedules registered, or an
// error naming the bad option or schedule. It enqueues nothing before
// Start (or RunDue).
func NewScheduler(o SchedulerOptions) (*Scheduler, error) {
	if o.Backend == nil {
		return nil, fmt.Errorf("%w: SchedulerOptions.Backend is required", ErrInvalid)
	}
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.MaxCatchUp == 0 {
		o.MaxCatchUp = time.Hour
	}
	if o.MaxCatchUp < 0 {
		return nil, fmt.Errorf("%w: SchedulerOptions.MaxCatchUp must be > 0 (and shorter than the backend's done-job Retention), got %v", ErrInvalid, o.MaxCatchUp)
	}
	o.Logger = logx.Or(o.Logger)
	s := &Scheduler{o: o, entries: map[string]*entry{}, wake: make(chan struct{}, 1)}
	for i, mw := range o.Middleware {
		if mw == nil {
			return nil, fmt.Errorf("%w: SchedulerOptions.Middleware[%d] is nil", ErrInvalid, i)
		}
		if mw(s.store("")) == nil {
			return nil, fmt.Errorf("%w: SchedulerOptions.Middleware[%d] returned a nil EnqueueFunc", ErrInvalid, i)
		}
	}
	s.o.Middleware = slices.Clone(o.Middleware)
	for i, sc := range o.Schedules {
		if err := s.Register(sc); err != nil {
			return nil, fmt.Errorf("SchedulerOptions.Schedules[%d]: %w", i, err)
		}
	}
	s.o.Schedules = nil
	return s, nil
}

// newEntry validates sc.
func (s *Scheduler) newEntry(sc Schedule) (*entry, error) {
	bad := func(format string, args ...any) (*entry, error) {
		return nil, fmt.Errorf("%w: Schedule %q: "+format, append([]any{ErrInvalid, sc.Name}, args...)...)
	}
	if len(sc.Name) > 64 || !queuex.ValidName(sc.Name) {
		return bad("Name must be 1 to 64 letters, digits, '_', '.', ':' or '-'")
	}
	e := &entry{s: sc}
	switch {
	case sc.Cron != "" && sc.Every != 0:
		return bad("set Cron or Every, not both")
	case sc.Cron != "":
		c, err := parseCron(sc.Cron)
		if err != nil {
			return bad("Cron: %v", err)
		}
		e.cron = c
	case sc.Every < 0 || (sc.Every > 0 && sc.Every < time.Millisecond):
		return bad("Every must be >= 1ms, got %v", sc.Every)
	case sc.Every > 0:
		e.every = sc.Every
	default:
		return bad("set Cron (a cron expression) or Every (an interval)")
	}
	switch {
	case sc.Missed != MissedSkip && sc.Missed != MissedRunOnce:
		return bad("Missed must be MissedSkip or MissedRunOnce, got %d", sc.Missed)
	case sc.Overlap != OverlapAllow && sc.Overlap != OverlapSkip:
		return bad("Overlap must be OverlapAllow or OverlapSkip, got %d", sc.Overlap)
	}
	payload, err := json.Marshal(sc.Args)
	if err != nil {
		return bad("Args cannot be encoded as JSON: %v", err)
	}
	e.payload = payload
	// The job options are checked as Enqueue checks them.
	if _, err := e.message(time.Unix(0, 0)); err != nil {
		return bad("%v", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	}
	return e, nil
}

// tick returns the first tick of e after t.
func (e *entry) tick(t time.Time, loc *time.Location) time.Time {
	if e.cron != nil {
		return e.cron.next(t, loc)
	}
	return t.Truncate(e.every).Add(e.every)
}

// jobID is the id of the job of e's tick at t: the same on every
// instance, so the backend stores a tick once (see Backend.Enqueue and
// SameJob).
func (e *entry) jobID(t time.Time) string {
	return "periodic:" + e.s.Name + ":" + strconv.FormatInt(t.UnixMilli(), 10)
}

// message builds the job of the tick at t.
func (e *entry) message(t time.Time) (*Message, error) {
	o := EnqueueOptions{ID: e.jobID(t), RunAt: t, Priority: e.s.Priority, MaxAttempts: e.s.MaxAttempts, Timeout: e.s.Timeout}
	if e.s.Overlap == OverlapSkip {
		o.UniqueKey, o.UniqueWhileActive = "periodic:"+e.s.Name, true
	}
	return NewMessage(t, e.s.Queue, e.s.Kind, e.payload, o)
}

// Register adds a schedule, at start-up or while the scheduler runs; its
// first tick is the first after the next pass (see Schedule.Missed for
// the one before). A name already registered is ErrInvalid; after
// Shutdown it returns ErrClosed.
func (s *Scheduler) Register(sc Schedule) error {
	e, err := s.newEntry(sc)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, dup := s.entries[sc.Name]; dup {
		return fmt.Errorf("%w: Schedule %q is already registered", ErrInvalid, sc.Name)
	}
	s.entries[sc.Name] = e
	s.poke()
	return nil
}

// Remove unregisters the schedule named name and reports whether it was
// registered. A tick being enqueued at that moment may still land.
func (s *Scheduler) Remove(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[name]
	if ok {
		e.removed.Store(true)
		delete(s.entries, name)
		s.poke()
	}
	return ok
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start runs the schedules in the background until Shutdown, Close or
// ctx's end; it returns at once.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return fmt.Errorf("%w: the scheduler is already started", ErrInvalid)
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go s.loop(ctx)
	return nil
}

// maxSleep bounds one sleep of the loop, so that a clock set forward
// (or a Clock moved by a test) is noticed within it.
const maxSleep = time.Minute

func (s *Scheduler) loop(ctx context.Context) {
	defer close(s.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wakeAt := s.pass(ctx)
		d := maxSleep
		if !wakeAt.IsZero() {
			d = min(max(wakeAt.Sub(clock.Now(s.o.Clock)), 0), maxSleep)
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			timer.Stop() // since Go 1.23 no stale tick is left in timer.C
		case <-timer.C:
		}
	}
}

// RunDue enqueues the ticks due now, as the background loop of Start
// does at each tick; it returns the first enqueue error. It is for tests
// that move a Clock by hand (clock.Manual) and for programs that drive
// the scheduler from a loop of their own instead of Start.
func (s *Scheduler) RunDue(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	_, err := s.passErr(ctx)
	return err
}

func (s *Scheduler) pass(ctx context.Context) time.Time {
	t, _ := s.passErr(ctx)
	return t
}

// passErr handles every schedule due at the clock's now and returns when
// the next is due (zero: none registered).
func (s *Scheduler) passErr(ctx context.Context) (time.Time, error) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	s.mu.Lock()
	es := make([]*entry, 0, len(s.entries))
	for _, e := range s.entries {
		es = append(es, e)
	}
	s.mu.Unlock()
	slices.SortFunc(es, func(a, b *entry) int { return strings.Compare(a.s.Name, b.s.Name) })
	var first error
	var wakeAt time.Time
	for _, e := range es {
		if ctx.Err() != nil {
			return wakeAt, ctx.Err()
		}
		if e.removed.Load() {
			continue
		}
		if err := s.handle(ctx, e, clock.Now(s.o.Clock)); err != nil && first == nil {
			first = err
		}
		at := e.next
		if e.retryAt.After(at) {
			at = e.retryAt
		}
		if !at.IsZero() && (wakeAt.IsZero() || at.Before(wakeAt)) {
			wakeAt = at
		}
	}
	return wakeAt, first
}

// latest returns the last tick of e at or before now that is at most
// MaxCatchUp old, or the zero time.
func (s *Scheduler) latest(e *entry, now time.Time) time.Time {
	var last time.Time
	if e.every > 0 {
		last = now.Truncate(e.every)
	} else {
		for t := e.tick(now.Add(-s.o.MaxCatchUp-time.Nanosecond), s.o.Location); !t.IsZero() && !t.After(now); t = e.tick(t, s.o.Location) {
			last = t
		}
	}
	if last.IsZero() || now.Sub(last) > s.o.MaxCatchUp {
		return time.Time{}
	}
	return last
}

// maxCount bounds the count of missed ticks of one pass (a cron schedule
// is walked tick by tick).
const maxCount = 1 << 20

// handle enqueues e's tick if one is due at now.
func (s *Scheduler) handle(ctx context.Context, e *entry, now time.Time) error {
	loc := s.o.Location
	if e.next.IsZero() { // first pass: where this instance joins the schedule
		e.next = e.tick(now, loc)
		if last := s.latest(e, now); !last.IsZero() {
			if e.s.Missed == MissedRunOnce {
				e.next = last // enqueued now unless another instance did
			} else {
				e.checkAt = last
			}
		}
		e.nextNs.Store(e.next.UnixNano())
	}
	if !e.checkAt.IsZero() { // MissedSkip: count the tick before the start if nobody enqueued it
		t := e.checkAt
		e.checkAt = time.Time{}
		if _, err := s.o.Backend.Job(ctx, e.s.Queue, e.jobID(t)); errors.Is(err, ErrNotFound) {
			s.count(e, func(c *schedulerCounters) *atomic.Uint64 { return &c.missed }, 1)
			s.o.Logger.Info("queue: periodic tick missed while no scheduler ran; skipped (Missed: MissedSkip)",
				slog.String("schedule", e.s.Name), slog.Time("tick", t))
		}
	}
	if e.next.After(now) || now.Before(e.retryAt) {
		return nil
	}
	// The latest tick due; those before it are missed.
	due, missed := e.next, 0
	if e.every > 0 {
		last := now.Truncate(e.every)
		missed = int(min(last.Sub(due)/e.every, maxCount))
		due = last
	} else {
		for n := e.tick(due, loc); !n.IsZero() && !n.After(now) && missed < maxCount; n = e.tick(due, loc) {
			due, missed = n, missed+1
		}
	}
	if now.Sub(due) > s.o.MaxCatchUp {
		missed++
		due = time.Time{}
		e.failures = 0 // the next tick starts with a short pause again
	}
	if missed > 0 {
		s.count(e, func(c *schedulerCounters) *atomic.Uint64 { return &c.missed }, uint64(missed))
		s.o.Logger.Warn("queue: periodic ticks missed (the scheduler was held up)", slog.String("schedule", e.s.Name), slog.Int("missed", missed))
	}
	if !due.IsZero() {
		if err := s.enqueue(ctx, e, due, now); err != nil {
			e.next = due
			e.failures++
			e.retryAt = now.Add(min(100*time.Millisecond<<min(e.failures-1, 6), 5*time.Second))
			s.st.failed.Add(1)
			e.st.failed.Add(1)
			s.o.Logger.Warn("queue: cannot enqueue a periodic job; retrying", slog.String("schedule", e.s.Name), slog.Time("tick", due), slog.Any("error", err))
			return err
		}
		e.failures, e.retryAt = 0, time.Time{}
	} else {
		due = now
	}
	e.next = e.tick(due, loc)
	e.nextNs.Store(e.next.UnixNano())
	return nil
}

func (s *Scheduler) count(e *entry, f func(*schedulerCounters) *atomic.Uint64, n uint64) {
	f(&s.st).Add(n)
	f(&e.st).Add(n)
}

// enqueue stores the job of e's tick at t once across the fleet: its id
// is the tick's, so every instance's enqueue of it after the first finds
// it there (counted as a duplicate).
func (s *Scheduler) enqueue(ctx context.Context, e *entry, t, now time.Time) error {
	m, err := e.message(t)
	if err != nil {
		return err
	}
	m.EnqueuedAt = now
	if m.RunAt.After(now) {
		m.State = Scheduled
	}
	dup := func(c *schedulerCounters) *atomic.Uint64 { return &c.duplicates }
	if _, err := s.o.Backend.Job(ctx, m.Queue, m.ID); err == nil {
		s.count(e, dup, 1)
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	err = s.store(m.ID)(ctx, m)
	var d *DuplicateError
	switch {
	case err == nil:
		s.count(e, func(c *schedulerCounters) *atomic.Uint64 { return &c.emitted }, 1)
		s.o.Logger.Debug("queue: periodic job enqueued", slog.String("schedule", e.s.Name), slog.String("id", m.ID))
	case errors.Is(err, errBadTick):
		return err
	case errors.As(err, &d): // OverlapSkip: the previous run holds the schedule's key
		s.count(e, func(c *schedulerCounters) *atomic.Uint64 { return &c.overlapped }, 1)
		s.o.Logger.Info("queue: periodic tick skipped, the previous run is not finished (Overlap: OverlapSkip)",
			slog.String("schedule", e.s.Name), slog.Time("tick", t), slog.String("running", d.ID))
	case errors.Is(err, ErrInvalid): // the tick's id holds a job with other args: another instance's config
		s.count(e, dup, 1)
		s.o.Logger.Warn("queue: periodic tick already enqueued with other kind or args: do the instances register the same schedule?",
			slog.String("schedule", e.s.Name), slog.String("id", m.ID), slog.Any("error", err))
	default:
		return err
	}
	return nil
}

// Shutdown stops the background loop, waiting for a pass in progress
// until ctx ends. Register, Start and RunDue return ErrClosed after it.
// It is idempotent and safe before Start.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the scheduler at once; it is Shutdown with an ended ctx.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	s.closed = true
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done // the pass in progress ends with its ctx
	}
	return nil
}

// ScheduleStats is one schedule's counters in a Scheduler.
type ScheduleStats struct {
	Name string
	// Next is the next tick this instance will handle (zero before the
	// first pass).
	Next time.Time
	// Emitted counts the ticks this instance enqueued; Duplicates those
	// it found already enqueued (by another instance, or by itself
	// before a restart); Overlapped those skipped because the previous
	// run was not finished (OverlapSkip); Missed the ticks let go: ticks
	// nobody enqueued before this instance started (MissedSkip), and
	// ticks that passed while its loop was held up; Failed the enqueues
	// that failed (each retried).
	Emitted, Duplicates, Overlapped, Missed, Failed uint64
}

// SchedulerStats is a snapshot of a Scheduler's counters: the totals over
// every schedule it ran (removed ones included), and each registered
// schedule's, sorted by name.
type SchedulerStats struct {
	Emitted, Duplicates, Overlapped, Missed, Failed uint64
	Schedules                                       []ScheduleStats
}

func (c *schedulerCounters) load() (emitted, duplicates, overlapped, missed, failed uint64) {
	return c.emitted.Load(), c.duplicates.Load(), c.overlapped.Load(), c.missed.Load(), c.failed.Load()
}

// Stats returns a snapshot of the counters.
func (s *Scheduler) Stats() SchedulerStats {
	var out SchedulerStats
	out.Emitted, out.Duplicates, out.Overlapped, out.Missed, out.Failed = s.st.load()
	s.mu.Lock()
	for _, e := range s.entries {
		ss := ScheduleStats{Name: e.s.Name}
		if ns := e.nextNs.Load(); ns != 0 {
			ss.Next = time.Unix(0, ns).In(s.o.Location)
		}
		ss.Emitted, ss.Duplicates, ss.Overlapped, ss.Missed, ss.Failed = e.st.load()
		out.Schedules = append(out.Schedules, ss)
	}
	s.mu.Unlock()
	slices.SortFunc(out.Schedules, func(a, b ScheduleStats) int { return strings.Compare(a.Name, b.Name) })
	return out
}
