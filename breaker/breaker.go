package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/stripe"
)

// ErrOpen is returned without calling the function while the breaker is
// open. Match with errors.Is: ErrTooManyProbes matches it too.
var ErrOpen = errors.New("breaker: open")

// ErrTooManyProbes is returned in half-open state once HalfOpenProbes calls
// are already probing. errors.Is(ErrTooManyProbes, ErrOpen) is true.
var ErrTooManyProbes = fmt.Errorf("breaker: half-open, probe limit reached: %w", ErrOpen)

// ErrForcedOpen is returned without calling the function while the breaker
// is held open by ForceOpen. errors.Is(ErrForcedOpen, ErrOpen) is true.
var ErrForcedOpen = fmt.Errorf("breaker: forced open: %w", ErrOpen)

// ErrInvalid is wrapped by errors about bad options.
var ErrInvalid = errors.New("breaker: invalid")

// State is a breaker's state.
type State uint32

// The states. The first three are automatic; the others are set by hand
// (ForceOpen, ForceClosed, MetricsOnly) and left only by hand (Reset or
// another of those).
const (
	Closed       State = iota // calls go through; outcomes are counted
	Open                      // calls are rejected with ErrOpen until OpenTimeout passes
	HalfOpen                  // a few probe calls go through; their outcome decides
	ForcedOpen                // every call is rejected with ErrForcedOpen
	ForcedClosed              // every call goes through; outcomes are counted in Stats, no rule applies
	MetricsOnly               // every call goes through; outcomes are counted and the rules evaluated, but a trip is only reported
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	case ForcedOpen:
		return "forced-open"
	case ForcedClosed:
		return "forced-closed"
	case MetricsOnly:
		return "metrics-only"
	}
	return fmt.Sprintf("State(%d)", uint32(s))
}

// Options configures New. The zero value works: it trips after 5
// consecutive failures, stays open 5s, and closes after 1 successful probe.
type Options struct {
	// Name identifies the breaker in logs, hooks and metrics. Default: "".
	Name string
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row. Default: 5 without a FailureRateThreshold; with one, the rule is
	// off unless this is set (see the decision table in the package doc):
	// at high traffic a run of 5 failures comes often at a failure rate
	// well below the threshold. Set NoConsecutive to trip on rates only.
	ConsecutiveFailures int
	// NoConsecutive disables the consecutive-failures trip, whatever
	// ConsecutiveFailures says. Default: false.
	NoConsecutive bool
	// FailureRateThreshold trips the breaker when the share of failed calls
	// in the window reaches it, in (0, 1]. Default: 0, off.
	FailureRateThreshold float64
	// SlowCallThreshold counts calls slower than it as slow. Default: 0,
	// off.
	SlowCallThreshold time.Duration
	// SlowCallRateThreshold trips the breaker when the share of slow calls
	// in the window reaches it, in (0, 1]. Default: 1 when
	// SlowCallThreshold is set (every call slow).
	SlowCallRateThreshold float64
	// WindowSize is the count-based window: the last WindowSize calls.
	// Default: 100. Ignored with WindowDuration.
	WindowSize int
	// WindowDuration, when set, makes the window time-based: the calls of
	// the last WindowDuration, in 10 buckets. Default: 0 (count-based).
	WindowDuration time.Duration
	// MinimumCalls is how many calls the window needs before its rates
	// count. Default: 20.
	MinimumCalls int
	// OpenTimeout is how long the breaker stays open before probing.
	// Default: 5s.
	OpenTimeout time.Duration
	// OpenTimeoutJitter spreads each open time at random over
	// [t×(1−j), t×(1+j)) for a jitter j in [0, 1), so that a fleet's
	// breakers, tripped by the same outage, do not all probe at the same
	// instant. It applies after MaxOpenTimeout's cap. Default: 0, none.
	OpenTimeoutJitter float64
	// OpenTimeoutMultiplier grows the open time on every trip that follows
	// a failed probe (1 keeps it constant). Default: 1.
	OpenTimeoutMultiplier float64
	// MaxOpenTimeout caps the grown open time. Default: 60s (at least
	// OpenTimeout).
	MaxOpenTimeout time.Duration
	// HalfOpenProbes is how many calls may probe at once in half-open
	// state; others get ErrTooManyProbes. Default: 1.
	HalfOpenProbes int
	// HalfOpenMaxWait is how long a half-open probe may run: a probe
	// unfinished past it (a hung call, or an Acquire whose release is never
	// called) counts as a failed probe, reopening the breaker, and frees its
	// slot; its own outcome, if it ever comes, is then not counted. It is
	// checked when a call arrives in half-open state. Set it above your
	// longest call. Default: 60s.
	HalfOpenMaxWait time.Duration
	// HalfOpenSuccesses is how many successful probes close the breaker;
	// one failed probe reopens it. Default: HalfOpenProbes.
	HalfOpenSuccesses int
	// IsFailure decides whether an error counts as a failure. Default: every
	// error does (after Ignore and the rules below).
	IsFailure func(error) bool
	// Ignore lists errors that count as neither success nor failure (a 404
	// from a healthy service, say). Default: none. Whatever it says, a call
	// whose own ctx was cancelled by the caller is ignored too.
	Ignore func(error) bool
	// CountNestedOpen makes an ErrOpen from a nested breaker count as a
	// failure. Default: false, ignored (the dependency behind it did not
	// answer; this breaker's own dependency may be fine).
	CountNestedOpen bool
	// OnStateChange is called on every transition, in order, from a
	// goroutine of its own so it never blocks calls. Default: none.
	OnStateChange func(name string, from, to State)
	// Clock replaces the system clock (see package clock); nil is the real
	// time.
	Clock clock.Clock
	// Logger receives transitions. Default: discard.
	Logger *slog.Logger

	// rand is the random source for OpenTimeoutJitter: a number in [0, 1).
	// Default: math/rand/v2's Float64. The package's tests set it.
	rand func() float64
}

