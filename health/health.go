package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
)

// ErrInvalid is wrapped by errors about bad options or checks.
var ErrInvalid = errors.New("health: invalid")

// ErrDraining is the readiness failure while the service drains.
var ErrDraining = errors.New("health: draining")

// ErrNotStarted is the startup failure until MarkStarted.
var ErrNotStarted = errors.New("health: not started")

// Status is a check's or a probe's result, as in
// draft-inadarei-api-health-check.
type Status string

// The statuses. A probe answers 200 for Pass and Warn, 503 for Fail.
const (
	Pass Status = "pass"
	Warn Status = "warn" // a non-critical check failed: degraded
	Fail Status = "fail"
)

// Kind says which probe a check belongs to.
type Kind int

const (
	// Readiness checks decide whether to send the instance traffic: its
	// dependencies (database, cache).
	Readiness Kind = iota
	// Liveness checks decide whether to restart the instance. They must not
	// depend on external services (a database outage would restart every
	// instance at once); keep them to the process itself.
	Liveness
	// Startup checks gate the other probes until the service has started.
	Startup
)

func (k Kind) String() string {
	switch k {
	case Readiness:
		return "readiness"
	case Liveness:
		return "liveness"
	case Startup:
		return "startup"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Check is one named dependency check.
type Check struct {
	// Name identifies the check in the JSON; required and unique per kind.
	Name string
	// Func returns nil when healthy; required. It gets a ctx with Timeout.
	Func func(ctx context.Context) error
	// Kind is the probe the check belongs to. Default: Readiness.
	Kind Kind
	// Timeout bounds one run; a run that takes longer fails. Default: 2s.
	Timeout time.Duration
	// Optional marks a non-critical check: its failure makes the probe
	// "warn" (degraded, still 200) instead of "fail" (503). Default: false,
	// critical.
	Optional bool
	// FailureThreshold is how many consecutive failed runs it takes to
	// report the check failing (flap damping). Default: 1.
	FailureThreshold int
}

// Options configures New. The zero value works.
type Options struct {
	// CacheTTL is how long a check's result is reused before the check
	// runs again, so probes from many load balancers never stampede a
	// dependency. Concurrent probes share one run. Default: 1s.
	CacheTTL time.Duration
	// Interval, when set, runs every check in the background at this
	// interval after Start, and probes only read the latest results.
	// Default: 0, checks run on demand (cached for CacheTTL).
	Interval time.Duration
	// ServiceID and Version go into the JSON body. Default: empty.
	ServiceID, Version string
	// Clock replaces the system clock (see package clock); nil is the real
	// time.
	Clock clock.Clock
	// Logger receives check state changes. Default: discard.
	Logger *slog.Logger
}

// Health runs checks and serves the liveness, readiness and startup probes.
// It is safe for concurrent use.
type Health struct {
	o Options

	mu     sync.Mutex
	checks map[Kind][]*checkState

	draining atomic.Bool
	started  atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup
	runs     atomic.Uint64
}

// checkState is a check with its cached result.
type checkState struct {
	c Check

	mu       sync.Mutex
	running  chan struct{} // closed when the current run ends; nil when idle
	result   Result
	at       time.Time // when result was produced
	failures int       // consecutive
	have     bool
}

// Result is one check's latest outcome.
type Result struct {
	Name     string
	Status   Status
	Latency  time.Duration
	Time     time.Time
	Err      error
	Optional bool
}

// New returns a Health with no checks, or an error naming the bad option.
func New(o Options) (*Health, error) {
	if o.CacheTTL == 0 {
		o.CacheTTL = time.Second
	}
	if o.CacheTTL < 0 {
		return nil, fmt.Errorf("%w: Options.CacheTTL must be > 0, got %v", ErrInvalid, o.CacheTTL)
	}
	if o.Interval < 0 {
		return nil, fmt.Errorf("%w: Options.Interval must be >= 0, got %v", ErrInvalid, o.Interval)
	}
	o.Logger = logx.Or(o.Logger)
	return &Health{o: o, checks: map[Kind][]*checkState{}}, nil
}

// Add registers a check, or returns an error naming what to fix.
func (h *Health) Add(c Check) error {
	if c.Name == "" {
		return fmt.Errorf("%w: Check.Name is required", ErrInvalid)
	}
	if c.Func == nil {
		return fmt.Errorf("%w: Check.Func is required (check %q)", ErrInvalid, c.Name)
	}
	if c.Kind < Readiness || c.Kind > Startup {
		return fmt.Errorf("%w: Check.Kind must be Readiness, Liveness or Startup (check %q)", ErrInvalid, c.Name)
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%w: Check.Timeout must be > 0, got %v (check %q)", ErrInvalid, c.Timeout, c.Name)
	}
	if c.FailureThreshold == 0 {
		c.FailureThreshold = 1
	}
	if c.FailureThreshold < 1 {
		return fmt.Errorf("%w: Check.FailureThreshold must be >= 1, got %d (check %q)", ErrInvalid, c.FailureThreshold, c.Name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.checks[c.Kind] {
		if s.c.Name == c.Name {
			return fmt.Errorf("%w: a %v check named %q exists already", ErrInvalid, c.Kind, c.Name)
		}
	}
	h.checks[c.Kind] = append(h.checks[c.Kind], &checkState{c: c})
	return nil
}

// SetDraining makes readiness fail (true) or pass again (false) whatever
// the checks say; shutdown sets it first so load balancers stop sending
// traffic before servers close.
func (h *Health) SetDraining(draining bool) { h.draining.Store(draining) }

// Draining reports whether readiness is forced to fail.
func (h *Health) Draining() bool { return h.draining.Load() }

// MarkStarted lets the startup probe pass (when its checks pass too).
// Until then the startup probe fails with ErrNotStarted.
func (h *Health) MarkStarted() { h.started.Store(true) }

// Report is one probe's outcome.
type Report struct {
	Status  Status
	Results []Result
}

// Run evaluates the checks of kind (in parallel, each cached for CacheTTL)
// and returns the probe's report. Total time is about the slowest check's,
// not their sum.
func (h *Health) Run(ctx context.Context, kind Kind) Report {
	h.mu.Lock()
	checks := append([]*checkState(nil), h.checks[kind]...)
	h.mu.Unlock()
	rep := Report{Status: Pass, Results: make([]Result, len(checks))}
	var wg sync.WaitGroup
	for i, s := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if h.o.Interval > 0 {
				rep.Results[i] = s.latest(h, ctx)
			} else {
				rep.Results[i] = s.get(h, ctx)
			}
		}()
	}
	wg.Wait()
	for _, r := range rep.Results {
		switch {
		case r.Status == Fail && !r.Optional:
			rep.Status = Fail
		case r.Status != Pass && rep.Status == Pass:
			rep.Status = Warn
		}
	}
	extra := func(name string, err error) {
		rep.Results = append(rep.Results, Result{Name: name, Status: Fail, Time: clock.Now(h.o.Clock), Err: err})
		rep.Status = Fail
	}
	if kind == Readiness && h.draining.Load() {
		extra("draining", ErrDraining)
	}
	if kind == Startup && !h.started.Load() {
		extra("started", ErrNotStarted)
	}
	return rep
}

// get returns the cached result if fresh, else runs the check once for all
// concurrent callers.
func (s *checkState) get(h *Health, ctx context.Context) Result {
	s.mu.Lock()
	if s.have && clock.Now(h.o.Clock).Sub(s.at) < h.o.CacheTTL {
		r := s.result
		s.mu.Unlock()
		return r
	}
	done := s.running
	if done == nil {
		done = make(chan struct{})
		s.running = done
		go func() { // detached: a caller giving up does not abort the run for others
			s.run(h)
			close(done)
		}()
	}
	// done, not s.running, from here: the run may already have finished
	// and cleared s.running, and a nil channel would never be ready.
	s.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return Result{Name: s.c.Name, Status: Fail, Time: clock.Now(h.o.Clock), Err: ctx.Err(), Optional: s.c.Optional}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.result
}

// latest returns the last background result (failing until the first run).
func (s *checkState) latest(h *Health, _ context.Context) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.have {
		return Result{Name: s.c.Name, Status: Fail, Time: clock.Now(h.o.Clock), Err: errors.New("health: not checked yet"), Optional: s.c.Optional}
	}
	return s.result
}

// run executes the check once with its timeout and records the result.
func (s *checkState) run(h *Health) {
	h.runs.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), s.c.Timeout)
	defer cancel()
	start := clock.Now(h.o.Clock)
	errc := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("health: check %q panicked: %v", s.c.Name, r)
			}
		}()
		errc <- s.c.Func(ctx)
	}()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done(): // a check that ignores its ctx cannot hold the probe
		err = fmt.Errorf("health: check %q timed out after %v", s.c.Name, s.c.Timeout)
	}
	now := clock.Now(h.o.Clock)
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.result.Status
	if err != nil {
		s.failures++
	} else {
		s.failures = 0
	}
	st := Pass
	if s.failures >= s.c.FailureThreshold {
		st = Fail
	}
	s.result = Result{Name: s.c.Name, Status: st, Latency: now.Sub(start), Time: now, Err: err, Optional: s.c.Optional}
	if st == Pass && err != nil {
		s.result.Err = nil // damped: not failing yet
	}
	s.at, s.have, s.running = now, true, nil
	if s.have && prev != st && prev != "" {
		h.o.Logger.Warn("health: check changed state", slog.String("check", s.c.Name), slog.String("from", string(prev)), slog.String("to", string(st)), slog.Any("error", err))
	}
}

