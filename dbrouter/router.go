package dbrouter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/scalekit-go/scalekit/clock"
)

// Querier is the query surface shared by *pgxpool.Pool, *Router, pgx.Tx and
// *pgx.Conn: write repositories against it and hand them the router, a
// pool, or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	Begin(ctx context.Context) (pgx.Tx, error)
}

var (
	_ Querier = (*Router)(nil)
	_ Querier = (*pgxpool.Pool)(nil)
	_ Querier = (pgx.Tx)(nil)
	_ Querier = (*pgx.Conn)(nil)
)

// Router sends each call to the primary or to a replica by the caller's
// explicit intent, never by reading the SQL: Exec, SendBatch, CopyFrom,
// Begin and every read-write BeginTx go to the primary; Query, QueryRow and
// read-only BeginTx go to a healthy replica unless the ctx says otherwise
// (Primary, WithToken, WithSession). A background monitor keeps each
// replica's health and replayed LSN. It is safe for concurrent use.
type Router struct {
	o        Options
	primary  *pgxpool.Pool // Options.Primary; writes go to wr
	replicas []*replica
	probe    prober
	owned    []*pgxpool.Pool // pools Open made; Close closes them
	pTracer  *Tracer

	healthy atomic.Pointer[[]*replica] // in index order; replaced, never mutated
	wr      atomic.Pointer[writer]     // where writes go; replaced on a failover
	tl      atomic.Pointer[timelines]  // the write server's timeline and history
	kicks   chan struct{}              // a failed write asks the monitor for a check now
	rr      atomic.Uint64
	closed  atomic.Bool

	primaryReads, primaryWrites, fallbacks, tokenPrimary, tokenWaits atomic.Uint64
	readOnlyRetries, replicaRetries, noReplica, forged               atomic.Uint64
	failovers, lostTokens, splitBrain                                atomic.Uint64

	// floor is the LSN every replica must have replayed before it takes
	// reads: the primary's insert position at the router's first good
	// check, raised by Fence; 0 until then.
	floor atomic.Uint64
	// known is the highest primary WAL position the router has seen (the
	// monitor's readings, write tokens, session LSNs): tokens beyond it
	// by more than Options.TokenMargin are forged.
	known atomic.Uint64
	// refresh is the forged-token check's read of the primary's insert
	// position: started counts reads begun (under mu); lsn and err are the
	// last one's result.
	refresh struct {
		mu      sync.Mutex
		started atomic.Uint64
		lsn     LSN
		err     error
	}

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	mu sync.Mutex // the monitor's state below and each replica's mu-guarded fields
	ps primaryState

	// mon is the monitor goroutine's own state.
	mon struct {
		standby []bool // per server ([0] primary): in recovery at its last answer
		split   bool   // the last check saw more than one primary
	}
}

// New returns a Router over opts.Primary and opts.Replicas, after one check
// of every server (bounded by ctx and Options.CheckTimeout; a server that is
// down does not fail New), and starts the monitor. The pools stay the
// caller's: Close stops the monitor and leaves them open.
func New(ctx context.Context, opts Options) (*Router, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := o.checkPools(); err != nil {
		return nil, err
	}
	o.Replicas = append([]*pgxpool.Pool(nil), o.Replicas...)
	names := append([]string(nil), o.ReplicaNames...)
	if names == nil {
		for _, p := range o.Replicas {
			names = append(names, poolName(p))
		}
	}
	r := newRouter(o, names, newPoolProber(o.Primary, o.Replicas))
	r.primary = o.Primary
	r.pTracer = tracerOf(o.Primary)
	r.wr.Store(&writer{name: "primary", pool: o.Primary, tracer: r.pTracer})
	for i, rep := range r.replicas {
		rep.pool = o.Replicas[i]
		rep.tracer = tracerOf(rep.pool)
	}
	r.start(ctx)
	return r, nil
}