func (o Options) withDefaults() (Options, error) {
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = 5
	}
	if o.SlowCallThreshold > 0 && o.SlowCallRateThreshold == 0 {
		o.SlowCallRateThreshold = 1
	}
	if o.WindowSize == 0 {
		o.WindowSize = 100
	}
	if o.MinimumCalls == 0 {
		o.MinimumCalls = 20
	}
	if o.OpenTimeout == 0 {
		o.OpenTimeout = 5 * time.Second
	}
	if o.OpenTimeoutMultiplier == 0 {
		o.OpenTimeoutMultiplier = 1
	}
	if o.MaxOpenTimeout == 0 {
		o.MaxOpenTimeout = max(60*time.Second, o.OpenTimeout)
	}
	if o.HalfOpenProbes == 0 {
		o.HalfOpenProbes = 1
	}
	if o.HalfOpenMaxWait == 0 {
		o.HalfOpenMaxWait = 60 * time.Second
	}
	if o.HalfOpenSuccesses == 0 {
		o.HalfOpenSuccesses = o.HalfOpenProbes
	}
	if o.rand == nil {
		o.rand = rand.Float64
	}
	o.Logger = logx.Or(o.Logger)
	bad := func(f string, args ...any) (Options, error) {
		return o, fmt.Errorf("%w: "+f, append([]any{ErrInvalid}, args...)...)
	}
	switch {
	case o.ConsecutiveFailures < 1:
		return bad("Options.ConsecutiveFailures must be >= 1, got %d", o.ConsecutiveFailures)
	case o.FailureRateThreshold < 0 || o.FailureRateThreshold > 1:
		return bad("Options.FailureRateThreshold must be in (0, 1] (0: off), got %v", o.FailureRateThreshold)
	case o.SlowCallThreshold < 0:
		return bad("Options.SlowCallThreshold must be >= 0, got %v", o.SlowCallThreshold)
	case o.SlowCallRateThreshold < 0 || o.SlowCallRateThreshold > 1:
		return bad("Options.SlowCallRateThreshold must be in (0, 1], got %v", o.SlowCallRateThreshold)
	case o.WindowSize < 1 || o.WindowSize > 1<<20:
		return bad("Options.WindowSize must be 1..1048576, got %d", o.WindowSize)
	case o.WindowDuration < 0 || (o.WindowDuration > 0 && o.WindowDuration < 10*time.Millisecond):
		return bad("Options.WindowDuration must be 0 or >= 10ms, got %v", o.WindowDuration)
	case o.MinimumCalls < 1:
		return bad("Options.MinimumCalls must be >= 1, got %d", o.MinimumCalls)
	case o.OpenTimeout < 0:
		return bad("Options.OpenTimeout must be > 0, got %v", o.OpenTimeout)
	case o.OpenTimeoutJitter < 0 || o.OpenTimeoutJitter >= 1:
		return bad("Options.OpenTimeoutJitter must be in [0, 1), got %v", o.OpenTimeoutJitter)
	case o.OpenTimeoutMultiplier < 1:
		return bad("Options.OpenTimeoutMultiplier must be >= 1, got %v", o.OpenTimeoutMultiplier)
	case o.MaxOpenTimeout < o.OpenTimeout:
		return bad("Options.MaxOpenTimeout (%v) must be >= OpenTimeout (%v)", o.MaxOpenTimeout, o.OpenTimeout)
	case o.HalfOpenProbes < 1:
		return bad("Options.HalfOpenProbes must be >= 1, got %d", o.HalfOpenProbes)
	case o.HalfOpenMaxWait < 0:
		return bad("Options.HalfOpenMaxWait must be > 0, got %v", o.HalfOpenMaxWait)
	case o.HalfOpenSuccesses < 1:
		return bad("Options.HalfOpenSuccesses must be >= 1, got %d", o.HalfOpenSuccesses)
	}
	return o, nil
}

