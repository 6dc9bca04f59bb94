package shutdown

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/scalekit-go/scalekit/internal/logx"
)

// ErrInvalid is wrapped by errors about bad options or registrations.
var ErrInvalid = errors.New("shutdown: invalid")

// ErrTimeout is wrapped when a step or the whole sequence runs out of time.
var ErrTimeout = errors.New("shutdown: timed out")

// Shutdowner is what servers and workers expose: *http.Server, queue
// workers. Shutdown stops taking new work and waits for work in flight
// until ctx ends.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// Drainer is what readiness exposes (*health.Health): SetDraining(true)
// makes the readiness probe fail so load balancers stop sending traffic.
type Drainer interface {
	SetDraining(bool)
}

// Options configures New. The zero value works.
type Options struct {
	// Signals start the sequence. Default: SIGTERM and SIGINT. A second
	// signal during the sequence exits at once with code 1.
	Signals []os.Signal
	// Readiness is flipped to draining first. Default: none.
	Readiness Drainer
	// DrainDelay is the wait between failing readiness and stopping the
	// servers, long enough for load balancers to notice (a few probe
	// periods). Default: 5s.
	DrainDelay time.Duration
	// Timeout bounds the whole sequence; keep it below the orchestrator's
	// grace period (Kubernetes: 30s). Steps still running then are abandoned
	// and reported. Default: 25s.
	Timeout time.Duration
	// StepTimeout bounds each resource's Close. Default: 5s.
	StepTimeout time.Duration
	// Logger receives every step with its duration. Default: discard.
	Logger *slog.Logger
	// Exit is called with 1 on a second signal. Default: os.Exit.
	Exit func(code int)
}

// Coordinator runs the graceful shutdown sequence once: readiness off ->
// drain delay -> Shutdown every server and worker (in parallel) -> close
// every resource in reverse registration order, each with its own timeout
// -> done, all before Timeout. It is safe for concurrent use.
type Coordinator struct {
	o Options

	// notify subscribes Wait to the signals: signal.Notify, replaced by
	// tests to learn when the handler is installed.
	notify func(c chan<- os.Signal, sig ...os.Signal)

	mu        sync.Mutex
	servers   []named[Shutdowner]
	closers   []named[func(context.Context) error]
	trigger   chan struct{}
	triggered bool
	done      chan struct{}
	err       error
}

type named[T any] struct {
	name string
	v    T
}

// New returns a Coordinator, or an error naming the bad option.
func New(o Options) (*Coordinator, error) {
	if len(o.Signals) == 0 {
		o.Signals = []os.Signal{syscall.SIGTERM, os.Interrupt}
	}
	if o.DrainDelay == 0 {
		o.DrainDelay = 5 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 25 * time.Second
	}
	if o.StepTimeout == 0 {
		o.StepTimeout = 5 * time.Second
	}
	o.Logger = logx.Or(o.Logger)
	if o.Exit == nil {
		o.Exit = os.Exit
	}
	switch {
	case o.DrainDelay < 0:
		return nil, fmt.Errorf("%w: Options.DrainDelay must be >= 0, got %v", ErrInvalid, o.DrainDelay)
	case o.Timeout <= o.DrainDelay:
		return nil, fmt.Errorf("%w: Options.Timeout (%v) must be longer than DrainDelay (%v)", ErrInvalid, o.Timeout, o.DrainDelay)
	case o.StepTimeout <= 0:
		return nil, fmt.Errorf("%w: Options.StepTimeout must be > 0, got %v", ErrInvalid, o.StepTimeout)
	}
	return &Coordinator{o: o, notify: signal.Notify, trigger: make(chan struct{}), done: make(chan struct{})}, nil
}

// RegisterServer registers something to Shutdown after the drain delay
// (an *http.Server, a queue worker). Servers stop in parallel.
func (c *Coordinator) RegisterServer(name string, s Shutdowner) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.servers = append(c.servers, named[Shutdowner]{name, s})
}

// RegisterCloser registers a resource (a client, a file) whose Close runs
// after the servers stopped, in reverse registration order: register what
// others depend on first, and it closes last.
func (c *Coordinator) RegisterCloser(name string, cl io.Closer) {
	c.RegisterCloseFunc(name, func(context.Context) error { return cl.Close() })
}

