package idempotency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/pause"
	"github.com/scalekit-go/scalekit/internal/renew"
)

// GuardOptions configures NewGuard. The zero value works (with an
// in-process MemoryStore).
type GuardOptions struct {
	// Store keeps the records. Default: a new MemoryStore (one process
	// only: use a shared Store for consumers on several machines).
	Store Store
	// TTL is how long a completed key is remembered. Default: 24h.
	TTL time.Duration
	// Lease is how long a running key is held without a heartbeat; the
	// holder renews it every Lease/3 while its function runs, so only a
	// holder that died lets another run the key again. Default: 1m.
	Lease time.Duration
	// Wait makes a duplicate that finds the key running wait for it
	// (polling every PollInterval until ctx ends) instead of returning
	// ErrInProgress at once. Default: false.
	Wait bool
	// PollInterval is how often a waiting duplicate looks again. Default:
	// 50ms.
	PollInterval time.Duration
	// Logger receives lost leases and Store failures. Default: discard.
	Logger *slog.Logger
}

func (o *GuardOptions) defaults(name string) error {
	if o.Store == nil {
		o.Store = NewMemoryStore(MemoryStoreOptions{})
	}
	if o.TTL == 0 {
		o.TTL = 24 * time.Hour
	}
	if o.Lease == 0 {
		o.Lease = time.Minute
	}
	if o.PollInterval == 0 {
		o.PollInterval = 50 * time.Millisecond
	}
	o.Logger = logx.Or(o.Logger)
	switch {
	case o.TTL < 0:
		return fmt.Errorf("%w: %s.TTL must be > 0, got %v", ErrInvalid, name, o.TTL)
	case o.Lease < 3*time.Millisecond:
		return fmt.Errorf("%w: %s.Lease must be >= 3ms, got %v", ErrInvalid, name, o.Lease)
	case o.Lease > o.TTL:
		return fmt.Errorf("%w: %s.Lease (%v) must not be longer than TTL (%v)", ErrInvalid, name, o.Lease, o.TTL)
	case o.PollInterval < 0:
		return fmt.Errorf("%w: %s.PollInterval must be > 0, got %v", ErrInvalid, name, o.PollInterval)
	}
	return nil
}

// Guard runs a function at most once per key to completion: for queue
// consumers (at-least-once delivery) and any work whose duplicates must
// not repeat an effect. It is safe for concurrent use.
type Guard struct {
	o GuardOptions
}

// NewGuard returns a Guard, or an error naming the bad option.
func NewGuard(o GuardOptions) (*Guard, error) {
	if err := o.defaults("GuardOptions"); err != nil {
		return nil, err
	}
	return &Guard{o: o}, nil
}

// Do runs fn for key unless it already completed, and returns fn's result
// or the one stored by the run that completed. While fn runs its lease is
// renewed; a duplicate meanwhile gets an *InProgressError (errors.Is
// ErrInProgress), or waits with GuardOptions.Wait. If the renewal finds
// the lease lost (the Store expired it and another caller took the key
// over), fn's ctx is cancelled with cause ErrLeaseLost: fn must stop, and
// an error it returns then also matches ErrLeaseLost. If fn fails its error
// is returned and nothing is stored, so a retry runs it again; if fn
// panics the key is released too (the heartbeat stops) and the panic goes
// on, so a redelivery after a recovered panic runs fn again. A Store
// failure returns an error wrapping ErrUnavailable and fn does not run.
// Execution is at-least-once if a holder dies mid-run (its lease expires
// and a retry runs fn again); make fn's effect transactional with its
// completion (idempotencypg) for exactly once.
func (g *Guard) Do(ctx context.Context, key string, fn func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("%w: key must not be empty", ErrInvalid)
	}
	for {
		out, err := g.o.Store.Begin(ctx, key, "", g.o.Lease, g.o.TTL)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		switch out.Status {
		case Completed:
			return out.Result, nil
		case Mismatch:
			return nil, fmt.Errorf("%w (key %q)", ErrMismatch, key)
		case Running:
			if !g.o.Wait {
				return nil, &InProgressError{Key: key, RetryAfter: out.RetryAfter}
			}
			if !pause.For(ctx.Done(), min(g.o.PollInterval, max(out.RetryAfter, time.Millisecond))) {
				return nil, ctx.Err()
			}
			continue
		}
		res, err := g.run(ctx, key, out.Token, fn)
		if err != nil {
			return nil, err
		}
		if err := g.o.Store.Complete(context.WithoutCancel(ctx), key, out.Token, res, g.o.TTL); err != nil {
			return res, fmt.Errorf("idempotency: %q ran but its completion was not stored (a retry may run it again): %w", key, err)
		}
		return res, nil
	}
}

// run runs fn under key's lease: a heartbeat renews the lease while fn
// runs and cancels fn's ctx (cause ErrLeaseLost) if it finds the lease
// lost. If fn fails the key is released, so a retry runs it again; if fn
// panics the heartbeat is stopped and the key released all the same before
// the panic goes on (a queue worker that recovers it redelivers the job,
// which must not find the key held for ever).
func (g *Guard) run(ctx context.Context, key, token string, fn func(ctx context.Context) ([]byte, error)) (res []byte, err error) {
	fctx, cancel := context.WithCancelCause(ctx)
	hb := startHeartbeat(g.o.Store, key, token, g.o.Lease, g.o.Logger, func() { cancel(ErrLeaseLost) })
	returned := false
	defer func() {
		hb.Stop()
		lost := errors.Is(context.Cause(fctx), ErrLeaseLost)
		cancel(nil)
		if returned && err == nil {
			return
		}
		if aerr := g.o.Store.Release(context.WithoutCancel(ctx), key, token); aerr != nil && !errors.Is(aerr, ErrLeaseLost) {
			g.o.Logger.WarnContext(ctx, "idempotency: cannot release a failed key; it is retried once its lease expires", slog.String("key", key), slog.Any("error", aerr))
		}
		if lost && err != nil && !errors.Is(err, ErrLeaseLost) {
			err = fmt.Errorf("%w (%w while running)", err, ErrLeaseLost)
		}
	}()
	res, err = fn(fctx)
	returned = true
	return res, err
}

// startHeartbeat renews key's lease every lease/3 until stopped. Once it
// finds the lease lost it logs, calls lost (which cancels the work's ctx:
// another caller may be running the key now) and gives up. A failed
// renewal that is not a loss (the Store is briefly unreachable) is retried
// at the next beat.
func startHeartbeat(s Store, key, token string, lease time.Duration, log *slog.Logger, lost func()) *renew.Renewer {
	return renew.Start(lease/3, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), lease/3)
		defer cancel()
		if err := s.Extend(ctx, key, token, lease); errors.Is(err, ErrLeaseLost) {
			log.Warn("idempotency: lease lost while running; cancelling the work, another caller may run the key", slog.String("key", key))
			lost()
			return false
		}
		return true
	})
}