// Breaker is a circuit breaker. In closed state a call costs a few atomic
// operations and no allocation; transitions take a mutex. It is safe for
// concurrent use.
type Breaker struct {
	o             Options
	now           func() time.Time // Options.Clock's, or time.Now
	consecutiveOn bool             // the consecutive-failures rule applies
	w             window           // nil when no rate is tracked

	// sg packs the state (low 2 bits) and the generation (the rest); a
	// result recorded under an older generation is ignored.
	sg          atomic.Uint64
	consecutive atomic.Int64
	probes      []atomic.Pointer[probe] // HalfOpenProbes slots; nil: free
	probeOK     atomic.Int64
	openUntil   atomic.Int64 // unix ns

	mu    sync.Mutex
	trips int // consecutive trips without closing, for the growing timeout
	// history is a ring of the last TransitionsKept transitions (guarded by
	// mu); histN counts every transition recorded.
	history [TransitionsKept]Transition
	histN   uint64

	hookMu      sync.Mutex
	hookQueue   []stateEvent
	hookRunning bool

	successes, rejected                  stripe.Counter // bumped on every call: striped
	failures, ignored, slow, transitions atomic.Uint64
	probeTimeouts, wouldTrips            atomic.Uint64
}

// A probe holds a half-open slot while its call runs.
type probe struct {
	slot  int
	gen   uint64 // the generation that admitted it
	start int64  // unix ns
}

// New returns a Breaker, or an error naming the bad option.
func New(o Options) (*Breaker, error) {
	// The consecutive rule applies unless disabled, or replaced by a rate
	// rule without being asked for explicitly.
	consecutive := !o.NoConsecutive && (o.FailureRateThreshold == 0 || o.ConsecutiveFailures != 0)
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Breaker{o: o, now: time.Now, consecutiveOn: consecutive, probes: make([]atomic.Pointer[probe], o.HalfOpenProbes)}
	if o.Clock != nil {
		b.now = o.Clock.Now
	}
	if o.FailureRateThreshold > 0 || o.SlowCallThreshold > 0 {
		if o.WindowDuration > 0 {
			b.w = newTimeWindow(o.WindowDuration, b.now)
		} else {
			b.w = newCountWindow(o.WindowSize)
		}
	}
	return b, nil
}

const stateBits = 3

func unpack(sg uint64) (State, uint64) { return State(sg & (1<<stateBits - 1)), sg >> stateBits }

// State returns the current state (an open breaker whose timeout has passed
// reports HalfOpen only once a call probes).
func (b *Breaker) State() State { s, _ := unpack(b.sg.Load()); return s }

