package ratelimitredis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/redisx"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// FailureMode is what a limiter decides while Redis cannot answer (down,
// slower than Options.Timeout, or skipped by the open circuit).
type FailureMode int

const (
	// FailOpen admits every event while Redis is unavailable (or asks
	// Options.Fallback when set). It is the default: a rate limiter that
	// takes the whole service down with its Redis does more harm than the
	// abuse it stops.
	FailOpen FailureMode = iota
	// FailClosed denies every event while Redis is unavailable (or asks
	// Options.Fallback when set).
	FailClosed
)

// String is "open" or "closed".
func (m FailureMode) String() string {
	switch m {
	case FailOpen:
		return "open"
	case FailClosed:
		return "closed"
	}
	return fmt.Sprintf("FailureMode(%d)", int(m))
}

// DefaultTimeout bounds one decision's round trip to Redis unless
// Options.Timeout says otherwise.
const DefaultTimeout = 100 * time.Millisecond

// backend is what Limiter and Concurrency share: the client, the timeout,
// the circuit and the failure mode.
type backend struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	mode    FailureMode
	br      *breaker.Breaker
	log     *slog.Logger
	clk     clock.Clock // nil: Redis TIME

	// Counted by degrade: Redis failures, calls the open circuit skipped,
	// and the decisions made without Redis.
	errors, skipped, failOpen, failClosed, fallbacks atomic.Uint64
}

// degradedBy is who decides while Redis is unavailable.
type degradedBy int

const (
	byFallback degradedBy = iota
	byFailClosed
	byFailOpen
)

// degrade counts and logs a decision Redis could not make and says who
// makes it instead: the fallback when there is one, else the failure mode.
func (b *backend) degrade(ctx context.Context, key string, cause error, fallback bool) degradedBy {
	if errors.Is(cause, breaker.ErrOpen) {
		b.skipped.Add(1)
	} else {
		b.errors.Add(1)
		b.log.LogAttrs(ctx, slog.LevelDebug, "ratelimitredis: Redis failed", slog.String("key", key), slog.Any("error", cause),
			slog.String("failure_mode", b.mode.String()), slog.Bool("fallback", fallback))
	}
	return b.instead(fallback)
}

// fail counts and logs a batch of decisions Redis could not make: one
// failed round trip, or decisions the open circuit skipped. Each decision
// is then made by instead.
func (b *backend) fail(ctx context.Context, cause error, decisions int) {
	if errors.Is(cause, breaker.ErrOpen) {
		b.skipped.Add(uint64(decisions))
		return
	}
	b.errors.Add(1)
	b.log.LogAttrs(ctx, slog.LevelDebug, "ratelimitredis: Redis failed", slog.Int("decisions", decisions), slog.Any("error", cause),
		slog.String("failure_mode", b.mode.String()))
}

// instead counts a decision made without Redis and says who makes it.
func (b *backend) instead(fallback bool) degradedBy {
	switch {
	case fallback:
		b.fallbacks.Add(1)
		return byFallback
	case b.mode == FailClosed:
		b.failClosed.Add(1)
		return byFailClosed
	}
	b.failOpen.Add(1)
	return byFailOpen
}

type backendOptions struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	mode    FailureMode
	br      *breaker.Breaker
	log     *slog.Logger
	clk     clock.Clock
	name    string // the options type, for errors: "Options" or "ConcurrencyOptions"
}

func newBackend(o backendOptions) (*backend, error) {
	bad := func(f string, args ...any) (*backend, error) {
		return nil, fmt.Errorf("%w: "+o.name+"."+f, append([]any{ratelimit.ErrInvalid}, args...)...)
	}
	if o.client == nil {
		return bad("Client is required")
	}
	if o.prefix == "" {
		o.prefix = "ratelimit"
	}
	if o.timeout == 0 {
		o.timeout = DefaultTimeout
	}
	if o.timeout < 0 {
		return bad("Timeout must be > 0, got %v", o.timeout)
	}
	if o.mode != FailOpen && o.mode != FailClosed {
		return bad("Failure must be FailOpen or FailClosed, got %d", int(o.mode))
	}
	if err := redisx.CheckClientTimeouts(o.client, o.timeout); err != nil {
		return bad("Client: %v", err)
	}
	o.log = logx.Or(o.log)
	if o.br == nil {
		br, err := breaker.New(breaker.Options{
			Name:                  "ratelimitredis",
			ConsecutiveFailures:   3,
			OpenTimeout:           time.Second,
			OpenTimeoutMultiplier: 2,
			MaxOpenTimeout:        10 * time.Second,
			Logger:                o.log,
		})
		if err != nil {
			return nil, err
		}
		o.br = br
	}
	return &backend{client: o.client, prefix: o.prefix, timeout: o.timeout, mode: o.mode, br: o.br, log: o.log, clk: o.clk}, nil
}

// key is the hash-tagged Redis key of a limiter key: every key of one
// logical object shares the {prefix:key} tag, so it lives in one slot.
func (b *backend) key(key, suffix string) string {
	return "{" + b.prefix + ":" + key + "}:" + suffix
}

// run calls Redis through the circuit and under the timeout. It returns
// breaker.ErrOpen when the circuit skips Redis, and the caller's own
// ctx error when the caller gave up (which the circuit ignores).
func (b *backend) run(ctx context.Context, fn func(ctx context.Context) error) error {
	return b.br.Do(ctx, func(ctx context.Context) error {
		tctx, cancel := context.WithTimeout(ctx, b.timeout)
		defer cancel()
		err := fn(tctx)
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("ratelimitredis: Redis did not answer within %v: %w", b.timeout, err)
		}
		return err
	})
}

// unavailable reports whether err is Redis failing (as opposed to the
// caller's ctx ending).
func unavailable(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil
}

// asInt64 reads element i of a script's integer array reply.
func asInt64(vals []any, i int) (int64, error) {
	if i >= len(vals) {
		return 0, fmt.Errorf("ratelimitredis: script reply has %d elements, want more than %d", len(vals), i)
	}
	v, ok := vals[i].(int64)
	if !ok {
		return 0, fmt.Errorf("ratelimitredis: script reply element %d is %T, want an integer", i, vals[i])
	}
	return v, nil
}
