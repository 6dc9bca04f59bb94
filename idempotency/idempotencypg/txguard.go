package idempotencypg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/idempotency"
)

// TxGuardOptions configures NewTxGuard. Store is required.
type TxGuardOptions struct {
	// Store keeps the keys; required.
	Store *Store
	// Lease is how long a running key is held without a renewal (renewed
	// every Lease/3 while fn runs). Default: 1m.
	Lease time.Duration
	// TTL is how long a completed key is remembered. Default: 24h.
	TTL time.Duration
}

// TxGuard is GuardTx as an idempotency.KeyGuard: its Do runs fn inside
// the key's transaction, which fn reads from its ctx (TxFromContext), so
// fn's writes through it and the key's completion commit together. Given
// to idempotency.WorkerOptions.Guard it makes a job's database effects
// exactly once. It is safe for concurrent use.
type TxGuard struct {
	o TxGuardOptions
}

// NewTxGuard returns a TxGuard, or an error naming the bad option.
func NewTxGuard(o TxGuardOptions) (*TxGuard, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("%w: idempotencypg: TxGuardOptions.Store is required", idempotency.ErrInvalid)
	}
	if o.Lease == 0 {
		o.Lease = time.Minute
	}
	if o.TTL == 0 {
		o.TTL = 24 * time.Hour
	}
	switch {
	case o.Lease < 3*time.Millisecond:
		return nil, fmt.Errorf("%w: idempotencypg: TxGuardOptions.Lease must be >= 3ms, got %v", idempotency.ErrInvalid, o.Lease)
	case o.TTL < o.Lease:
		return nil, fmt.Errorf("%w: idempotencypg: TxGuardOptions.TTL (%v) must not be shorter than Lease (%v)", idempotency.ErrInvalid, o.TTL, o.Lease)
	}
	return &TxGuard{o: o}, nil
}

// Do runs fn for key with GuardTx: at most once to completion, fn's ctx
// carrying the transaction (TxFromContext) that completes the key. A
// completed key returns its stored result without running fn; a running
// one an *idempotency.InProgressError; an error of fn rolls the
// transaction back and releases the key.
func (g *TxGuard) Do(ctx context.Context, key string, fn func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	return g.o.Store.GuardTx(ctx, key, g.o.Lease, g.o.TTL, func(ctx context.Context, tx pgx.Tx) ([]byte, error) {
		return fn(context.WithValue(ctx, txKey{}, tx))
	})
}

type txKey struct{}

// TxFromContext returns the transaction of the key a TxGuard runs fn
// under (a job handler behind idempotency.Worker's middleware): write the
// job's effects through it and they commit with the key, exactly once.
func TxFromContext(ctx context.Context) (pgx.Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(pgx.Tx)
	return tx, ok
}

var _ idempotency.KeyGuard = (*TxGuard)(nil)