// Name is Options.Name.
func (b *Breaker) Name() string { return b.o.Name }

// Do calls fn unless the breaker rejects the call (ErrOpen,
// ErrTooManyProbes or ErrForcedOpen, which all match ErrOpen), records its
// outcome and returns fn's error. If fn panics (or calls runtime.Goexit),
// the call counts as a failure whatever IsFailure and Ignore say, its
// half-open probe slot is freed, and the panic goes on unchanged to Do's
// caller, as gobreaker does.
func (b *Breaker) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	gen, pr, err := b.admit()
	if err != nil {
		return err
	}
	var start int64
	if b.o.SlowCallThreshold > 0 {
		start = b.now().UnixNano()
	}
	returned := false
	defer func() {
		if !returned { // fn panicked (or called Goexit): a failure, and the panic goes on
			b.recordOutcome(gen, pr, start, failed)
		}
	}()
	err = fn(ctx)
	returned = true
	outcome := succeeded
	if err != nil {
		outcome = b.classify(ctx, err)
	}
	b.recordOutcome(gen, pr, start, outcome)
	return err
}

// DoValue is Do for functions that return a value; a panic in fn is
// handled as in Do.
func DoValue[T any](ctx context.Context, b *Breaker, fn func(ctx context.Context) (T, error)) (T, error) {
	return DoValueJudged(ctx, b, fn, nil)
}

// DoValueJudged is DoValue that also judges the value fn returns: when fn
// returns a nil error and isFailure(v) is true (an HTTP response with
// status 503, say), the call counts as a failure, though DoValueJudged
// still returns v and a nil error. Errors are judged by Options.IsFailure
// and Ignore as in Do. A nil isFailure judges no value.
func DoValueJudged[T any](ctx context.Context, b *Breaker, fn func(ctx context.Context) (T, error), isFailure func(v T) bool) (T, error) {
	gen, pr, err := b.admit()
	if err != nil {
		var zero T
		return zero, err
	}
	var start int64
	if b.o.SlowCallThreshold > 0 {
		start = b.now().UnixNano()
	}
	returned := false
	defer func() {
		if !returned { // fn panicked (or called Goexit): a failure, and the panic goes on
			b.recordOutcome(gen, pr, start, failed)
		}
	}()
	v, err := fn(ctx)
	returned = true
	outcome := succeeded
	if err != nil {
		outcome = b.classify(ctx, err)
	} else if isFailure != nil && isFailure(v) {
		outcome = failed
	}
	b.recordOutcome(gen, pr, start, outcome)
	return v, err
}

// Acquire is the two-step form for callers that cannot pass a function: it
// admits a call (or returns ErrOpen, ErrTooManyProbes or ErrForcedOpen)
// and returns release, to be called with the call's error when it ends.
// Calling release more than once is harmless: only the first call counts.
// Unlike Do it allocates (the release closure). A half-open probe whose
// release is never called holds its slot until HalfOpenMaxWait, then
// counts as a failure.
func (b *Breaker) Acquire() (release func(err error), err error) {
	gen, pr, err := b.admit()
	if err != nil {
		return nil, err
	}
	var start int64
	if b.o.SlowCallThreshold > 0 {
		start = b.now().UnixNano()
	}
	var once atomic.Bool
	return func(err error) {
		if once.CompareAndSwap(false, true) {
			b.record(context.Background(), gen, pr, start, err)
		}
	}, nil
}

// admit decides whether a call may go ahead.
func (b *Breaker) admit() (gen uint64, pr *probe, err error) {
	for {
		sg := b.sg.Load()
		st, g := unpack(sg)
		switch st {
		case Closed:
			return g, nil, nil
		case Open:
			if b.now().UnixNano() < b.openUntil.Load() {
				b.rejected.Add(1)
				return 0, nil, ErrOpen
			}
			b.transition(sg, HalfOpen) // then loop: admit as a probe
		case HalfOpen:
			now := b.now().UnixNano()
			b.expireProbes(now)
			pr := b.claimProbe(g, now)
			if pr == nil {
				b.rejected.Add(1)
				return 0, nil, ErrTooManyProbes
			}
			if b.sg.Load() != sg { // the state moved on meanwhile
				b.probes[pr.slot].CompareAndSwap(pr, nil)
				continue
			}
			return g, pr, nil
		case ForcedOpen:
			b.rejected.Add(1)
			return 0, nil, ErrForcedOpen
		default: // ForcedClosed, MetricsOnly
			return g, nil, nil
		}
	}
}