// Open is New over pools it makes from connection strings (URLs or
// key=value; see pgxpool.ParseConfig), each with a Tracer (Options.SlowQuery,
// Options.Logger) whose counts appear in Stats. Options.ConfigurePool may
// adjust each pool's config first; a tracer it sets (otelpgx, say) is kept
// and composed with the router's by pgx's multitracer, both seeing every
// query. Options.Primary and Options.Replicas must be nil. Close closes the
// pools.
func Open(ctx context.Context, primaryConn string, replicaConns []string, opts Options) (*Router, error) {
	if opts.Primary != nil || opts.Replicas != nil {
		return nil, invalid("Options.Primary and Options.Replicas must be nil with Open, which makes the pools")
	}
	check := opts
	check.Replicas = make([]*pgxpool.Pool, len(replicaConns)) // for the ReplicaNames check
	o, err := check.withDefaults()
	if err != nil {
		return nil, err
	}
	var pools []*pgxpool.Pool
	fail := func(err error) (*Router, error) {
		for _, p := range pools {
			p.Close()
		}
		return nil, err
	}
	for i, cs := range append([]string{primaryConn}, replicaConns...) {
		field := "primaryConn"
		target := "primary"
		if i > 0 {
			field = fmt.Sprintf("replicaConns[%d]", i-1)
			target = ""
			if opts.ReplicaNames != nil {
				target = opts.ReplicaNames[i-1]
			}
		}
		cfg, err := pgxpool.ParseConfig(cs)
		if err != nil {
			return fail(fmt.Errorf("%w: Open %s: %w", ErrInvalid, field, err))
		}
		if target == "" {
			target = net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port)))
		}
		tr, err := NewTracer(TracerOptions{Target: target, SlowThreshold: o.SlowQuery, Logger: o.Logger})
		if err != nil {
			return fail(err)
		}
		if opts.ConfigurePool != nil {
			if err := opts.ConfigurePool(target, cfg); err != nil {
				return fail(fmt.Errorf("dbrouter: Open %s: ConfigurePool: %w", field, err))
			}
		}
		cfg.ConnConfig.Tracer = composeTracer(cfg.ConnConfig.Tracer, tr)
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return fail(fmt.Errorf("dbrouter: Open %s: %w", field, err))
		}
		pools = append(pools, p)
	}
	opts.Primary, opts.Replicas = pools[0], pools[1:]
	r, err := New(ctx, opts)
	if err != nil {
		return fail(err)
	}
	r.owned = pools
	return r, nil
}

func poolName(p *pgxpool.Pool) string {
	c := p.Config().ConnConfig
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
}

// tracerOf finds the *Tracer of p: its ConnConfig.Tracer, or one inside a
// pgx multitracer.
func tracerOf(p *pgxpool.Pool) *Tracer {
	return findTracer(p.Config().ConnConfig.Tracer)
}

func findTracer(qt pgx.QueryTracer) *Tracer {
	switch t := qt.(type) {
	case *Tracer:
		return t
	case *multitracer.Tracer:
		for _, q := range t.QueryTracers {
			if found := findTracer(q); found != nil {
				return found
			}
		}
	}
	return nil
}

// composeTracer is the user's tracer (if any) and the router's, both
// called, by a pgx multitracer.
func composeTracer(user pgx.QueryTracer, ours *Tracer) pgx.QueryTracer {
	if user == nil {
		return ours
	}
	return multitracer.New(user, ours)
}

// newRouter builds a router without pools; New fills them in. Tests give it
// a fake prober.
func newRouter(o Options, names []string, p prober) *Router {
	r := &Router{o: o, probe: p, done: make(chan struct{}), kicks: make(chan struct{}, 1)}
	for i, n := range names {
		r.replicas = append(r.replicas, &replica{idx: i, name: n})
	}
	r.healthy.Store(&[]*replica{})
	r.mon.standby = make([]bool, 1+len(names))
	r.wr.Store(&writer{name: "primary"})
	r.tl.Store(&timelines{})
	return r
}

// writer is where writes go: the configured primary (idx 0) or, after a
// failover (Options.Failover), the promoted replica idx-1.
type writer struct {
	idx    int
	name   string
	pool   *pgxpool.Pool
	tracer *Tracer
}

