package idempotencypg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/every"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/pgplan"
	"github.com/scalekit-go/scalekit/internal/renew"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/internal/token"
)

// Options configures New. Pool is required.
type Options struct {
	// Pool is the database.
	Pool *pgxpool.Pool
	// Table is the records table (optionally schema-qualified). Default:
	// "idempotency_keys".
	Table string
	// Timeout bounds each call outside InTx/GuardTx. Default: 1s.
	Timeout time.Duration
	// SweepInterval, when set, deletes expired records in the background
	// every interval until Close. Default: 0 (call Sweep yourself).
	SweepInterval time.Duration
	// Clock replaces the system clock (see package clock); nil is the
	// server's clock (PostgreSQL now()).
	Clock clock.Clock
	// Logger receives sweep failures. Default: discard.
	Logger *slog.Logger
	// ReplanInterval is how often the Store, while in use, reads the size
	// of its table (one small query; none in an interval without a call):
	// when it has halved or doubled since the
	// statements were planned, the Store sends them again under new text,
	// so that PostgreSQL plans them for the new size. A prepared statement
	// keeps the plan made when it was prepared until the table is
	// analyzed: one planned while the table was small (a new Store) reads
	// every row of it once the table has grown. Default: 2s; negative:
	// never.
	ReplanInterval time.Duration
}