// claimProbe takes a free probe slot, or returns nil if none is free.
func (b *Breaker) claimProbe(gen uint64, now int64) *probe {
	for i := range b.probes {
		if b.probes[i].Load() != nil {
			continue
		}
		pr := &probe{slot: i, gen: gen, start: now}
		if b.probes[i].CompareAndSwap(nil, pr) {
			return pr
		}
	}
	return nil
}

// expireProbes frees the slots of probes running for HalfOpenMaxWait or
// more, each counting as a failed probe.
func (b *Breaker) expireProbes(now int64) {
	for i := range b.probes {
		pr := b.probes[i].Load()
		if pr == nil || now-pr.start < int64(b.o.HalfOpenMaxWait) || !b.probes[i].CompareAndSwap(pr, nil) {
			continue
		}
		b.probeTimeouts.Add(1)
		b.o.Logger.Warn("breaker: half-open probe unfinished past HalfOpenMaxWait, counted as a failure", slog.String("breaker", b.o.Name),
			slog.Duration("running", time.Duration(now-pr.start)), slog.Duration("max_wait", b.o.HalfOpenMaxWait))
		b.recordOutcome(pr.gen, nil, 0, failed)
	}
}

// An outcome is how a call counts.
type outcome int

const (
	failed    outcome = -1
	ignored   outcome = 0
	succeeded outcome = 1
)

// classify decides how a call that returned err counts.
func (b *Breaker) classify(ctx context.Context, err error) outcome {
	switch {
	case err == nil:
		return succeeded
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return ignored // the caller gave up: says nothing about the dependency
	case b.o.Ignore != nil && b.o.Ignore(err):
		return ignored
	case !b.o.CountNestedOpen && errors.Is(err, ErrOpen):
		return ignored
	case b.o.IsFailure != nil && !b.o.IsFailure(err):
		return succeeded
	}
	return failed
}

func (b *Breaker) record(ctx context.Context, gen uint64, pr *probe, start int64, err error) {
	b.recordOutcome(gen, pr, start, b.classify(ctx, err))
}

// recordOutcome counts a finished call admitted under generation gen and
// frees its probe slot, if it holds one. A probe whose slot was taken back
// by expireProbes was counted there: its own outcome is dropped.
func (b *Breaker) recordOutcome(gen uint64, pr *probe, start int64, outcome outcome) {
	if pr != nil && !b.probes[pr.slot].CompareAndSwap(pr, nil) {
		return
	}
	slow := false
	if start != 0 {
		slow = b.now().UnixNano()-start > int64(b.o.SlowCallThreshold)
	}
	if slow {
		b.slow.Add(1)
	}
	switch outcome {
	case ignored:
		b.ignored.Add(1)
		return
	case succeeded:
		b.successes.Add(1)
	default:
		b.failures.Add(1)
	}
	sg := b.sg.Load()
	st, g := unpack(sg)
	if g != gen {
		return // the breaker changed state since this call started
	}
	switch st {
	case Closed, MetricsOnly:
		isFail := outcome == failed
		if isFail {
			if b.consecutiveOn && b.consecutive.Add(1) >= int64(b.o.ConsecutiveFailures) {
				b.trip(sg)
				return
			}
		} else if b.consecutive.Load() != 0 {
			b.consecutive.Store(0)
		}
		if b.w != nil {
			calls, fails, slows := b.w.add(isFail, slow)
			if calls >= int64(b.o.MinimumCalls) {
				if (b.o.FailureRateThreshold > 0 && float64(fails) >= b.o.FailureRateThreshold*float64(calls)) ||
					(b.o.SlowCallThreshold > 0 && float64(slows) >= b.o.SlowCallRateThreshold*float64(calls)) {
					b.trip(sg)
				}
			}
		}
	case HalfOpen:
		if outcome == failed || (slow && b.o.SlowCallRateThreshold > 0 && b.w != nil) {
			b.transition(sg, Open)
			return
		}
		if b.probeOK.Add(1) >= int64(b.o.HalfOpenSuccesses) {
			b.transition(sg, Closed)
		}
	}
}