// noWriter and noTimelines stand for a Router's state before New sets
// it (a zero Router, as tests of packages above use).
var (
	noWriter    = &writer{name: "primary"}
	noTimelines = &timelines{}
)

// w is the current write target.
func (r *Router) w() *writer {
	if w := r.wr.Load(); w != nil {
		return w
	}
	return noWriter
}

// timelines is the write server's timeline and history.
func (r *Router) timelines() *timelines {
	if tl := r.tl.Load(); tl != nil {
		return tl
	}
	return noTimelines
}

// PrimaryPool is the pool writes go to, for what the router does not offer
// (LISTEN, Acquire): Options.Primary's, or after a failover
// (Options.Failover) the promoted replica's.
func (r *Router) PrimaryPool() *pgxpool.Pool { return r.w().pool }

// Close stops the monitor and, for a Router made by Open, closes its pools.
// Calls after Close return ErrClosed. It is idempotent and returns nil.
func (r *Router) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		if r.stop != nil {
			r.stop()
			<-r.done
		}
		for _, p := range r.owned {
			p.Close()
		}
	})
	return nil
}

// Exec runs sql on the primary.
func (r *Router) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if r.closed.Load() {
		return pgconn.CommandTag{}, ErrClosed
	}
	r.primaryWrites.Add(1)
	if r.o.RouteTracer != nil {
		ctx = r.traceRoute(ctx, nil, RouteWrite)
	}
	tag, err := r.w().pool.Exec(ctx, sql, args...)
	r.noteWrite(ctx, err)
	r.writeFailed(err)
	return tag, err
}

// CopyFrom runs COPY FROM on the primary.
func (r *Router) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	r.primaryWrites.Add(1)
	if r.o.RouteTracer != nil {
		ctx = r.traceRoute(ctx, nil, RouteWrite)
	}
	n, err := r.w().pool.CopyFrom(ctx, table, columns, src)
	r.noteWrite(ctx, err)
	r.writeFailed(err)
	return n, err
}

// SendBatch sends b to the primary: a batch may write, and the router does
// not read SQL to find out. Put a batch of reads in a read-only BeginTx to
// send it to a replica.
func (r *Router) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if r.closed.Load() {
		return pgx.FailedBatchResults(b, ErrClosed)
	}
	r.primaryWrites.Add(1)
	if r.o.RouteTracer != nil {
		ctx = r.traceRoute(ctx, nil, RouteWrite)
	}
	br := r.w().pool.SendBatch(ctx, b)
	if in := intentOf(ctx); in != nil && in.sess != nil {
		return &sessionBatch{BatchResults: br, r: r, sess: in.sess}
	}
	return br
}

// ReadBatch runs b, whose statements must only read, on one server chosen
// as for Query (a replica, or the primary), in one round trip and without
// a transaction of its own, and returns the first error. Read the results
// with b's callbacks (QueuedQuery.QueryRow, Query, Exec), which run before
// ReadBatch returns. The statements run in order, each with its own
// snapshot (READ COMMITTED), so one that reads the server's WAL position
// before one that reads rows gets a position the rows are at least as
// fresh as: what a read-only BeginTx with the same statements gives, in
// one round trip instead of three (BEGIN, the statements, COMMIT). A
// replica failure (down, connection lost, a recovery conflict, or SQLSTATE
// 25006 because a statement writes) runs the whole batch once more on the
// primary, so a callback may see the replica's result before the
// primary's: callbacks should store what they read, not act on it.
func (r *Router) ReadBatch(ctx context.Context, b *pgx.Batch) error {
	if r.closed.Load() {
		return ErrClosed
	}
	rep, why, err := r.routeWhy(ctx)
	if err != nil {
		return err
	}
	if r.o.RouteTracer != nil {
		ctx = r.traceRoute(ctx, rep, why)
	}
	if rep == nil {
		r.primaryReads.Add(1)
		return r.w().pool.SendBatch(ctx, b).Close()
	}
	rep.acquire()
	err = rep.pool.SendBatch(ctx, b).Close()
	rep.release()
	if err != nil && r.retryOnPrimary(ctx, rep, batchSQL(b), err) {
		r.primaryReads.Add(1)
		return r.w().pool.SendBatch(r.retryRoute(ctx), resend(b)).Close()
	}
	return err
}