// RegisterCloseFunc registers a function that closes a resource, run after
// the servers stopped, in reverse registration order like RegisterCloser,
// with a ctx that ends after StepTimeout. For a Close(ctx) error method,
// pass the method value; for a Close() with no result (pgxpool.Pool), wrap
// it: func(context.Context) error { pool.Close(); return nil }.
func (c *Coordinator) RegisterCloseFunc(name string, fn func(ctx context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closers = append(c.closers, named[func(context.Context) error]{name, fn})
}

// Trigger starts the sequence as a signal would. Later calls do nothing.
func (c *Coordinator) Trigger() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.triggered {
		c.triggered = true
		close(c.trigger)
	}
}

// Done is closed when the sequence has finished.
func (c *Coordinator) Done() <-chan struct{} { return c.done }

// Wait blocks until a signal, Trigger or ctx ending (which also triggers),
// runs the sequence and returns every step's error joined (nil when all
// stopped cleanly).
func (c *Coordinator) Wait(ctx context.Context) error {
	sigs := make(chan os.Signal, 2)
	c.notify(sigs, c.o.Signals...)
	defer signal.Stop(sigs)
	return c.wait(ctx, sigs)
}

// wait is Wait with the signals coming from sigs (nil: none).
func (c *Coordinator) wait(ctx context.Context, sigs <-chan os.Signal) error {
	select {
	case s := <-sigs:
		c.o.Logger.Info("shutdown: signal received", slog.String("signal", s.String()))
	case <-c.trigger:
		c.o.Logger.Info("shutdown: triggered")
	case <-ctx.Done():
		c.o.Logger.Info("shutdown: context ended")
	}
	c.Trigger()
	go func() { // a second signal forces the exit
		select {
		case s := <-sigs:
			c.o.Logger.Error("shutdown: second signal, exiting now", slog.String("signal", s.String()))
			c.o.Exit(1)
		case <-c.done:
		}
	}()
	c.err = c.run()
	close(c.done)
	return c.err
}

func (c *Coordinator) run() error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), c.o.Timeout)
	defer cancel()
	var errs []error
	step := func(name string, t0 time.Time, err error) {
		lvl := slog.LevelInfo
		if err != nil {
			lvl = slog.LevelError
			errs = append(errs, fmt.Errorf("shutdown: %s: %w", name, err))
		}
		c.o.Logger.Log(ctx, lvl, "shutdown: step", slog.String("step", name), slog.Duration("took", time.Since(t0)), slog.Any("error", err))
	}

	if c.o.Readiness != nil {
		c.o.Readiness.SetDraining(true)
		step("readiness off", time.Now(), nil)
	}
	t0 := time.Now()
	select {
	case <-time.After(c.o.DrainDelay):
	case <-ctx.Done():
	}
	step("drain delay", t0, nil)

	c.mu.Lock()
	servers := append([]named[Shutdowner](nil), c.servers...)
	closers := append([]named[func(context.Context) error](nil), c.closers...)
	c.mu.Unlock()

	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			err := s.v.Shutdown(ctx)
			if ctx.Err() != nil && err != nil {
				err = fmt.Errorf("%w: %w", ErrTimeout, err)
			}
			mu.Lock()
			step("stop "+s.name, t0, err)
			mu.Unlock()
		}()
	}
	wg.Wait()

	for i := len(closers) - 1; i >= 0; i-- {
		cl := closers[i]
		t0 := time.Now()
		sctx, scancel := context.WithTimeout(ctx, c.o.StepTimeout)
		errc := make(chan error, 1)
		go func() { errc <- cl.v(sctx) }()
		var err error
		select {
		case err = <-errc:
		case <-sctx.Done(): // a Close that ignores ctx cannot hold the exit
			err = fmt.Errorf("%w after %v", ErrTimeout, time.Since(t0).Round(time.Millisecond))
		}
		scancel()
		step("close "+cl.name, t0, err)
	}
	c.o.Logger.Info("shutdown: done", slog.Duration("took", time.Since(start)), slog.Int("errors", len(errs)))
	return errors.Join(errs...)
}