// trip opens a closed breaker; a metrics-only one only reports it.
func (b *Breaker) trip(seen uint64) {
	if st, _ := unpack(seen); st == Closed {
		b.transition(seen, Open)
		return
	}
	b.mu.Lock()
	if b.sg.Load() != seen {
		b.mu.Unlock()
		return
	}
	_, g := unpack(seen)
	b.consecutive.Store(0)
	if b.w != nil {
		b.w.reset()
	}
	b.sg.Store((g+1)<<stateBits | uint64(MetricsOnly)) // a new generation, as a trip starts
	b.mu.Unlock()
	b.wouldTrips.Add(1)
	b.o.Logger.Warn("breaker: would trip (metrics-only: calls still go through)", slog.String("breaker", b.o.Name))
}

// ForceOpen holds the breaker open: every call gets ErrForcedOpen until
// Reset, ForceClosed or MetricsOnly. It is a state change (logged, counted,
// sent to OnStateChange) unless the breaker is forced open already.
func (b *Breaker) ForceOpen() { b.force(ForcedOpen) }

// ForceClosed holds the breaker closed: every call goes through and no rule
// trips it (resilience4j's DISABLED), until Reset, ForceOpen or
// MetricsOnly. Outcomes are still counted in Stats.
func (b *Breaker) ForceClosed() { b.force(ForcedClosed) }

// MetricsOnly puts the breaker in a dry-run mode (resilience4j's
// METRICS_ONLY): every call goes through, outcomes are counted and the
// rules evaluated as in closed state, and when a rule would trip the
// breaker it logs a warning, counts Stats.WouldTrips and starts counting
// afresh, but never rejects a call. Leave it with Reset, ForceOpen or
// ForceClosed.
func (b *Breaker) MetricsOnly() { b.force(MetricsOnly) }

// Reset returns the breaker to closed state with an empty window, a fresh
// run of failures and the base OpenTimeout, whatever its state.
func (b *Breaker) Reset() {
	if !b.force(Closed) {
		b.mu.Lock()
		b.consecutive.Store(0)
		if b.w != nil {
			b.w.reset()
		}
		b.mu.Unlock()
	}
}

// force moves the breaker to state to from whatever state it is in; it
// reports false if it was there already.
func (b *Breaker) force(to State) bool {
	for {
		sg := b.sg.Load()
		if st, _ := unpack(sg); st == to {
			return false
		}
		if b.transition(sg, to) {
			return true
		}
	}
}

// transition moves from the state word seen to to, if nobody moved first,
// and reports whether it did.
func (b *Breaker) transition(seen uint64, to State) bool {
	b.mu.Lock()
	if b.sg.Load() != seen {
		b.mu.Unlock()
		return false
	}
	from, g := unpack(seen)
	now := b.now()
	switch to {
	case Open:
		timeout := b.o.OpenTimeout
		if from == HalfOpen {
			b.trips++
			f := float64(b.o.OpenTimeout)
			for i := 0; i < b.trips && f < float64(b.o.MaxOpenTimeout); i++ {
				f *= b.o.OpenTimeoutMultiplier
			}
			timeout = min(time.Duration(f), b.o.MaxOpenTimeout)
		} else {
			b.trips = 0
		}
		if j := b.o.OpenTimeoutJitter; j > 0 {
			r := min(max(b.o.rand(), 0), 1) // a source out of range cannot make it negative
			timeout = time.Duration(float64(timeout) * (1 - j + 2*j*r))
		}
		b.openUntil.Store(now.Add(timeout).UnixNano())
	case HalfOpen:
		b.probeOK.Store(0)
	default: // Closed and the manual states
		b.trips = 0
	}
	b.consecutive.Store(0)
	if b.w != nil {
		b.w.reset()
	}
	b.sg.Store((g+1)<<stateBits | uint64(to))
	b.history[b.histN%TransitionsKept] = Transition{From: from, To: to, At: now}
	b.histN++
	b.mu.Unlock()
	b.transitions.Add(1)
	lvl := slog.LevelInfo
	if to == Open || to == ForcedOpen {
		lvl = slog.LevelWarn
	}
	b.o.Logger.Log(context.Background(), lvl, "breaker: state change", slog.String("breaker", b.o.Name), slog.String("from", from.String()), slog.String("to", to.String()))
	if b.o.OnStateChange != nil {
		b.notify(stateEvent{from, to})
	}
	return true
}