// Store is an idempotency.Store on PostgreSQL. It is safe for concurrent
// use.
type Store struct {
	pool    *pgxpool.Pool
	table   string
	timeout time.Duration
	clk     clock.Clock
	log     *slog.Logger

	plans *pgplan.Set[statements] // planned for the table's size (package internal/pgplan)

	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// New returns a Store, or an error naming the option to fix. It does not
// touch the database; call Migrate once to create the table.
func New(o Options) (*Store, error) {
	bad := func(f string, args ...any) (*Store, error) {
		return nil, fmt.Errorf("%w: idempotencypg: Options."+f, append([]any{idempotency.ErrInvalid}, args...)...)
	}
	if o.Pool == nil {
		return bad("Pool is required")
	}
	if o.Table == "" {
		o.Table = "idempotency_keys"
	}
	if !tableName.MatchString(o.Table) {
		return bad("Table %q is not a plain [schema.]name", o.Table)
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.Timeout < 0 {
		return bad("Timeout must be > 0, got %v", o.Timeout)
	}
	if o.SweepInterval < 0 {
		return bad("SweepInterval must be >= 0, got %v", o.SweepInterval)
	}
	if o.ReplanInterval == 0 {
		o.ReplanInterval = pgplan.DefaultInterval
	}
	o.Logger = logx.Or(o.Logger)
	s := &Store{pool: o.Pool, table: o.Table, timeout: o.Timeout, clk: o.Clock, log: o.Logger, stop: make(chan struct{})}
	s.plans = pgplan.New(o.Pool, []string{o.Table}, func(tag string) *statements { return prepare(o.Table, tag) })
	if o.SweepInterval > 0 {
		s.done.Add(1)
		go s.sweeper(o.SweepInterval)
	}
	if o.ReplanInterval > 0 {
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			s.plans.Run(s.stop, o.ReplanInterval, s.log, "idempotencypg")
		}()
	}
	return s, nil
}

// statements are the Store's statements, each beginning with the tag of
// the table's size class (see pgplan).
type statements struct{ begin, complete, release, extend string }

// prepare returns the statements on table t, each beginning with tag. They
// take the time as a parameter (serverclock.Param: NULL for the
// database's now()).
func prepare(t, tag string) *statements {
	s := &statements{}
	now6, now3 := serverclock.SQL(6), serverclock.SQL(3)
	s.begin = tag + `WITH ins AS (
  INSERT INTO ` + t + ` AS k (key, fingerprint, state, token, lease_until, result, expires_at)
  VALUES ($1, $2, 'run', $3, ` + now6 + ` + $4 * interval '1 millisecond', NULL,
          ` + now6 + ` + $5 * interval '1 millisecond')
  ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'run', token = EXCLUDED.token,
     lease_until = EXCLUDED.lease_until, result = NULL,
     expires_at = CASE WHEN k.expires_at <= ` + now6 + ` THEN EXCLUDED.expires_at ELSE k.expires_at END
  WHERE k.expires_at <= ` + now6 + `
     OR (k.state = 'run' AND k.fingerprint = EXCLUDED.fingerprint AND k.lease_until <= ` + now6 + `)
  RETURNING 1
)
SELECT 'started', NULL::bytea, 0::bigint FROM ins
UNION ALL
SELECT CASE WHEN k.fingerprint <> $2 THEN 'mismatch' WHEN k.state = 'done' THEN 'done' ELSE 'running' END,
       CASE WHEN k.fingerprint = $2 AND k.state = 'done' THEN k.result END,
       greatest(0, ceil(extract(epoch FROM k.lease_until - ` + now6 + `) * 1000))::bigint
FROM ` + t + ` k WHERE k.key = $1 AND k.expires_at > ` + now6 + ` AND NOT EXISTS (SELECT 1 FROM ins)`
	held := ` WHERE key = $1 AND token = $2 AND state = 'run' AND expires_at > ` + now3
	s.complete = tag + `UPDATE ` + t + ` SET state = 'done', result = $4, expires_at = ` + now3 + ` + $5 * interval '1 millisecond'` + held
	s.release = tag + `DELETE FROM ` + t + held
	// A renewal does not wait on the row: its lock is held by a Begin (a
	// moment) or by the transaction completing the key (InTx, GuardTx),
	// after whose commit the renewal would find the key completed and
	// report the lease lost. NOWAIT fails it at once instead (SQLSTATE
	// 55P03, not ErrLeaseLost); the heartbeat renews at the next beat.
	s.extend = tag + `UPDATE ` + t + ` SET lease_until = ` + now3 + ` + $4 * interval '1 millisecond'` + held +
		` AND key = (SELECT key FROM ` + t + ` WHERE key = $1 FOR UPDATE NOWAIT)`
	return s
}

// Migrate creates the table and its expiry index if they do not exist.
func (s *Store) Migrate(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
  key         text PRIMARY KEY,
  fingerprint text NOT NULL,
  state       text NOT NULL CHECK (state IN ('run', 'done')),
  token       text NOT NULL,
  lease_until timestamptz NOT NULL,
  result      bytea,
  expires_at  timestamptz NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS `+indexName(s.table)+` ON `+s.table+` (expires_at)`)
	if err != nil {
		return fmt.Errorf("idempotencypg: Migrate: %w", err)
	}
	return nil
}

func indexName(table string) string {
	for i := len(table) - 1; i >= 0; i-- {
		if table[i] == '.' {
			return table[i+1:] + "_expires_at"
		}
	}
	return table + "_expires_at"
}

func ms(d time.Duration) int64 { return max(1, d.Milliseconds()) }

// Begin is idempotency.Store.Begin: one statement.
func (s *Store) Begin(ctx context.Context, key, fingerprint string, lease, ttl time.Duration) (idempotency.Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	token := token.New()
	// A Begin racing another one's INSERT of the same new key finds the
	// row on the conflict path but not in its statement snapshot; it asks
	// again with a fresh snapshot.
	for attempt := 0; attempt < 3; attempt++ {
		var (
			status string
			result []byte
			left   int64
		)
		err := s.pool.QueryRow(ctx, s.plans.Get().begin, key, fingerprint, token, ms(lease), ms(ttl), serverclock.Param(s.clk)).Scan(&status, &result, &left)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return idempotency.Outcome{}, err
		}
		switch status {
		case "started":
			return idempotency.Outcome{Status: idempotency.Started, Token: token}, nil
		case "running":
			return idempotency.Outcome{Status: idempotency.Running, RetryAfter: time.Duration(left) * time.Millisecond}, nil
		case "done":
			return idempotency.Outcome{Status: idempotency.Completed, Result: result}, nil
		default:
			return idempotency.Outcome{Status: idempotency.Mismatch}, nil
		}
	}
	return idempotency.Outcome{Status: idempotency.Running, RetryAfter: time.Second}, nil
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (s *Store) fenced(ctx context.Context, db execer, sql string, args ...any) error {
	tag, err := db.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		return idempotency.ErrLeaseLost
	}
	return nil
}

// Complete is idempotency.Store.Complete.
func (s *Store) Complete(ctx context.Context, key, token string, result []byte, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.fenced(ctx, s.pool, s.plans.Get().complete, key, token, serverclock.Param(s.clk), result, ms(ttl))
}

// CompleteTx is Complete inside tx: commit tx and the key is completed
// with it, roll it back and it is not.
func (s *Store) CompleteTx(ctx context.Context, tx pgx.Tx, key, token string, result []byte, ttl time.Duration) error {
	return s.fenced(ctx, tx, s.plans.Get().complete, key, token, serverclock.Param(s.clk), result, ms(ttl))
}

// Release is idempotency.Store.Release.
func (s *Store) Release(ctx context.Context, key, token string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.fenced(ctx, s.pool, s.plans.Get().release, key, token, serverclock.Param(s.clk))
}

// Extend is idempotency.Store.Extend. It does not wait for the key's row
// lock: while another transaction holds it (one completing the key) it
// fails at once with PostgreSQL's lock_not_available error, which is not
// ErrLeaseLost.
func (s *Store) Extend(ctx context.Context, key, token string, lease time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.fenced(ctx, s.pool, s.plans.Get().extend, key, token, serverclock.Param(s.clk), ms(lease))
}

// InTx runs fn in a transaction and completes the request's idempotency
// key with the response fn returns in the same transaction, then returns
// that response for the handler to write. ctx must be the request's (the
// idempotency middleware, over this Store, puts the key in it). If fn
// fails or panics, or the key's lease was lost to another request, the
// transaction rolls back: no effect, and a retry runs again.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) (idempotency.Response, error)) (idempotency.Response, error) {
	exec, ok := idempotency.ExecutionFrom(ctx)
	if !ok {
		return idempotency.Response{}, fmt.Errorf("%w: idempotencypg: InTx needs the ctx of a request inside the idempotency middleware", idempotency.ErrInvalid)
	}
	var resp idempotency.Response
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if resp, err = fn(ctx, tx); err != nil {
			return err
		}
		return s.CompleteTx(ctx, tx, exec.Key, exec.Token, idempotency.EncodeResponse(resp), exec.TTL)
	})
	if err != nil {
		return idempotency.Response{}, err
	}
	exec.MarkCompleted()
	return resp, nil
}

// GuardTx is the job-consumer form of InTx: it runs fn for key at most
// once to completion, with fn's effect and the key's completion in one
// transaction. A completed key returns its stored result without running
// fn; a running one an *idempotency.InProgressError; a failure of fn
// rolls back and releases the key, so a retry runs again, and so does a
// panic of fn (the key is released before the panic goes on). While fn
// runs the key's lease is renewed every lease/3; if a renewal finds the
// lease lost (another caller took the key over), fn's ctx and the
// transaction's are cancelled with cause idempotency.ErrLeaseLost and the
// error returned matches it.
func (s *Store) GuardTx(ctx context.Context, key string, lease, ttl time.Duration, fn func(ctx context.Context, tx pgx.Tx) ([]byte, error)) (res []byte, err error) {
	if lease < 3*time.Millisecond {
		return nil, fmt.Errorf("%w: idempotencypg: GuardTx lease must be >= 3ms, got %v", idempotency.ErrInvalid, lease)
	}
	out, err := s.Begin(ctx, key, "", lease, ttl)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", idempotency.ErrUnavailable, err)
	}
	switch out.Status {
	case idempotency.Completed:
		return out.Result, nil
	case idempotency.Running:
		return nil, &idempotency.InProgressError{Key: key, RetryAfter: out.RetryAfter}
	case idempotency.Mismatch:
		return nil, fmt.Errorf("%w (key %q)", idempotency.ErrMismatch, key)
	}
	fctx, cancel := context.WithCancelCause(ctx)
	hb := renew.Start(lease/3, func() bool {
		rctx, rcancel := context.WithTimeout(context.Background(), lease/3)
		defer rcancel()
		if err := s.Extend(rctx, key, out.Token, lease); errors.Is(err, idempotency.ErrLeaseLost) {
			s.log.WarnContext(ctx, "idempotencypg: lease lost while running; cancelling the work, another caller may run the key", slog.String("key", key))
			cancel(idempotency.ErrLeaseLost)
			return false
		}
		return true
	})
	committed := false
	defer func() {
		hb.Stop()
		lost := errors.Is(context.Cause(fctx), idempotency.ErrLeaseLost)
		cancel(nil)
		if committed {
			return
		}
		// fn failed or panicked (the transaction rolled back): release
		// the key so a retry runs again.
		if aerr := s.Release(context.WithoutCancel(ctx), key, out.Token); aerr != nil && !errors.Is(aerr, idempotency.ErrLeaseLost) {
			s.log.WarnContext(ctx, "idempotencypg: cannot release a failed key; it runs again once its lease expires", slog.String("key", key), slog.Any("error", aerr))
		}
		if lost && err != nil && !errors.Is(err, idempotency.ErrLeaseLost) {
			err = fmt.Errorf("%w (%w while running)", err, idempotency.ErrLeaseLost)
		}
	}()
	err = pgx.BeginFunc(fctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if res, err = fn(fctx, tx); err != nil {
			return err
		}
		// The completion locks the key's row until the commit: stop
		// renewing first, or a renewal would wait on that lock. The
		// completion is fenced by the token, so a lease that lapses from
		// here on is only lost if another caller took the key over.
		hb.Stop()
		return s.CompleteTx(fctx, tx, key, out.Token, res, ttl)
	})
	if err != nil {
		return nil, err
	}
	committed = true
	return res, nil
}

// Sweep deletes expired records, at most limit (<= 0: 10,000) per call,
// and returns how many it deleted.
func (s *Store) Sweep(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = 10_000
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+s.table+` WHERE key IN (SELECT key FROM `+s.table+
		` WHERE expires_at <= `+serverclock.SQL(1)+` LIMIT $2)`, serverclock.Param(s.clk), limit)
	if err != nil {
		return 0, fmt.Errorf("idempotencypg: Sweep: %w", err)
	}
	return tag.RowsAffected(), nil
}

func (s *Store) sweeper(interval time.Duration) {
	defer s.done.Done()
	every.Run(s.stop, interval, func(ctx context.Context) {
		if _, err := s.Sweep(ctx, 0); err != nil {
			s.log.Warn("idempotencypg: sweep failed", slog.Any("error", err))
		}
	})
}

// Close stops the background sweep (if any) and the replanner. It does
// not close the pool.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.stop) })
	s.done.Wait()
	return nil
}

var _ idempotency.Store = (*Store)(nil)