// resend is a copy of b to send again, on another connection: sending b
// kept in it the statements prepared on the first one.
func resend(b *pgx.Batch) *pgx.Batch {
	nb := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, len(b.QueuedQueries))}
	for i, q := range b.QueuedQueries {
		nb.QueuedQueries[i] = &pgx.QueuedQuery{SQL: q.SQL, Arguments: q.Arguments, Fn: q.Fn}
	}
	return nb
}

// batchSQL is b's statements for a log line.
func batchSQL(b *pgx.Batch) string {
	var sb strings.Builder
	for i, q := range b.QueuedQueries {
		if i > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(q.SQL)
		if sb.Len() > 200 {
			break
		}
	}
	return sb.String()
}

// Begin starts a transaction on the primary.
func (r *Router) Begin(ctx context.Context) (pgx.Tx, error) {
	return r.BeginTx(ctx, pgx.TxOptions{})
}

// BeginTx starts a transaction: a read-only one (AccessMode ReadOnly, not
// Serializable, which a hot standby refuses) on a replica chosen as for
// Query, any other on the primary. A replica that fails to begin (down, not
// a SQL error) is replaced by the primary. Statements inside a replica
// transaction are not retried elsewhere.
func (r *Router) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if opts.AccessMode == pgx.ReadOnly && opts.IsoLevel != pgx.Serializable {
		rep, why, err := r.routeWhy(ctx)
		if err != nil {
			return nil, err
		}
		if r.o.RouteTracer != nil {
			ctx = r.traceRoute(ctx, rep, why)
		}
		if rep != nil {
			rep.acquire()
			tx, err := rep.pool.BeginTx(ctx, opts)
			if err == nil {
				return &replicaTx{Tx: tx, rep: rep}, nil
			}
			rep.release()
			if !r.retryOnPrimary(ctx, rep, "BEGIN READ ONLY", err) {
				return nil, err
			}
			ctx = r.retryRoute(ctx)
		}
		r.primaryReads.Add(1)
		return r.w().pool.BeginTx(ctx, opts)
	}
	r.primaryWrites.Add(1)
	if r.o.RouteTracer != nil {
		ctx = r.traceRoute(ctx, nil, RouteWrite)
	}
	tx, err := r.w().pool.BeginTx(ctx, opts)
	if err != nil {
		r.writeFailed(err)
		return nil, err
	}
	if in := intentOf(ctx); in != nil && in.sess != nil && opts.AccessMode != pgx.ReadOnly {
		return &sessionTx{Tx: tx, r: r, sess: in.sess}, nil
	}
	return tx, nil
}

// Query runs a read on a replica (see Router) or the primary. A replica
// failure before the first row (server down, connection lost, a recovery
// conflict, or SQLSTATE 25006 because the statement writes) runs the query
// once more on the primary; a 25006 is also logged as a routing bug.
func (r *Router) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if r.closed.Load() {
		return errRows{err: ErrClosed}, ErrClosed
	}
	rep, why, err := r.routeWhy(ctx)
	if err != nil {
		return errRows{err: err}, err
	}
	if r.o.RouteTracer != nil {
		ctx = r.traceRoute(ctx, rep, why)
	}
	if rep == nil {
		r.primaryReads.Add(1)
		return r.w().pool.Query(ctx, sql, args...)
	}
	rep.acquire()
	rows, err := rep.pool.Query(ctx, sql, args...)
	if err != nil {
		rep.release()
		if r.retryOnPrimary(ctx, rep, sql, err) {
			r.primaryReads.Add(1)
			return r.w().pool.Query(r.retryRoute(ctx), sql, args...)
		}
		return rows, err
	}
	return &replicaRows{Rows: rows, r: r, rep: rep, ctx: ctx, sql: sql, args: args}, nil
}