// TransitionsKept is how many transitions Transitions returns at most.
const TransitionsKept = 8

// Transition is one state change of a breaker.
type Transition struct {
	From, To State
	// At is when it happened (Options.Clock's time).
	At time.Time
}

// Transitions returns the breaker's last TransitionsKept state changes,
// newest first: what a dashboard shows as its recent history, whenever it
// starts looking (OnStateChange, set at construction, sees every one as
// it happens). The changes are recorded as they are made, under the lock
// a transition takes, so none is missed however short the state lasted;
// calls in closed state pay nothing for it.
func (b *Breaker) Transitions() []Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(b.histN, TransitionsKept)
	out := make([]Transition, n)
	for i := range n {
		out[i] = b.history[(b.histN-1-i)%TransitionsKept]
	}
	return out
}

type stateEvent struct{ from, to State }

// notify hands ev to OnStateChange in order, without blocking the caller:
// events queue up and one short-lived goroutine delivers them, exiting
// when the queue is empty.
func (b *Breaker) notify(ev stateEvent) {
	b.hookMu.Lock()
	b.hookQueue = append(b.hookQueue, ev)
	start := !b.hookRunning
	b.hookRunning = true
	b.hookMu.Unlock()
	if !start {
		return
	}
	go func() {
		for {
			b.hookMu.Lock()
			if len(b.hookQueue) == 0 {
				b.hookRunning = false
				b.hookMu.Unlock()
				return
			}
			ev := b.hookQueue[0]
			b.hookQueue = b.hookQueue[1:]
			b.hookMu.Unlock()
			b.o.OnStateChange(b.o.Name, ev.from, ev.to)
		}
	}()
}

// Stats is a snapshot of a breaker.
type Stats struct {
	Name  string
	State State
	// Successes, Failures and Ignored count recorded outcomes; Slow the
	// calls over SlowCallThreshold; Rejected the calls refused.
	Successes, Failures, Ignored, Slow, Rejected uint64
	// Transitions counts state changes.
	Transitions uint64
	// WouldTrips counts the trips a metrics-only breaker reported instead
	// of opening.
	WouldTrips uint64
	// ProbeTimeouts counts half-open probes still unfinished after
	// HalfOpenMaxWait, each counted as a failure too.
	ProbeTimeouts uint64
	// ConsecutiveFailures is the current run of failures (closed state; 0
	// when the consecutive rule is off).
	ConsecutiveFailures int64
	// WindowCalls, WindowFailures and WindowSlow are the current window's
	// counts (zero without a rate threshold).
	WindowCalls, WindowFailures, WindowSlow int64
	// OpenUntil is when an open breaker starts probing.
	OpenUntil time.Time
}

// Stats returns a snapshot.
func (b *Breaker) Stats() Stats {
	st := Stats{Name: b.o.Name, State: b.State(), Successes: b.successes.Load(), Failures: b.failures.Load(), Ignored: b.ignored.Load(),
		Slow: b.slow.Load(), Rejected: b.rejected.Load(), Transitions: b.transitions.Load(), ProbeTimeouts: b.probeTimeouts.Load(), WouldTrips: b.wouldTrips.Load(), ConsecutiveFailures: b.consecutive.Load()}
	if b.w != nil {
		st.WindowCalls, st.WindowFailures, st.WindowSlow = b.w.counts()
	}
	if st.State == Open {
		st.OpenUntil = time.Unix(0, b.openUntil.Load())
	}
	return st
}