// Start runs every check in the background every Options.Interval until
// Close (a no-op without Interval).
func (h *Health) Start() {
	if h.o.Interval <= 0 || h.stop != nil {
		return
	}
	h.stop = make(chan struct{})
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(h.o.Interval)
		defer t.Stop()
		for {
			h.mu.Lock()
			var all []*checkState
			for _, cs := range h.checks {
				all = append(all, cs...)
			}
			h.mu.Unlock()
			var wg sync.WaitGroup
			for _, s := range all {
				wg.Add(1)
				go func() { defer wg.Done(); s.run(h) }()
			}
			wg.Wait()
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops the background checks started by Start. It is idempotent.
func (h *Health) Close() error {
	if h.stop != nil {
		select {
		case <-h.stop:
		default:
			close(h.stop)
		}
		h.wg.Wait()
	}
	return nil
}

// Stats is a snapshot for metrics.
type Stats struct {
	// Runs counts check executions (cache hits are not runs).
	Runs uint64
	// Draining is true while readiness is forced to fail.
	Draining bool
}

// Stats returns a snapshot.
func (h *Health) Stats() Stats { return Stats{Runs: h.runs.Load(), Draining: h.draining.Load()} }

// Handler serves the probe of kind as application/health+json: 200 with
// status pass or warn, 503 with fail.
func (h *Health) Handler(kind Kind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := h.Run(r.Context(), kind)
		body := h.document(rep)
		w.Header().Set("Content-Type", "application/health+json")
		w.Header().Set("Cache-Control", "no-store")
		if rep.Status == Fail {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
}

// Live, Ready and Started are Handler(Liveness), Handler(Readiness) and
// Handler(Startup).
func (h *Health) Live() http.Handler { return h.Handler(Liveness) }

// Ready is Handler(Readiness).
func (h *Health) Ready() http.Handler { return h.Handler(Readiness) }

// Started is Handler(Startup).
func (h *Health) Started() http.Handler { return h.Handler(Startup) }

// document is the draft-inadarei-api-health-check body.
type document struct {
	Status    Status                   `json:"status"`
	Version   string                   `json:"version,omitempty"`
	ServiceID string                   `json:"serviceId,omitempty"`
	Checks    map[string][]checkDetail `json:"checks,omitempty"`
}

type checkDetail struct {
	Status        Status  `json:"status"`
	ObservedValue float64 `json:"observedValue"`
	ObservedUnit  string  `json:"observedUnit"`
	Time          string  `json:"time"`
	Output        string  `json:"output,omitempty"`
	Optional      bool    `json:"optional,omitempty"`
}

func (h *Health) document(rep Report) document {
	d := document{Status: rep.Status, Version: h.o.Version, ServiceID: h.o.ServiceID, Checks: map[string][]checkDetail{}}
	for _, r := range rep.Results {
		cd := checkDetail{Status: r.Status, ObservedValue: float64(r.Latency.Microseconds()) / 1000, ObservedUnit: "ms", Time: r.Time.UTC().Format(time.RFC3339Nano), Optional: r.Optional}
		if r.Err != nil {
			cd.Output = r.Err.Error()
		}
		d.Checks[r.Name+":responseTime"] = append(d.Checks[r.Name+":responseTime"], cd)
	}
	return d
}