// QueryRow is Query for at most one row; errors, and the retry on the
// primary, come with Scan.
func (r *Router) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if r.closed.Load() {
		return errRow{err: ErrClosed}
	}
	rep, why, err := r.routeWhy(ctx)
	if err != nil {
		return errRow{err: err}
	}
	if r.o.RouteTracer != nil {
		ctx = r.traceRoute(ctx, rep, why)
	}
	if rep == nil {
		r.primaryReads.Add(1)
		return r.w().pool.QueryRow(ctx, sql, args...)
	}
	rep.acquire()
	return &replicaRow{row: rep.pool.QueryRow(ctx, sql, args...), r: r, rep: rep, ctx: ctx, sql: sql, args: args}
}

// WriteToken returns a token for every write committed before the call: the
// primary's pg_current_wal_insert_lsn() (one round trip), and the time.
// Insert, not flush or write position: with synchronous_commit off a commit
// can return before its WAL is flushed, so only the insert position is sure
// to cover it; the replica replays it once the WAL writer flushes it. With
// ConsistencyWindow the token is the time alone and no query is made.
func (r *Router) WriteToken(ctx context.Context) (Token, error) {
	if r.closed.Load() {
		return Token{}, ErrClosed
	}
	now := clock.Now(r.o.Clock)
	if r.o.Consistency == ConsistencyWindow {
		return Token{Time: now}, nil
	}
	lsn, tli, err := r.insertLSN(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("dbrouter: write token: %w", err)
	}
	return Token{LSN: lsn, Time: now, Timeline: tli}, nil
}

// insertLSN reads the write server's WAL insert position and timeline.
func (r *Router) insertLSN(ctx context.Context) (LSN, uint32, error) {
	l, tli, err := r.probe.insertLSN(ctx, r.w().idx)
	if err == nil {
		r.raiseKnown(l)
	}
	return l, tli, err
}

func (r *Router) raiseKnown(l LSN) {
	for {
		cur := r.known.Load()
		if uint64(l) <= cur || r.known.CompareAndSwap(cur, uint64(l)) {
			return
		}
	}
}

// clamp bounds a token's LSN by what the primary has written: a token more
// than TokenMargin past the highest position the router knows is checked
// against the primary's insert position, read by a check that started after
// the token arrived (concurrent checks share one round trip), and one
// beyond that, which no write made, is forged: it is counted in
// Stats.ForgedTokens and served as the primary's insert position. When the
// primary cannot be asked, it is served as the known position plus
// TokenMargin.
func (r *Router) clamp(ctx context.Context, l LSN) LSN {
	known := LSN(r.known.Load())
	margin := LSN(r.o.TokenMargin)
	if known == 0 || l <= known || l-known <= margin {
		return l
	}
	ins, err := r.refreshInsert(ctx)
	if err == nil {
		if l <= ins {
			return l // a write this router had not heard of yet
		}
		r.forged.Add(1)
		r.o.Logger.DebugContext(ctx, "dbrouter: a token beyond the primary's WAL position is forged; clamped", "token", l.String(), "primary", ins.String())
		return pageStart(ins)
	}
	known = LSN(r.known.Load())
	if l-known <= margin {
		return l
	}
	r.forged.Add(1)
	r.o.Logger.DebugContext(ctx, "dbrouter: a token beyond the primary's known WAL position plus TokenMargin is forged; clamped", "token", l.String(), "known", known.String(), "err", err)
	return known + margin
}

// refreshInsert reads the primary's insert position by a read that started
// after the call did: one already running when the call came may have read
// before the caller's token was made, so it waits for the next, which the
// callers that arrived meanwhile share.
func (r *Router) refreshInsert(ctx context.Context) (LSN, error) {
	arrived := r.refresh.started.Load()
	r.refresh.mu.Lock()
	defer r.refresh.mu.Unlock()
	if r.refresh.started.Load() == arrived {
		r.refresh.started.Add(1)
		r.refresh.lsn, _, r.refresh.err = r.insertLSN(context.WithValue(ctx, untracedKey{}, true))
	}
	return r.refresh.lsn, r.refresh.err
}

