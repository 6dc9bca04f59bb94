package dbrouter

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/scalekit-go/scalekit/clock"
)

// replica is one replica's routing state. The hot path reads only atomics;
// the fields under "monitor" are guarded by Router.mu.
type replica struct {
	idx    int
	name   string
	pool   *pgxpool.Pool
	tracer *Tracer

	replay   atomic.Uint64 // LSN replayed, by the latest check or poll
	inflight atomic.Int64
	reads    atomic.Uint64
	polling  atomic.Bool   // a TokenWait poll is running
	unsafe   atomic.Bool   // replay went backwards: not for token reads
	checkLSN atomic.Uint64 // the last check's replay reading; 0 after a failure

	// monitor
	healthy, seen  bool
	failedOut      bool // ejected for failures, not lag
	good, bad      int
	lag            int64
	lagKnown       bool
	reason         string
	lastErr        string
	lastCheck      time.Time
	ejections      uint64
	readmissions   uint64
	failedReads    uint64
	checks, checkF uint64
	reachable      bool // the last check answered, in recovery
	regressions    uint64
}

func (rep *replica) acquire() {
	rep.inflight.Add(1)
	rep.reads.Add(1)
}

func (rep *replica) release() { rep.inflight.Add(-1) }

func (rep *replica) raiseReplay(l LSN) {
	for {
		cur := rep.replay.Load()
		if uint64(l) <= cur || rep.replay.CompareAndSwap(cur, uint64(l)) {
			return
		}
	}
}

// retryOnPrimary reports whether a read that failed on rep with err should
// run again on the primary: the replica is down or lost the connection (an
// observation against its health), a recovery conflict cancelled it, or it
// wrote (25006, a routing bug). SQL errors of the caller's own making, and
// anything after the caller's ctx ended, are returned as they are.
func (r *Router) retryOnPrimary(ctx context.Context, rep *replica, sql string, err error) bool {
	if ctx.Err() != nil || r.closed.Load() {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "25006": // read_only_sql_transaction
			r.readOnlyRetries.Add(1)
			r.o.Logger.ErrorContext(ctx, "dbrouter: routing bug: a statement sent to a replica as a read writes; retried on the primary (use Exec, a read-write BeginTx or dbrouter.Primary(ctx))",
				"replica", rep.name, "sql", truncate(sql, 200), "err", pe.Message)
			return true
		case pe.Code == "40001" || pe.Code == "40P01": // recovery conflict on a standby
			r.replicaRetries.Add(1)
			return true
		case strings.HasPrefix(pe.Code, "57P") || strings.HasPrefix(pe.Code, "08") || pe.Code == "53300":
			// shutting down, crashed, starting up, connection failure, too many connections
			r.replicaRetries.Add(1)
			r.readFailed(rep, err)
			return true
		}
		return false
	}
	if !isConnError(err) {
		return false
	}
	r.replicaRetries.Add(1)
	r.readFailed(rep, err)
	return true
}

func isPgError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// isConnError reports whether err is a failure to reach or talk to the
// server rather than an error of the query or of scanning its result.
func isConnError(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.As(err, &ne)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// replicaRows is a replica's pgx.Rows: it counts the read in flight until
// the rows close, and runs the query on the primary when the replica fails
// before the first row.
type replicaRows struct {
	pgx.Rows
	r        *Router
	rep      *replica
	ctx      context.Context
	sql      string
	args     []any
	started  bool
	released bool
}

func (x *replicaRows) release() {
	if !x.released {
		x.released = true
		x.rep.release()
	}
}

func (x *replicaRows) Next() bool {
	if x.Rows.Next() {
		x.started = true
		return true
	}
	x.release()
	if x.started {
		return false
	}
	x.started = true
	if err := x.Rows.Err(); err != nil && x.r.retryOnPrimary(x.ctx, x.rep, x.sql, err) {
		x.r.primaryReads.Add(1)
		x.Rows, _ = x.r.w().pool.Query(x.r.retryRoute(x.ctx), x.sql, x.args...)
		return x.Rows.Next()
	}
	return false
}

func (x *replicaRows) Close() {
	x.Rows.Close()
	x.release()
}

// replicaRow is a replica's pgx.Row, with the same retry as replicaRows.
type replicaRow struct {
	row      pgx.Row
	r        *Router
	rep      *replica
	ctx      context.Context
	sql      string
	args     []any
	released bool
}

func (x *replicaRow) Scan(dest ...any) error {
	err := x.row.Scan(dest...)
	if !x.released {
		x.released = true
		x.rep.release()
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) && x.r.retryOnPrimary(x.ctx, x.rep, x.sql, err) {
		x.r.primaryReads.Add(1)
		return x.r.w().pool.QueryRow(x.r.retryRoute(x.ctx), x.sql, x.args...).Scan(dest...)
	}
	return err
}

// replicaTx counts a read-only transaction on a replica in flight until it
// ends.
type replicaTx struct {
	pgx.Tx
	rep  *replica
	done atomic.Bool
}

func (t *replicaTx) end() {
	if t.done.CompareAndSwap(false, true) {
		t.rep.release()
	}
}

func (t *replicaTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.end()
	return err
}

func (t *replicaTx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	t.end()
	return err
}

// sessionTx advances its session when it commits.
type sessionTx struct {
	pgx.Tx
	r    *Router
	sess *session
}

func (t *sessionTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	if err == nil || !(errors.Is(err, pgx.ErrTxClosed) || errors.Is(err, pgx.ErrTxCommitRollback) || isPgError(err)) {
		t.sess.wrote(clock.Now(t.r.o.Clock), t.r.o.Consistency == ConsistencyLSN)
	}
	return err
}

// sessionBatch advances its session when the batch closes.
type sessionBatch struct {
	pgx.BatchResults
	r    *Router
	sess *session
	once atomic.Bool
}

func (b *sessionBatch) Close() error {
	err := b.BatchResults.Close()
	if b.once.CompareAndSwap(false, true) && (err == nil || !(isPgError(err) || pgconn.SafeToRetry(err))) {
		b.sess.wrote(clock.Now(b.r.o.Clock), b.r.o.Consistency == ConsistencyLSN)
	}
	return err
}

// errRow and errRows carry an error the router found before any query.
type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

type errRows struct{ err error }

func (errRows) Close()                                       {}
func (e errRows) Err() error                                 { return e.err }
func (errRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (errRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (errRows) Next() bool                                   { return false }
func (e errRows) Scan(...any) error                          { return e.err }
func (e errRows) Values() ([]any, error)                     { return nil, e.err }
func (e errRows) RawValues() [][]byte                        { return nil }
func (errRows) Conn() *pgx.Conn                              { return nil }
func (errRows) TypeMap() *pgtype.Map                         { return nil }