// Fence makes the primary's current WAL insert position the floor every
// replica must have replayed before it takes reads again: call it after
// migrations (or any write every later read must see, such as a schema
// change), so no read lands on a replica that has not replayed them. Reads
// go to replicas that have (by the monitor's last reading), else to the
// primary; Ready reports not ready until every reachable replica has. The
// router sets such a floor itself at its start (the first good check of
// the primary).
func (r *Router) Fence(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if len(r.replicas) == 0 {
		return nil
	}
	l, _, err := r.insertLSN(context.WithValue(ctx, untracedKey{}, true))
	if err != nil {
		return fmt.Errorf("dbrouter: fence: %w", err)
	}
	l = pageStart(l)
	for {
		cur := r.floor.Load()
		if uint64(l) <= cur || r.floor.CompareAndSwap(cur, uint64(l)) {
			return nil
		}
	}
}

// Ready reports whether reads may be routed without waiting on start-up:
// nil once the router knows the primary's LSN at its start (or at the last
// Fence) and every healthy replica that answers its checks has replayed
// it. A replica that is down or ejected (lagging past MaxLagBytes) does not
// hold readiness back: reads avoid it, and a fleet must not stay unready
// for one far-behind standby. Until then the error wraps ErrNotReady and says what is
// missing. Use it in a readiness probe (health.Check's Func), so traffic
// arrives only when replicas can serve it. ctx is unused; it fits
// health check signatures.
func (r *Router) Ready(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	floor := LSN(r.floor.Load())
	if floor == 0 {
		if len(r.replicas) == 0 {
			return nil
		}
		return fmt.Errorf("%w: the primary has not answered a check yet, so the WAL position replicas must replay first is unknown", ErrNotReady)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rep := range r.replicas {
		if rep.reachable && rep.healthy && LSN(rep.replay.Load()) < floor {
			return fmt.Errorf("%w: replica %s has replayed WAL up to %s, not yet %s (the router's start or last Fence)", ErrNotReady, rep.name, LSN(rep.replay.Load()), floor)
		}
	}
	return nil
}

// SessionToken is the token of ctx's session (WithSession) after its
// writes, to hand to the user's next request; zero without a session. After
// writes in ConsistencyLSN mode it reads the primary's LSN (one round trip,
// then cached until the next write). When that fails the token sends the
// user's reads to the primary, and err says why.
func (r *Router) SessionToken(ctx context.Context) (Token, error) {
	in := intentOf(ctx)
	if in == nil || in.sess == nil {
		return Token{}, nil
	}
	return in.sess.token(ctx, r.insertLSN)
}

// writeFailed asks the monitor for a check now (Options.Failover) when a
// write failed for want of the server (a connection error, a shutdown) or
// because it no longer takes writes (SQLSTATE 25006: read-only, a
// standby), so a promotion is found within Interval/4 of the first write it
// fails rather than at the next Interval.
func (r *Router) writeFailed(err error) {
	if err == nil || !r.o.Failover {
		return
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code != "25006" && !strings.HasPrefix(pe.Code, "57P") && !strings.HasPrefix(pe.Code, "08") {
		return // a SQL error: the server is fine
	}
	select {
	case r.kicks <- struct{}{}:
	default:
	}
}

// noteWrite advances ctx's session after a write, unless the write surely
// did not happen (a SQL error, or a failure before anything was sent).
func (r *Router) noteWrite(ctx context.Context, err error) {
	in := intentOf(ctx)
	if in == nil || in.sess == nil {
		return
	}
	if err != nil && (isPgError(err) || pgconn.SafeToRetry(err)) {
		return
	}
	in.sess.wrote(clock.Now(r.o.Clock), r.o.Consistency == ConsistencyLSN)
}

// route picks where a read goes: a replica, or nil for the primary.
func (r *Router) route(ctx context.Context) (*replica, error) {
	rep, _, err := r.routeWhy(ctx)
	return rep, err
}

// routeWhy is route, saying why (for Options.RouteTracer).
func (r *Router) routeWhy(ctx context.Context) (*replica, RouteReason, error) {
	in := intentOf(ctx)
	if in != nil && in.primary {
		return nil, RouteIntent, nil
	}
	hs := *r.healthy.Load()
	if len(hs) == 0 {
		if in != nil && r.o.Consistency == ConsistencyLSN {
			r.noteLost(ctx, in)
		}
		if r.o.NoFallback && len(r.replicas) > 0 {
			r.noReplica.Add(1)
			return nil, RouteNoReplica, ErrNoReplica
		}
		if len(r.replicas) > 0 {
			r.fallbacks.Add(1)
			return nil, RouteFallback, nil
		}
		return nil, RoutePrimaryOnly, nil
	}
	floor := LSN(r.floor.Load())
	if in == nil || (in.tok.IsZero() && in.sess == nil) {
		return r.chooseAnyWhy(hs, floor)
	}
	tok := in.tok
	if in.sess != nil {
		st, err := in.sess.token(ctx, r.insertLSN)
		if err != nil {
			r.o.Logger.WarnContext(ctx, "dbrouter: reading the session's write LSN failed; the read goes to the primary", "err", err)
			r.tokenPrimary.Add(1)
			return nil, RouteToken, nil
		}
		tok = tok.Merge(st)
	}
	if tok.IsZero() {
		return r.chooseAnyWhy(hs, floor)
	}
	if r.o.Consistency == ConsistencyWindow {
		now := clock.Now(r.o.Clock)
		if tok.Time.After(now.Add(r.o.Window)) {
			// A write more than Window in the future: forged (instances'
			// clocks differ by less). Trusted, it would hold the client's
			// reads on the primary until then; it constrains nothing.
			r.forged.Add(1)
			tok.Time = time.Time{}
		}
		if !tok.Time.IsZero() && now.Sub(tok.Time) < r.o.Window {
			r.tokenPrimary.Add(1)
			return nil, RouteToken, nil
		}
		return r.chooseAnyWhy(hs, floor)
	}
	if tok.LSN == 0 {
		return r.chooseAnyWhy(hs, floor)
	}
	if tok.Timeline != 0 && tok.LSN != unknownLSN && !r.survived(ctx, tok) {
		r.tokenPrimary.Add(1)
		return nil, RouteToken, nil
	}
	min := max(r.clamp(ctx, tok.LSN), floor)
	if rep := r.choose(hs, min, true); rep != nil {
		return rep, RouteToken, nil
	}
	if r.o.TokenWait > 0 {
		if rep := r.waitFor(ctx, min); rep != nil {
			r.tokenWaits.Add(1)
			return rep, RouteTokenWait, nil
		}
		r.tokenPrimary.Add(1)
		return nil, RouteTokenWait, nil
	}
	r.tokenPrimary.Add(1)
	return nil, RouteToken, nil
}

// survived reports whether tok's write is in the history of the write
// server's timeline, so a replica on it that replayed tok.LSN has it:
// tok's timeline is the write server's, or an earlier one that ended (its
// switch point) at or after tok.LSN. A write past its timeline's switch
// point was lost in a failover: counted in Stats.LostTokens and logged
// (at Warn the first time after each timeline change). Tokens of an
// unknown switch point or of a later timeline than the router knows
// cannot be judged: false, their reads go to the primary.
func (r *Router) survived(ctx context.Context, tok Token) bool {
	tl := r.timelines()
	if tl.cur == 0 || tok.Timeline == tl.cur {
		return true
	}
	end, ok := tl.ends[tok.Timeline]
	switch {
	case tok.Timeline > tl.cur || !ok:
		return false
	case tok.LSN <= end:
		return true
	}
	r.lostTokens.Add(1)
	level := slog.LevelDebug
	if !tl.warned.Swap(true) {
		level = slog.LevelWarn
	}
	r.o.Logger.Log(ctx, level, "dbrouter: a token's write is past its timeline's switch point: it was lost in a failover (the new primary never had it); the read goes to the primary",
		"token", tok.String(), "switch_lsn", end.String(), "timeline", tl.cur)
	return false
}

// noteLost counts and logs (survived) a read whose token, or session token
// as it stands (not refreshed), was lost in a failover, when no replica
// is healthy and the read goes to the primary anyway.
func (r *Router) noteLost(ctx context.Context, in *intent) {
	tok := in.tok
	if in.sess != nil {
		in.sess.mu.Lock()
		tok = tok.Merge(in.sess.tok)
		in.sess.mu.Unlock()
	}
	if tok.Timeline != 0 && tok.LSN != 0 && tok.LSN != unknownLSN {
		r.survived(ctx, tok)
	}
}

// chooseAnyWhy is chooseAny saying why.
func (r *Router) chooseAnyWhy(hs []*replica, floor LSN) (*replica, RouteReason, error) {
	rep, err := r.chooseAny(hs, floor)
	switch {
	case err != nil:
		return nil, RouteNoReplica, err
	case rep == nil:
		return nil, RouteFallback, nil
	}
	return rep, RouteAny, nil
}

// chooseAny picks a replica for a read without a token: any healthy one
// that has replayed the floor, else the primary (counted as a fallback), or
// ErrNoReplica with NoFallback.
func (r *Router) chooseAny(hs []*replica, floor LSN) (*replica, error) {
	if rep := r.choose(hs, floor, false); rep != nil {
		return rep, nil
	}
	if r.o.NoFallback {
		r.noReplica.Add(1)
		return nil, ErrNoReplica
	}
	r.fallbacks.Add(1)
	return nil, nil
}

// choose picks among hs a replica that has replayed min, by Balance; nil
// when none has. A token read (token) skips replicas whose replay went
// backwards (several servers behind one URL).
func (r *Router) choose(hs []*replica, min LSN, token bool) *replica {
	n := len(hs)
	if n == 1 {
		if (min == 0 || LSN(hs[0].replay.Load()) >= min) && !(token && hs[0].unsafe.Load()) {
			return hs[0]
		}
		return nil
	}
	start := int(r.rr.Add(1) % uint64(n))
	var best *replica
	var bestN int64
	for i := range n {
		c := hs[(start+i)%n]
		if (min != 0 && LSN(c.replay.Load()) < min) || (token && c.unsafe.Load()) {
			continue
		}
		if r.o.Balance == RoundRobin {
			return c
		}
		if f := c.inflight.Load(); best == nil || f < bestN {
			best, bestN = c, f
		}
	}
	return best
}

// polled records a poll's replay reading l of rep, base being the check's
// reading applied before the poll began: replay is raised, or, when l went
// below base, that is counted and logged as for a check.
func (r *Router) polled(rep *replica, base, l LSN) {
	if base == 0 || l >= base {
		rep.raiseReplay(l)
		return
	}
	r.mu.Lock()
	ev, ok := r.replayReading(rep, base, l)
	r.mu.Unlock()
	if ok {
		r.emit([]event{ev})
	}
}

// waitFor polls the most advanced healthy replica until one has replayed
// min, for up to TokenWait; nil if none did.
func (r *Router) waitFor(ctx context.Context, min LSN) *replica {
	ctx, cancel := context.WithTimeout(ctx, r.o.TokenWait)
	defer cancel()
	t := time.NewTimer(r.o.TokenPoll)
	defer t.Stop()
	for {
		hs := *r.healthy.Load()
		var best *replica
		for _, c := range hs {
			if !c.unsafe.Load() && (best == nil || c.replay.Load() > best.replay.Load()) {
				best = c
			}
		}
		if best == nil {
			return nil
		}
		if best.polling.CompareAndSwap(false, true) {
			base := LSN(best.checkLSN.Load())
			st := r.probe.poll(ctx, best.idx)
			best.polling.Store(false)
			if st.err == nil && st.inRecovery {
				r.polled(best, base, st.lsn)
			}
		}
		if rep := r.choose(hs, min, true); rep != nil {
			return rep
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			t.Reset(r.o.TokenPoll)
		}
	}
}
